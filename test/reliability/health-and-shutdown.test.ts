import http2 from "node:http2";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.js";
import { CONNECT_HTTP1, failure, GRPC, ingestClient } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { unfinishedIngestCall } from "../support/http2.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { startReceiver } from "../support/otlp-receiver.js";
import { spawnService } from "../support/process.js";
import {
  countIn,
  processStorage,
  startTestService,
  type TestService,
  tempDir,
} from "../support/service.js";

const healthClient = (url: string) => createClient(Health, createGrpcTransport({ baseUrl: url }));

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("health checks", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should answer /healthz, /readyz and the legacy /health without a key", async () => {
    expect(await getJson(`${svc.url}/healthz`)).toEqual({ status: 200, body: { status: "alive" } });
    expect(await getJson(`${svc.url}/readyz`)).toEqual({
      status: 200,
      body: {
        status: "ready",
        checks: { database: "writable", migrations: "applied", draining: false },
      },
    });
    expect(await getJson(`${svc.url}/health`)).toEqual({
      status: 200,
      body: { status: "healthy", service: "metrics-collection" },
    });
  });

  it("should serve grpc.health.v1.Health without a key, for the server and each service", async () => {
    const health = healthClient(svc.url);
    for (const service of ["", "mcp.metrics.v1.IngestService", "mcp.metrics.v1.AdminService"]) {
      expect((await health.check({ service })).status).toBe(ServingStatus.SERVING);
    }
    const unknown = await failure(health.check({ service: "no.such.Service" }));
    expect(unknown.code).toBe(Code.NotFound);
    expect(unknown.rawMessage).toContain("no.such.Service");
  });

  it("should start a watch with the current status", async () => {
    const abort = new AbortController();
    const watch = healthClient(svc.url).watch({ service: "" }, { signal: abort.signal });
    for await (const update of watch) {
      expect(update.status).toBe(ServingStatus.SERVING);
      break;
    }
    abort.abort();
  });
});

describe("graceful shutdown on SIGTERM", () => {
  it("should turn unready at once, refuse new requests retryably, finish in-flight ones, flush the exporter and exit within its timeout", async () => {
    const receiver = await startReceiver();
    const key = "shutdown-key-0123456789";
    const storage = await processStorage(tempDir());
    const svc = await spawnService({
      ...storage.env,
      METRICS_API_KEY_SHUTDOWN_TEST: key,
      METRICS_SHUTDOWN_TIMEOUT_MS: "3000",
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
      // Only the shutdown's final export can reach the receiver within the test.
      OTEL_METRIC_EXPORT_INTERVAL: "600000",
    });
    try {
      const client = ingestClient(GRPC, svc.url, key);
      const watch = healthClient(svc.url).watch({ service: "" });
      const statuses: ServingStatus[] = [];
      const watched = (async () => {
        for await (const update of watch) statuses.push(update.status);
      })();
      const events = authBatch(3, "shutdown-test").events.map((e) => ({ ...e, value: 1 }));
      expect((await client.ingest({ service: "shutdown-test", events })).accepted).toBe(3);
      // A call whose body never completes: the drain waits for it until the timeout.
      const session = http2.connect(svc.url);
      const hung = unfinishedIngestCall(session, key);
      await new Promise((resolve) => setTimeout(resolve, 200));

      const signalled = performance.now();
      svc.child.kill("SIGTERM");
      await new Promise((resolve) => setTimeout(resolve, 100));

      // Readiness is false at once, on new connections too; liveness stays true.
      const ready = await getJson(`${svc.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: "not ready", checks: { draining: true } });
      expect((await getJson(`${svc.url}/health`)).body).toMatchObject({ status: "draining" });
      expect((await getJson(`${svc.url}/healthz`)).status).toBe(200);
      const check = await healthClient(svc.url).check({ service: "" });
      expect(check.status).toBe(ServingStatus.NOT_SERVING);

      // New requests are refused with a retryable error on every ingress.
      for (const protocol of [GRPC, CONNECT_HTTP1]) {
        const refused = await failure(
          ingestClient(protocol, svc.url, key).ingest({ service: "shutdown-test", events }),
        );
        expect(refused.code).toBe(Code.Unavailable);
        expect(refused.metadata.get("retry-after")).toBe("1");
      }
      const legacy = await postMetrics(
        svc.url,
        { service: "shutdown-test", metrics: [legacyMetric()] },
        { key },
      );
      expect(legacy.status).toBe(503);
      expect(legacy.headers.get("retry-after")).toBe("1");

      // The watch was told, and ended so that it held nothing up.
      await watched.catch((error: unknown) => {
        expect(ConnectError.from(error).code).not.toBe(Code.Internal);
      });
      expect(statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);

      const code = await svc.exited;
      const tookMillis = performance.now() - signalled;
      hung.destroy();
      session.destroy();
      expect(code).toBe(0);
      // The hung call held the drain for its share of the 3 s budget, no longer.
      expect(tookMillis).toBeGreaterThan(1500);
      expect(tookMillis).toBeLessThan(3000 + 1500);

      // The final export carried the events committed before the signal.
      const names = receiver.exports.flatMap((e) =>
        e.request.resourceMetrics.flatMap((r) =>
          r.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.name)),
        ),
      );
      expect(names).toContain("mcp_auth_requests_total");
      // And the events acknowledged before the signal are stored.
      expect(await countIn(storage.sql(), "metrics", "service = 'shutdown-test'")).toBe(3);
    } finally {
      svc.child.kill("SIGKILL");
      receiver.server.forceShutdown();
      await storage.close();
    }
  });
});
