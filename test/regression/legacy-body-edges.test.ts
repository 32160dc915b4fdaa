// backends: sqlite only: legacy body decoding and parsing, before storage
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { countRows, startTestService, type TestService } from "../support/service.js";

describe("regression: legacy bodies that once hung, crashed or passed", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({ METRICS_MAX_REQUEST_BYTES: "65536" });
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should answer 413, not hang, for a multi-chunk gzip body that decompresses past the limit", async () => {
    const raw = gzipSync(Buffer.alloc(20_000_000, "a"));
    expect(raw.length).toBeGreaterThan(16_384); // several network chunks
    const res = await postMetrics(svc.url, undefined, {
      key: svc.key,
      raw,
      headers: { "content-encoding": "gzip" },
    });
    expect(res.status).toBe(413);
  });

  it("should answer 400, not hang, for a large body of random bytes sent as gzip", async () => {
    const res = await postMetrics(svc.url, undefined, {
      key: svc.key,
      raw: randomBytes(60_000),
      headers: { "content-encoding": "gzip" },
    });
    expect(res.status).toBe(400);
  });

  it("should refuse NaN where an object key belongs as invalid JSON", async () => {
    const res = await postMetrics(svc.url, undefined, {
      raw: '{"service":"k","metrics":[{"type":"custom","value":1,"metadata":{NaN:1}}]}',
    });
    expect(res.status).toBe(422);
    expect((res.json.detail as { type: string }[])[0]?.type).toBe("json_invalid");
  });

  it("should reject a value nested thousands deep with a message, not a 500", async () => {
    const deep = `${"[".repeat(5000)}1${"]".repeat(5000)}`;
    const raw = `{"service":"deep","metrics":[{"type":"custom","value":1,"dimensions":{"d":${deep}}}]}`;
    const res = await postMetrics(svc.url, undefined, { key: svc.key, raw });
    expect(res.status).toBe(200);
    expect(res.json.errors).toEqual([
      "metrics[0].dimensions.d: Dimension value nested too deeply: max 32 levels",
    ]);
    expect(countRows(svc.db, "metrics", "service = 'deep'")).toBe(0);
  });

  it("should treat whitespace as invalid JSON (422 before the key) and a JSON null as a missing body", async () => {
    expect((await postMetrics(svc.url, undefined, { raw: "   " })).status).toBe(422);
    expect((await postMetrics(svc.url, undefined, { raw: "null" })).status).toBe(401);
    const withKey = await postMetrics(svc.url, undefined, { key: svc.key, raw: "null" });
    expect(withKey.json).toEqual({
      detail: [{ type: "missing", loc: ["body"], msg: "Field required", input: null }],
    });
  });

  it("should accept a UTF-8 byte order mark before the JSON", async () => {
    const raw = `\uFEFF${JSON.stringify({ service: "bom", metrics: [legacyMetric()] })}`;
    expect(
      (await postMetrics(svc.url, undefined, { key: await svc.keyFor("bom"), raw })).status,
    ).toBe(200);
  });

  it("should refuse repeated X-API-Key headers with 400, whichever a framework would read", async () => {
    // fetch folds repeated headers into one line; node:http sends an array as separate lines.
    const body = JSON.stringify({ service: "dup", metrics: [legacyMetric()] });
    const key = await svc.keyFor("dup");
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${svc.url}/metrics`, {
        method: "POST",
        headers: { "content-type": "application/json", "X-API-Key": [key, "second"] },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end(body);
    });
    // Starlette's dict kept the last value, Node's rawHeaders give the first:
    // two keys are ambiguous, and neither is used (issue 21).
    expect(status).toBe(400);
    expect(countRows(svc.db, "metrics", "service = 'dup'")).toBe(0);
  });
});
