// backends: sqlite only: refusals are logged at the door, before storage
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Principal } from "../../src/auth/principal.js";
import { createLogger } from "../../src/log.js";
import { createRefusalLog } from "../../src/telemetry/refusal-log.js";
import { GRPC, ingestClient } from "../support/clients.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { type ServiceProcess, spawnService } from "../support/process.js";
import { tempDir } from "../support/service.js";

/** A logger whose JSON lines are kept in `lines`. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, log: createLogger("info", sink) };
}

const principal = (service: string, publicId: string): Principal => ({
  keyId: 1,
  publicId,
  source: null,
  bucketId: "b",
  service,
  rateLimitPerMinute: 10,
  scope: "ingest",
});

describe("createRefusalLog", () => {
  it("should count every refusal and log one warn line per key and reason per interval, saying how many it left out", () => {
    const { lines, log } = capturingLogger();
    const counted: string[] = [];
    let now = 0;
    const refusals = createRefusalLog({
      log,
      count: (service, reason) => counted.push(`${service}/${reason}`),
      intervalMillis: 10_000,
      now: () => now,
    });
    const registry = principal("registry", "key_aaaaaaaaaaaa");
    const limited = {
      ingress: "json",
      reason: "rate_limited",
      status: "429",
      error: "Rate limit exceeded. Limit: 10 requests/minute",
      principal: registry,
    };
    for (let i = 0; i < 50; i++) refusals.refused(limited);
    refusals.refused({ ...limited, reason: "invalid_batch", status: "200", service: "nginx" });
    refusals.refused({
      ingress: "grpc",
      reason: "api_key_invalid",
      status: "unauthenticated",
      error: "Invalid API key",
    });
    now = 10_001;
    refusals.refused(limited);
    expect(counted).toHaveLength(53);
    expect(counted.filter((c) => c === "registry/rate_limited")).toHaveLength(51);
    expect(counted).toContain("_unknown/api_key_invalid");
    expect(lines.map((l) => [l.level, l.msg, l.reason, l.keyId, l.suppressed])).toEqual([
      [40, "request refused", "rate_limited", "key_aaaaaaaaaaaa", undefined],
      [40, "request refused", "invalid_batch", "key_aaaaaaaaaaaa", undefined],
      [40, "request refused", "api_key_invalid", undefined, undefined],
      [40, "request refused", "rate_limited", "key_aaaaaaaaaaaa", 49],
    ]);
    expect(lines[1]).toMatchObject({ keyService: "registry", service: "nginx", status: "200" });
    expect(lines[0]?.error).toBe("Rate limit exceeded. Limit: 10 requests/minute");
  });

  it("should count a shutdown's refusals without a warning", () => {
    const { lines, log } = capturingLogger();
    let count = 0;
    const refusals = createRefusalLog({ log, count: () => count++ });
    refusals.refused({ ingress: "json", reason: "shutting_down", status: "503", error: "x" });
    expect([count, lines.length]).toEqual([1, 0]);
  });
});

describe("refusals of a running service, in its log", () => {
  let svc: ServiceProcess;
  const key = "refusal-log-key-0123456789";
  beforeAll(async () => {
    const dir = tempDir();
    svc = await spawnService({
      SQLITE_DB_PATH: `${dir}/metrics.db`,
      METRICS_API_KEY_GATEWAY: key,
      METRICS_RATE_LIMIT: "4",
      METRICS_KEY_SERVICE_BINDING: "enforce",
    });
  });
  afterAll(async () => {
    svc.child.kill("SIGTERM");
    await svc.exited;
  });

  it("should log a rejected batch, a wrong key, a mismatched service and a rate limit at warn, with the key's id", async () => {
    const invalid = await postMetrics(
      svc.url,
      { service: "gateway", metrics: [legacyMetric({ duration_ms: -1 })] },
      { key },
    );
    expect(invalid.json).toMatchObject({ accepted: 0, rejected: 1 });
    expect(
      (await postMetrics(svc.url, { service: "gateway", metrics: [] }, { key: "wrong" })).status,
    ).toBe(401);
    await ingestClient(GRPC, svc.url, key)
      .ingest({ service: "nginx", events: [{ kind: { case: "authRequest", value: {} } }] })
      .catch(() => {});
    for (let i = 0; i < 3; i++) {
      await postMetrics(svc.url, { service: "gateway", metrics: [legacyMetric()] }, { key });
    }
    const warned = () =>
      svc
        .output()
        .stdout.split("\n")
        .filter((l) => l.includes('"request refused"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    await expect.poll(() => warned().length).toBeGreaterThanOrEqual(4);
    const byReason = Object.fromEntries(warned().map((l) => [l.reason, l]));
    expect(byReason.invalid_batch).toMatchObject({
      level: 40,
      ingress: "json",
      status: "200",
      keyService: "gateway",
      service: "gateway",
      events: 1,
      error: "metrics[0].duration_ms: Duration cannot be negative: -1.0",
    });
    expect(String(byReason.invalid_batch?.keyId)).toMatch(/^key_[0-9a-f]{12}$/);
    expect(byReason.api_key_invalid).toMatchObject({ status: "401", error: "Invalid API key" });
    expect(byReason.service_mismatch).toMatchObject({
      ingress: "grpc",
      status: "permission_denied",
      keyService: "gateway",
      service: "nginx",
    });
    expect(byReason.rate_limited).toMatchObject({ status: "429", keyService: "gateway" });
    // The key itself never appears.
    expect(svc.output().stdout).not.toContain(key);
  });
});

describe("a key reporting as another service, in the log (METRICS_KEY_SERVICE_BINDING=audit)", () => {
  it("should warn once per key and reported service, however many batches follow", async () => {
    const registry = "upstream-registry-key-0123456789";
    const svc = await spawnService({
      SQLITE_DB_PATH: `${tempDir()}/metrics.db`,
      METRICS_API_KEY_REGISTRY: registry,
    });
    try {
      for (const service of ["nginx", "nginx", "nginx", "registry", "edge"]) {
        const res = await postMetrics(
          svc.url,
          { service, metrics: [legacyMetric()] },
          { key: registry },
        );
        expect(res.json.accepted).toBe(1);
      }
      const lines = () =>
        svc
          .output()
          .stdout.split("\n")
          .filter((l) => l.includes("api key reports as another service"))
          .map((l) => JSON.parse(l) as Record<string, unknown>);
      await expect.poll(() => lines().length).toBe(2);
      expect(lines().map((l) => [l.level, l.keyService, l.service])).toEqual([
        [40, "registry", "nginx"],
        [40, "registry", "edge"],
      ]);
    } finally {
      svc.child.kill("SIGTERM");
      await svc.exited;
    }
  });
});
