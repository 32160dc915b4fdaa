// backends: sqlite only: JSON parsing and validation, before storage
// Bug: a body with a Python `NaN` token and deep nesting was called invalid JSON (422 json_invalid at position 0): the NaN reviver overflowed the stack.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postMetrics } from "../support/legacy.js";
import { countRows, startTestService, type TestService } from "../support/service.js";

/** A metadata value nested `levels` objects deep, as JSON text. */
const nestedObjects = (levels: number) => `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`;

describe("regression: NaN tokens in deeply nested JSON", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  // 40 levels is past the validator's bound of 32; 10,000 is where the old reviver overflowed (near 2,500 here).
  it.each([40, 10_000])(
    "should parse NaN with metadata nested %i levels and reject the metric by validation",
    async (levels) => {
      const raw = `{"service":"test-service","metrics":[{"type":"custom","value":NaN,"metadata":{"m":${nestedObjects(levels)}}}]}`;
      const res = await postMetrics(svc.url, undefined, { key: svc.key, raw });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ accepted: 0, rejected: 1 });
      expect(res.json.errors).toEqual(
        expect.arrayContaining([
          "metrics[0].value: Metric value cannot be NaN",
          "metrics[0].metadata.m: Metadata value nested too deeply: max 32 levels",
        ]),
      );
      expect(countRows(svc.db, "metrics")).toBe(0);
    },
  );
});
