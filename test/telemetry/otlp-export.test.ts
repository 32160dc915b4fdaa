import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GRPC, ingestClient } from "../support/clients.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { type ExportRequest, type KeyValue, startReceiver } from "../support/otlp-receiver.js";
import { freePort, startTestService, type TestService } from "../support/service.js";

const attr = (attributes: KeyValue[], key: string) =>
  attributes.find((a) => a.key === key)?.value.stringValue;

describe("OTLP/gRPC export", () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let svc: TestService;
  beforeAll(async () => {
    receiver = await startReceiver();
    svc = await startTestService({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
      OTEL_EXPORTER_OTLP_HEADERS: "x-tenant=acme,authorization=Bearer%20t0k",
      OTEL_METRIC_EXPORT_INTERVAL: "300",
      OTEL_SERVICE_NAME: "mcp-metrics-test",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=ci",
      METRICS_OTEL_SEMCONV: "true",
    });
  });
  afterAll(async () => {
    await svc.close();
    receiver.server.forceShutdown();
  });

  it("should export the same instruments with service.name, resource attributes and the configured headers", async () => {
    await postMetrics(
      svc.url,
      { service: "otlp", metrics: [legacyMetric(), legacyMetric()] },
      { key: await svc.keyFor("otlp") },
    );
    await ingestClient(GRPC, svc.url, await svc.keyFor("otlp")).ingest({
      service: "otlp",
      events: [
        {
          durationMs: 30,
          dimensions: { protocol_version: "2025-06-18" },
          kind: {
            case: "toolExecution",
            value: { method: "tools/call", toolName: "now", success: false, errorCode: "timeout" },
          },
        },
      ],
    });
    const metricsOf = (e: { request: ExportRequest }) =>
      e.request.resourceMetrics.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
    let last: Awaited<ReturnType<typeof startReceiver>>["exports"][number] | undefined;
    for (let i = 0; i < 100; i++) {
      last = receiver.exports.findLast((e) =>
        metricsOf(e).some((m) => m.name === "mcp_tool_executions_total"),
      );
      if (last) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(last).toBeDefined();
    if (last === undefined) return;
    expect(last.metadata.get("x-tenant")).toEqual(["acme"]);
    expect(last.metadata.get("authorization")).toEqual(["Bearer t0k"]);
    const resource = last.request.resourceMetrics[0]?.resource.attributes ?? [];
    expect(attr(resource, "service.name")).toBe("mcp-metrics-test");
    expect(attr(resource, "deployment.environment")).toBe("ci");

    const metrics = metricsOf(last);
    const auth = metrics.find((m) => m.name === "mcp_auth_requests_total");
    expect(
      auth?.sum?.dataPoints.map((p) => [
        attr(p.attributes, "success"),
        Number(p.asDouble ?? p.asInt),
      ]),
    ).toEqual([["true", 2]]);
    const tool = metrics.find((m) => m.name === "mcp_tool_execution_duration_seconds");
    expect(tool?.histogram?.dataPoints[0]?.sum).toBeCloseTo(0.03, 9);
    // The MCP semantic-convention instrument, behind METRICS_OTEL_SEMCONV.
    const operation = metrics.find((m) => m.name === "mcp.server.operation.duration");
    const point = operation?.histogram?.dataPoints[0];
    expect(
      point && Object.fromEntries(point.attributes.map((a) => [a.key, a.value.stringValue])),
    ).toEqual({
      "mcp.method.name": "tools/call",
      "gen_ai.tool.name": "now",
      "error.type": "timeout",
      "mcp.protocol.version": "2025-06-18",
    });
  });

  it("should never hold ingestion up when the collector is unreachable", async () => {
    const deadPort = await freePort();
    const lonely = await startTestService({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${deadPort}`,
      OTEL_METRIC_EXPORT_INTERVAL: "100",
    });
    try {
      for (let i = 0; i < 20; i++) {
        const res = await postMetrics(
          lonely.url,
          { service: "alone", metrics: [legacyMetric()] },
          { key: await lonely.keyFor("alone") },
        );
        expect(res.json.accepted).toBe(1);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await lonely.close();
    }
  });
});
