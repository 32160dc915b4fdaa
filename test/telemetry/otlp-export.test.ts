// backends: sqlite only: the OTLP exporters' protocols, endpoints, headers and failures; the instruments are exposition.test.ts', on both
import { rmSync } from "node:fs";
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GRPC, ingestClient } from "../support/clients.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import {
  type ExportRequest,
  type HttpExport,
  type KeyValue,
  startHttpReceiver,
  startReceiver,
} from "../support/otlp-receiver.js";
import { spawnService } from "../support/process.js";
import {
  exposition,
  freePort,
  scrape,
  startTestService,
  type TestService,
  tempDir,
} from "../support/service.js";

const attr = (attributes: KeyValue[], key: string) =>
  attributes.find((a) => a.key === key)?.value.stringValue;

/** How long one export may take in the tests of a collector that does not answer (OTEL_EXPORTER_OTLP_TIMEOUT). */
const EXPORT_TIMEOUT_MILLIS = 60_000;
/** The longest an ingest request may take meanwhile. */
const INGEST_BOUND_MILLIS = 3_000;

/** A collector that accepts connections, reads what is sent, and never answers a byte. */
async function startHangingCollector(): Promise<{
  port: number;
  connections(): number;
  bytes(): number;
  close(): void;
}> {
  const sockets = new Set<Socket>();
  let connections = 0;
  let bytes = 0;
  const server = createNetServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    bytes: () => bytes,
    close() {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

describe("OTLP/gRPC export (OTEL_EXPORTER_OTLP_PROTOCOL=grpc)", () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let svc: TestService;
  beforeAll(async () => {
    receiver = await startReceiver();
    svc = await startTestService({
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
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

  it.each([
    ["down (connection refused)", "grpc"],
    ["down (connection refused)", "http/protobuf"],
    ["accepting connections and never answering", "grpc"],
    ["accepting connections and never answering", "http/protobuf"],
  ])(
    "should never hold ingestion up when the collector is unreachable: %s, over %s",
    async (collector, protocol) => {
      const hanging = collector.startsWith("accepting") ? await startHangingCollector() : undefined;
      const port = hanging?.port ?? (await freePort());
      const lonely = await startTestService({
        OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        // An export every 500 ms, each allowed a minute: an ingest path that
        // waited for one would take about that long, far past the bound below.
        OTEL_METRIC_EXPORT_INTERVAL: "500",
        OTEL_EXPORTER_OTLP_TIMEOUT: String(EXPORT_TIMEOUT_MILLIS),
        // The final export, at close, gives up within this budget.
        METRICS_SHUTDOWN_TIMEOUT_MS: "2000",
      });
      try {
        const key = await lonely.keyFor("alone");
        if (hanging) {
          // An export is under way (and will hang) before ingestion starts.
          await expect.poll(() => hanging.connections(), { timeout: 5_000 }).toBeGreaterThan(0);
        }
        const latencies: number[] = [];
        const until = performance.now() + 2_000; // four export intervals
        while (performance.now() < until) {
          const sent = performance.now();
          const res = await Promise.race([
            postMetrics(lonely.url, { service: "alone", metrics: [legacyMetric()] }, { key }),
            sleep(INGEST_BOUND_MILLIS, undefined, { ref: false }).then(() => {
              throw new Error(`an ingest request took longer than ${INGEST_BOUND_MILLIS} ms`);
            }),
          ]);
          latencies.push(performance.now() - sent);
          expect(res.json.accepted).toBe(1);
          await new Promise((r) => setTimeout(r, 20));
        }
        expect(latencies.length).toBeGreaterThan(10);
        // Generous for a loaded 2-core machine, 20 times below the export timeout.
        expect(Math.max(...latencies)).toBeLessThan(INGEST_BOUND_MILLIS);
        if (hanging) {
          // The collector was reached (and never answered) while ingestion went on.
          expect(hanging.connections()).toBeGreaterThan(0);
          expect(hanging.bytes()).toBeGreaterThan(0);
        }
      } finally {
        await lonely.close();
        hanging?.close();
      }
    },
  );

  it("should log a failing export once a minute, with its endpoint and reason and never its credentials, and count every failure", async () => {
    const deadPort = await freePort();
    const prometheus = await exposition();
    const dir = tempDir();
    const service = await spawnService({
      ...prometheus.env,
      SQLITE_DB_PATH: join(dir, "metrics.db"),
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://user:s3cret@127.0.0.1:${deadPort}/?token=s3cret`,
      OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20s3cret",
      OTEL_METRIC_EXPORT_INTERVAL: "200",
      // Each export gives up within 300 ms (the HTTP exporter retries a refused connection inside it).
      OTEL_EXPORTER_OTLP_TIMEOUT: "300",
    });
    try {
      await expect
        .poll(
          async () =>
            Number(
              /^mcp_metrics_export_failures_total\{exporter="otlp"\} (\d+)$/m.exec(
                await scrape(prometheus.port),
              )?.[1] ?? 0,
            ),
          { timeout: 15_000, interval: 200 },
        )
        .toBeGreaterThanOrEqual(3);
      const lines = service
        .output()
        .stdout.split("\n")
        .filter((line) => line.includes("metrics export failed"));
      // Three failures or more, one line: the rest wait for the next minute's summary.
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({
        level: 40,
        exporter: "otlp",
        endpoint: `http://127.0.0.1:${deadPort}/`,
        failures: 1,
        reason: expect.stringMatching(/\S/),
      });
      expect(service.output().stdout).not.toContain("s3cret");
      // The start-up line says where metrics go, and how.
      expect(service.output().stdout).toMatch(/"otlpProtocol":"http\/protobuf"/);
    } finally {
      service.child.kill("SIGTERM");
      await service.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

/** The value of a counter's data point with `service`, as any OTLP encoding carries it. */
function counted(request: ExportRequest, name: string, service: string): number | undefined {
  for (const resource of request.resourceMetrics) {
    for (const scope of resource.scopeMetrics) {
      for (const metric of scope.metrics) {
        if (metric.name !== name) continue;
        const point = metric.sum?.dataPoints.find((p) => attr(p.attributes, "service") === service);
        if (point) return Number(point.asDouble ?? point.asInt);
      }
    }
  }
  return undefined;
}

describe("OTLP over HTTP, as the specification's variables choose it", () => {
  let receiver: Awaited<ReturnType<typeof startHttpReceiver>>;
  beforeAll(async () => {
    receiver = await startHttpReceiver();
  });
  afterAll(async () => {
    await receiver.close();
  });

  /** Starts a service with `env`, sends three auth events as `service`, and waits for an export of them. */
  async function exported(env: Record<string, string>, service: string) {
    const svc = await startTestService({ OTEL_METRIC_EXPORT_INTERVAL: "200", ...env });
    try {
      await postMetrics(
        svc.url,
        { service, metrics: [legacyMetric(), legacyMetric(), legacyMetric()] },
        { key: await svc.keyFor(service) },
      );
      const export3 = () =>
        receiver.exports.find((e) => counted(e.request, "mcp_auth_requests_total", service) === 3);
      await expect.poll(export3, { timeout: 10_000, interval: 100 }).toBeDefined();
      return export3() as HttpExport;
    } finally {
      await svc.close();
    }
  }

  it("should post http/protobuf, the specification's default, to <OTEL_EXPORTER_OTLP_ENDPOINT>/v1/metrics with the configured headers", async () => {
    const got = await exported(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}/base/`,
        OTEL_EXPORTER_OTLP_HEADERS: "x-tenant=acme",
      },
      "otlp-proto",
    );
    expect(got.path).toBe("/base/v1/metrics");
    expect(got.contentType).toBe("application/x-protobuf");
    expect(got.headers["x-tenant"]).toBe("acme");
    const resource = got.request.resourceMetrics[0]?.resource.attributes ?? [];
    expect(attr(resource, "service.name")).toBe("mcp-metrics-service");
    // What was ingested, as it was ingested: three authentications of 12.5 ms, by their labels.
    const metrics = got.request.resourceMetrics.flatMap((r) =>
      r.scopeMetrics.flatMap((m) => m.metrics),
    );
    const counter = metrics.find((m) => m.name === "mcp_auth_requests_total");
    const point = counter?.sum?.dataPoints.find(
      (p) => attr(p.attributes, "service") === "otlp-proto",
    );
    expect(counter?.unit).toBe("1");
    expect(
      point && Object.fromEntries(point.attributes.map((a) => [a.key, a.value.stringValue])),
    ).toEqual({
      success: "true",
      method: "jwt",
      server: "_unset",
      target_kind: "_unset",
      service: "otlp-proto",
      metric_type: "auth_request",
    });
    const duration = metrics.find((m) => m.name === "mcp_auth_request_duration_seconds");
    expect(duration?.unit).toBe("s");
    const histogram = duration?.histogram?.dataPoints.find(
      (p) => attr(p.attributes, "service") === "otlp-proto",
    );
    expect(Number(histogram?.count)).toBe(3);
    expect(histogram?.sum).toBeCloseTo(0.0375, 10);
  });

  it("should post http/json, gzip-compressed, to OTEL_EXPORTER_OTLP_METRICS_ENDPOINT as given", async () => {
    const got = await exported(
      {
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", // the metrics' own variable wins
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `http://127.0.0.1:${receiver.port}/custom/path`,
        OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
      },
      "otlp-json",
    );
    expect(got.path).toBe("/custom/path");
    expect(got.contentType).toBe("application/json");
    expect(got.headers["content-encoding"]).toBe("gzip");
  });

  it("should take the Python service's OTEL_OTLP_ENDPOINT as it did: http/protobuf to <endpoint>/v1/metrics", async () => {
    const got = await exported(
      { OTEL_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}` },
      "otlp-legacy",
    );
    expect(got.path).toBe("/v1/metrics");
    expect(got.contentType).toBe("application/x-protobuf");
  });

  it("should export nothing, and serve no exposition, with OTEL_SDK_DISABLED=true or OTEL_METRICS_EXPORTER=none", async () => {
    for (const env of [{ OTEL_SDK_DISABLED: "true" }, { OTEL_METRICS_EXPORTER: "none" }]) {
      const prometheus = await exposition();
      const before = receiver.exports.length;
      const svc = await startTestService({
        ...prometheus.env,
        ...env,
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
        OTEL_METRIC_EXPORT_INTERVAL: "100",
      });
      try {
        await postMetrics(
          svc.url,
          { service: "otlp-off", metrics: [legacyMetric()] },
          { key: await svc.keyFor("otlp-off") },
        );
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(receiver.exports.length).toBe(before);
        await expect(scrape(prometheus.port)).rejects.toThrow();
      } finally {
        await svc.close();
      }
    }
  });

  it("should run only the exporters OTEL_METRICS_EXPORTER lists", async () => {
    const prometheus = await exposition();
    const svc = await startTestService({
      ...prometheus.env,
      OTEL_METRICS_EXPORTER: "otlp",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
    });
    try {
      await expect(scrape(prometheus.port)).rejects.toThrow();
    } finally {
      await svc.close();
    }
  });
});
