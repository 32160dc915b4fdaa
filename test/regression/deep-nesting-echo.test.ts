// backends: sqlite only: JSON parsing and the 422 echo, before storage
// Bug: a 422 echoing deeply nested input as `input` overflowed JSON.stringify's stack and answered 500.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { countRows, startTestService, type TestService } from "../support/service.js";

/** `levels` nested empty arrays: `[[[...]]]`. */
const nestedArrays = (levels: number) => `${"[".repeat(levels)}${"]".repeat(levels)}`;

interface Detail {
  type: string;
  loc: (string | number)[];
  msg: string;
  input: unknown;
}

describe("regression: a 422 echoing deeply nested input", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should answer 422 naming the location when metrics is 10,000 levels of nested arrays", async () => {
    const raw = `{"service":"test-service","metrics":${nestedArrays(10_000)}}`;
    const res = await postMetrics(svc.url, undefined, { key: svc.key, raw });
    expect(res.status).toBe(422);
    const [detail] = res.json.detail as Detail[];
    expect(detail).toMatchObject({
      type: "model_attributes_type",
      loc: ["body", "metrics", 0],
      msg: "Input should be a valid dictionary or object to extract fields from",
    });
    // The echo is cut off where it nests too deeply, not dropped.
    expect(JSON.stringify(detail?.input)).toContain("<nested too deeply to show>");
  });

  it("should answer 422 for a body of 100,000 nested arrays, closed or not", async () => {
    const closed = await postMetrics(svc.url, undefined, {
      key: svc.key,
      raw: nestedArrays(100_000),
    });
    expect(closed.status).toBe(422);
    expect((closed.json.detail as Detail[])[0]).toMatchObject({
      type: "model_attributes_type",
      loc: ["body"],
    });

    const open = await postMetrics(svc.url, undefined, { key: svc.key, raw: "[".repeat(100_000) });
    expect(open.status).toBe(422);
    expect((open.json.detail as Detail[])[0]).toMatchObject({
      type: "json_invalid",
      loc: ["body", expect.any(Number)],
    });
  });

  it("should still answer and store good batches afterwards", async () => {
    expect((await fetch(`${svc.url}/health`)).status).toBe(200);
    const res = await postMetrics(
      svc.url,
      { service: "test-service", metrics: [legacyMetric()] },
      { key: svc.key },
    );
    expect(res.json).toMatchObject({ accepted: 1, rejected: 0 });
    expect(countRows(svc.db, "metrics", "service = 'test-service'")).toBe(1);
  });
});
