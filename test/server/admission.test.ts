import { Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/mcp/metrics/v1/admin_pb.js";
import { apiKey, failure, GRPC, ingestClient, PROTOCOLS } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import {
  countIn,
  exposition,
  scrape,
  startTestService,
  type TestService,
} from "../support/service.js";

/** The value of one counter series in an exposition, 0 when absent. */
function counter(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** The ingress each protocol's calls are counted under. */
const INGRESS: Record<string, string> = {
  "gRPC over h2c": "grpc",
  "Connect binary over HTTP/1.1": "connect",
  "Connect JSON over HTTP/1.1": "connect",
  "Connect binary over HTTP/2": "connect",
  "gRPC-Web over HTTP/1.1": "grpc-web",
  "gRPC-Web over HTTP/2": "grpc-web",
};

describe("one door: a refusal is decided once, answered alike on every ingress and counted once (issue 21)", () => {
  let svc: TestService;
  let port: number;
  beforeAll(async () => {
    const prometheus = await exposition();
    port = prometheus.port;
    svc = await startTestService({ ...prometheus.env, METRICS_RATE_LIMIT: "3" });
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should refuse a call without a key UNAUTHENTICATED / 401 on every ingress, each counted once", async () => {
    const before = await scrape(port);
    for (const protocol of PROTOCOLS) {
      const error = await failure(ingestClient(protocol, svc.url, undefined).ingest(authBatch(1)));
      expect(error.code, protocol.name).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toBe("API key required in X-API-Key header");
    }
    const res = await postMetrics(svc.url, { service: "x", metrics: [legacyMetric()] }, {});
    expect(res.status).toBe(401);
    expect(res.json).toEqual({ detail: "API key required in X-API-Key header" });
    const after = await scrape(port);
    const delta = (series: string) => counter(after, series) - counter(before, series);
    expect(
      delta('mcp_metrics_refused_requests_total{service="_unknown",reason="api_key_required"}'),
    ).toBe(PROTOCOLS.length + 1);
    for (const ingress of new Set(Object.values(INGRESS))) {
      const calls = PROTOCOLS.filter((p) => INGRESS[p.name] === ingress).length;
      expect(delta(`mcp_metrics_requests_total{ingress="${ingress}",code="unauthenticated"}`)).toBe(
        calls,
      );
    }
    expect(delta('mcp_metrics_requests_total{ingress="json",code="unauthenticated"}')).toBe(1);
  });

  it("should spend a key's tokens at the door, for unary calls and stream openings alike, and refuse past them RESOURCE_EXHAUSTED / 429 on every ingress", async () => {
    const key = await svc.keyFor("door-limited");
    const before = await scrape(port);
    // Three tokens a minute: three calls served, on three protocols.
    for (const protocol of PROTOCOLS.slice(0, 3)) {
      const answer = await ingestClient(protocol, svc.url, key).ingest(
        authBatch(1, "door-limited"),
      );
      expect(answer.accepted).toBe(1);
    }
    for (const protocol of PROTOCOLS) {
      const error = await failure(
        ingestClient(protocol, svc.url, key).ingest(authBatch(1, "door-limited")),
      );
      expect(error.code, protocol.name).toBe(Code.ResourceExhausted);
      expect(error.rawMessage).toBe("Rate limit exceeded. Limit: 3 requests/minute");
      expect(Number(error.metadata.get("retry-after"))).toBeGreaterThanOrEqual(1);
    }
    // A stream pays its opening token at the door too: refused before any message.
    async function* one() {
      yield authBatch(1, "door-limited");
    }
    const stream = await failure(ingestClient(GRPC, svc.url, key).ingestStream(one()));
    expect(stream.code).toBe(Code.ResourceExhausted);
    const res = await postMetrics(
      svc.url,
      { service: "door-limited", metrics: [legacyMetric()] },
      { key },
    );
    expect(res.status).toBe(429);
    expect(res.headers.get("x-ratelimit-limit")).toBe("3");
    expect(res.json).toEqual({ detail: "Rate limit exceeded. Limit: 3 requests/minute" });
    const after = await scrape(port);
    const delta = (series: string) => counter(after, series) - counter(before, series);
    const refused = PROTOCOLS.length + 2;
    expect(
      delta('mcp_metrics_refused_requests_total{service="door-limited",reason="rate_limited"}'),
    ).toBe(refused);
    expect(delta('mcp_metrics_rate_limited_total{service="door-limited"}')).toBe(refused);
    expect(await countIn(svc.sql, "metrics", "service = ?", "door-limited")).toBe(3);
  });

  it("should refuse an admin operation with an ingest key PERMISSION_DENIED / 403 before it spends a token", async () => {
    const key = await svc.keyFor("door-ingest-only");
    for (const protocol of PROTOCOLS) {
      const admin = createClient(AdminService, protocol.transport(svc.url, [apiKey(key)]));
      const error = await failure(admin.listRetentionPolicies({}));
      expect(error.code, protocol.name).toBe(Code.PermissionDenied);
    }
    const res = await fetch(`${svc.url}/admin/retention/policies`, {
      headers: { "x-api-key": key },
    });
    expect(res.status).toBe(403);
    // Seven refusals, no token spent: the bucket is still full.
    const bucket = await fetch(`${svc.url}/rate-limit`, { headers: { "x-api-key": key } });
    expect(await bucket.json()).toMatchObject({ rate_limit: 3, available_tokens: 3 });
  });
});
