import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashApiKey } from "../../src/auth/api-key.js";
import { sendWhileCommitsAreHeld } from "../support/commit-gate.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { countIn, startTestService, type TestService } from "../support/service.js";

describe("legacy JSON API (docs/legacy-contract.md §1)", () => {
  let svc: TestService;
  const limitedKey = "limited-key-0123456789";
  const inactiveKey = "inactive-key-0123456789";
  beforeAll(async () => {
    svc = await startTestService({
      METRICS_API_KEY_LIMITED: limitedKey,
      METRICS_MAX_REQUEST_BYTES: "65536",
    });
    await svc.sql.run("UPDATE api_keys SET rate_limit = 3 WHERE service_name = 'limited'");
    await svc.sql.run(
      "INSERT INTO api_keys (key_hash, service_name, is_active, key_id) VALUES (?, 'old', FALSE, 'key_old')",
      hashApiKey(inactiveKey),
    );
    await svc.running.registry.reload();
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should answer GET / and GET /health with the legacy bodies", async () => {
    expect(await (await fetch(`${svc.url}/`)).json()).toEqual({
      service: "MCP Metrics Collection Service",
      // The package's version, where the Python service always said 1.0.0.
      version: JSON.parse(readFileSync("package.json", "utf8")).version,
      status: "running",
      endpoints: {
        metrics: "/metrics",
        health: "/health",
        flush: "/flush",
        "rate-limit": "/rate-limit",
      },
    });
    expect(await (await fetch(`${svc.url}/health`)).json()).toEqual({
      status: "healthy",
      service: "metrics-collection",
    });
  });

  it("should store an accepted batch before answering 200 with the legacy body and rate-limit headers", async () => {
    const key = await svc.keyFor("ok-svc");
    // Sent while another connection holds the write lock: the 200 must wait for
    // the commit, and both rows must be readable the moment it arrives.
    const held = await sendWhileCommitsAreHeld(
      svc,
      () =>
        postMetrics(
          svc.url,
          {
            service: "ok-svc",
            version: "1.0.0",
            instance_id: "ok-1",
            metrics: [legacyMetric(), legacyMetric()],
          },
          { key },
        ),
      (answer) => String(answer.json.request_id),
      ["metrics", "auth_metrics"],
    );
    expect(held.answeredWhileHeld).toBe(false);
    expect(held.storedOnArrival).toEqual({ metrics: 2, auth_metrics: 2 });
    const res = held.answer;
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      status: "success",
      accepted: 2,
      rejected: 0,
      errors: [],
      request_id: expect.stringMatching(/^req_[0-9a-f]{16}$/),
    });
    expect(res.headers.get("x-ratelimit-limit")).toBe("1000");
    expect(Number(res.headers.get("x-ratelimit-remaining"))).toBeLessThan(1000);
    expect(res.headers.get("ratelimit-policy")).toBe('"default";q=1000;w=60');
    expect(res.headers.get("ratelimit")).toMatch(/^"default";r=\d+;t=\d+$/);
    expect(
      await countIn(
        svc.sql,
        "metrics",
        "request_id = ? AND service = 'ok-svc' AND service_version = '1.0.0' AND instance_id = 'ok-1'",
        res.json.request_id,
      ),
    ).toBe(2);
    expect(
      await countIn(
        svc.sql,
        "auth_metrics",
        "request_id = ? AND success = TRUE AND method = 'jwt'",
        res.json.request_id,
      ),
    ).toBe(2);
  });

  it.each([
    ["no header", undefined, "API key required in X-API-Key header"],
    ["an empty header", "", "API key required in X-API-Key header"],
    ["an unknown key", "not-a-key", "Invalid API key"],
    ["an inactive key", inactiveKey, "API key is inactive"],
  ])(
    "should answer 401 for %s, without rate-limit headers, storing nothing",
    async (_name, key, detail) => {
      const res = await postMetrics(
        svc.url,
        { service: "no-auth", metrics: [legacyMetric()] },
        { key },
      );
      expect(res.status).toBe(401);
      expect(res.json).toEqual({ detail });
      expect(res.headers.get("x-ratelimit-limit")).toBeNull();
      expect(await countIn(svc.sql, "metrics", "service = 'no-auth'")).toBe(0);
    },
  );

  it("should answer 422 for a body that is not JSON, before checking the key", async () => {
    const res = await postMetrics(svc.url, undefined, { raw: '{"service": "x", ' });
    expect(res.status).toBe(422);
    expect((res.json.detail as { type: string }[])[0]).toMatchObject({
      type: "json_invalid",
      loc: ["body", expect.any(Number)],
    });
  });

  it("should treat an empty body as missing: 401 without a key, 422 with one", async () => {
    expect((await postMetrics(svc.url, undefined, { raw: "" })).status).toBe(401);
    const res = await postMetrics(svc.url, undefined, { key: svc.key, raw: "" });
    expect(res.status).toBe(422);
    expect(res.json).toEqual({
      detail: [{ type: "missing", loc: ["body"], msg: "Field required", input: null }],
    });
  });

  it("should check the key before the body's schema: bad key and bad schema is 401", async () => {
    const res = await postMetrics(svc.url, { metrics: "nope" }, { key: "not-a-key" });
    expect(res.status).toBe(401);
  });

  it("should answer 429 with X-RateLimit-Limit, X-RateLimit-Remaining: 0 and Retry-After once the bucket is empty", async () => {
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof postMetrics>> | undefined;
    for (let i = 0; i < 4; i++) {
      last = await postMetrics(
        svc.url,
        { service: "limited", metrics: [legacyMetric()] },
        { key: limitedKey },
      );
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(last?.json).toEqual({ detail: "Rate limit exceeded. Limit: 3 requests/minute" });
    expect(last?.headers.get("x-ratelimit-limit")).toBe("3");
    expect(last?.headers.get("x-ratelimit-remaining")).toBe("0");
    expect(last?.headers.get("ratelimit-policy")).toBe('"default";q=3;w=60');
    expect(last?.headers.get("ratelimit")).toMatch(/^"default";r=0;t=([1-9]|1\d|20)$/);
    // 3 per minute: the next token is at most 20 s away.
    expect(Number(last?.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(Number(last?.headers.get("retry-after"))).toBeLessThanOrEqual(20);
    expect(await countIn(svc.sql, "metrics", "service = 'limited'")).toBe(3);
    // /rate-limit reports the empty bucket without spending from it.
    const state = await (
      await fetch(`${svc.url}/rate-limit`, { headers: { "X-API-Key": limitedKey } })
    ).json();
    expect(state).toMatchObject({
      service: "limited",
      rate_limit: 3,
      available_tokens: 0,
      reset_time_seconds: 60,
    });
  });

  it("should spend a token on a schema-invalid body sent with a good key", async () => {
    const key = "spend-key-0123456789";
    const one = await startTestService({ METRICS_API_KEY_SPENDER: key, METRICS_RATE_LIMIT: "10" });
    try {
      const bad = await postMetrics(
        one.url,
        { service: "spender", metrics: [{ type: "auth_request" }] },
        { key },
      );
      expect(bad.status).toBe(422);
      const state = await (
        await fetch(`${one.url}/rate-limit`, { headers: { "X-API-Key": key } })
      ).json();
      expect(state).toEqual({
        service: "spender",
        rate_limit: 10,
        available_tokens: 9,
        reset_time_seconds: 6,
      });
    } finally {
      await one.close();
    }
  });

  describe("GET /rate-limit", () => {
    it("should report a full bucket for a key that has not been used, without spending", async () => {
      const key = "fresh-key-0123456789";
      const one = await startTestService({ METRICS_API_KEY_FRESH: key });
      try {
        for (let i = 0; i < 2; i++) {
          const res = await fetch(`${one.url}/rate-limit`, { headers: { "X-API-Key": key } });
          expect(res.status).toBe(200);
          expect(await res.json()).toEqual({
            service: "fresh",
            rate_limit: 1000,
            available_tokens: 1000,
            reset_time_seconds: 0,
          });
        }
      } finally {
        await one.close();
      }
    });

    it.each([
      [undefined, "API key required in X-API-Key header"],
      ["not-a-key", "Invalid API key"],
    ])("should answer 401 for key %s (the Python service answered 500)", async (key, detail) => {
      const res = await fetch(`${svc.url}/rate-limit`, {
        headers: key === undefined ? {} : { "X-API-Key": key },
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ detail });
    });
  });

  describe("POST /flush", () => {
    it("should answer once everything accepted is committed, with rate-limit headers", async () => {
      const res = await fetch(`${svc.url}/flush`, {
        method: "POST",
        headers: { "X-API-Key": svc.key },
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        status: "success",
        message: "Metrics flushed to storage",
      });
      expect(res.headers.get("x-ratelimit-limit")).toBe("1000");
    });

    it("should need a key", async () => {
      const res = await fetch(`${svc.url}/flush`, { method: "POST" });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ detail: "API key required in X-API-Key header" });
    });
  });

  describe("body limits and compression", () => {
    const bigBody = (n: number) =>
      JSON.stringify({
        service: "big",
        metrics: [legacyMetric({ metadata: { blob: "x".repeat(n) } })],
      });

    it("should answer 413 before parsing a body over METRICS_MAX_REQUEST_BYTES, storing nothing", async () => {
      const res = await postMetrics(svc.url, undefined, {
        key: await svc.keyFor("big"),
        raw: bigBody(70_000),
      });
      expect(res.status).toBe(413);
      expect(res.json).toEqual({ detail: "Request body too large: the limit is 65536 bytes" });
      expect(await countIn(svc.sql, "metrics", "service = 'big'")).toBe(0);
    });

    it("should accept a gzip body, storing its events", async () => {
      const raw = gzipSync(
        JSON.stringify({ service: "gzipped", metrics: [legacyMetric(), legacyMetric()] }),
      );
      const res = await postMetrics(svc.url, undefined, {
        key: await svc.keyFor("gzipped"),
        raw,
        headers: { "content-encoding": "gzip" },
      });
      expect(res.status).toBe(200);
      expect(await countIn(svc.sql, "metrics", "service = 'gzipped'")).toBe(2);
    });

    it("should apply the limit to the decompressed size of a gzip body", async () => {
      const raw = gzipSync(bigBody(500_000));
      expect(raw.length).toBeLessThan(65536);
      const res = await postMetrics(svc.url, undefined, {
        key: await svc.keyFor("big"),
        raw,
        headers: { "content-encoding": "gzip" },
      });
      expect(res.status).toBe(413);
      expect(await countIn(svc.sql, "metrics", "service = 'big'")).toBe(0);
    });

    it("should answer 400 for a corrupt gzip body and 415 for an unknown encoding", async () => {
      const corrupt = await postMetrics(svc.url, undefined, {
        key: svc.key,
        raw: Buffer.from("not gzip at all"),
        headers: { "content-encoding": "gzip" },
      });
      expect(corrupt.status).toBe(400);
      const unknown = await postMetrics(svc.url, undefined, {
        key: svc.key,
        raw: "{}",
        headers: { "content-encoding": "br" },
      });
      expect(unknown.status).toBe(415);
    });
  });

  it("should answer 405 for a wrong method and 404 for an unknown path", async () => {
    expect((await fetch(`${svc.url}/metrics`)).status).toBe(405);
    expect((await fetch(`${svc.url}/nowhere`)).status).toBe(404);
  });
});
