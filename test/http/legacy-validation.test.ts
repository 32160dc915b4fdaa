import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { countIn, startTestService, type TestService } from "../support/service.js";

const many = (n: number, prefix: string, value: unknown = 1) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, value]));

/**
 * Contract §2 layer B: a batch with any violation is answered 200, with
 * accepted 0, rejected = len(metrics) and every "<field path>: <message>".
 * Each row: name, the request body (raw text where JSON cannot say it), the errors.
 */
const REJECTED: [string, string, string[]][] = [
  [
    "empty service",
    JSON.stringify({ service: "", metrics: [legacyMetric()] }),
    ["service: Service name is required"],
  ],
  [
    "service with a space",
    JSON.stringify({ service: "my service", metrics: [legacyMetric()] }),
    ["service: Service name must contain only alphanumeric characters, underscores, and hyphens"],
  ],
  [
    "instance id with a slash",
    JSON.stringify({ service: "svc", instance_id: "pod/1", metrics: [legacyMetric()] }),
    [
      "instance_id: Instance ID must contain only alphanumeric characters, underscores, dots, and hyphens",
    ],
  ],
  [
    "a NUL character in a dimension value",
    JSON.stringify({
      service: "svc",
      metrics: [legacyMetric({ dimensions: { tool_name: "a\u0000b" } })],
    }),
    ["metrics[0].dimensions.tool_name: Dimension value must not contain a NUL character (U+0000)"],
  ],
  [
    "a NUL character in the version",
    JSON.stringify({ service: "svc", version: "1.0\u0000", metrics: [legacyMetric()] }),
    ["version: Version must not contain a NUL character (U+0000)"],
  ],
  [
    "no metrics",
    JSON.stringify({ service: "svc", metrics: [] }),
    ["metrics: At least one metric is required"],
  ],
  [
    "5,001 metrics, one past METRICS_MAX_BATCH_EVENTS's default",
    JSON.stringify({
      service: "svc",
      metrics: Array.from({ length: 5001 }, () => ({ type: "custom", value: 1 })),
    }),
    ["metrics: Too many metrics in request: 5001, max 5000"],
  ],
  [
    "a naive timestamp far in the future",
    JSON.stringify({
      service: "svc",
      metrics: [legacyMetric({ timestamp: "2099-01-01T00:00:00" })],
    }),
    ["metrics[0].timestamp: Timestamp is too far in the future: 2099-01-01T00:00:00"],
  ],
  [
    "an aware timestamp far in the future",
    JSON.stringify({
      service: "svc",
      metrics: [legacyMetric({ timestamp: "2099-01-01T00:00:00.5Z" })],
    }),
    ["metrics[0].timestamp: Timestamp is too far in the future: 2099-01-01T00:00:00.500000+00:00"],
  ],
  [
    "a NaN value",
    '{"service":"svc","metrics":[{"type":"custom","value":NaN}]}',
    [
      "metrics[0].value: Metric value out of range: nan, must be between -1000000000000.0 and 1000000000000.0",
      "metrics[0].value: Metric value cannot be NaN",
    ],
  ],
  [
    "an Infinity value",
    '{"service":"svc","metrics":[{"type":"custom","value":Infinity}]}',
    [
      "metrics[0].value: Metric value out of range: inf, must be between -1000000000000.0 and 1000000000000.0",
      "metrics[0].value: Metric value cannot be infinite",
    ],
  ],
  [
    "a -Infinity value",
    '{"service":"svc","metrics":[{"type":"custom","value":-Infinity}]}',
    [
      "metrics[0].value: Metric value out of range: -inf, must be between -1000000000000.0 and 1000000000000.0",
      "metrics[0].value: Metric value cannot be infinite",
    ],
  ],
  [
    "a value over 1e12",
    JSON.stringify({ service: "svc", metrics: [legacyMetric({ value: 2e12 })] }),
    [
      "metrics[0].value: Metric value out of range: 2000000000000.0, must be between -1000000000000.0 and 1000000000000.0",
    ],
  ],
  [
    "a negative duration",
    JSON.stringify({ service: "svc", metrics: [legacyMetric({ duration_ms: -5 })] }),
    ["metrics[0].duration_ms: Duration cannot be negative: -5.0"],
  ],
  [
    "a duration over 24 h",
    JSON.stringify({ service: "svc", metrics: [legacyMetric({ duration_ms: 86400001 })] }),
    ["metrics[0].duration_ms: Duration too large: 86400001.0ms, max 86400000.0ms"],
  ],
  [
    "21 dimensions",
    JSON.stringify({ service: "svc", metrics: [legacyMetric({ dimensions: many(21, "d") })] }),
    ["metrics[0].dimensions: Too many dimensions: 21, max 20"],
  ],
  [
    "a dimension key with a dash",
    JSON.stringify({
      service: "svc",
      metrics: [legacyMetric({ dimensions: { "invalid-key": 1 } })],
    }),
    [
      "metrics[0].dimensions.invalid-key: Dimension key must start with letter/underscore and contain only alphanumeric/underscore characters",
    ],
  ],
  [
    "a dimension key starting with a digit",
    JSON.stringify({ service: "svc", metrics: [legacyMetric({ dimensions: { "1abc": 1 } })] }),
    [
      "metrics[0].dimensions.1abc: Dimension key must start with letter/underscore and contain only alphanumeric/underscore characters",
    ],
  ],
  [
    "a 51-character dimension key",
    JSON.stringify({
      service: "svc",
      metrics: [legacyMetric({ dimensions: { ["k".repeat(51)]: 1 } })],
    }),
    [`metrics[0].dimensions.${"k".repeat(51)}: Dimension key too long: 51 chars, max 50`],
  ],
  [
    "a 201-character dimension value",
    JSON.stringify({
      service: "svc",
      metrics: [legacyMetric({ dimensions: { note: "v".repeat(201) } })],
    }),
    ["metrics[0].dimensions.note: Dimension value too long: 201 chars, max 200"],
  ],
  [
    "a 201-character typed dimension (method)",
    JSON.stringify({
      service: "svc",
      metrics: [legacyMetric({ dimensions: { method: "m".repeat(201) } })],
    }),
    ["metrics[0].dimensions.method: Dimension value too long: 201 chars, max 200"],
  ],
  [
    "31 metadata fields",
    JSON.stringify({ service: "svc", metrics: [legacyMetric({ metadata: many(31, "m") })] }),
    ["metrics[0].metadata: Too many metadata fields: 31, max 30"],
  ],
  [
    "a 51-character metadata key",
    JSON.stringify({
      service: "svc",
      metrics: [legacyMetric({ metadata: { ["k".repeat(51)]: 1 } })],
    }),
    [`metrics[0].metadata.${"k".repeat(51)}: Metadata key too long: 51 chars, max 50`],
  ],
  [
    "a metadata value over 1000 characters",
    JSON.stringify({
      service: "svc",
      metrics: [legacyMetric({ metadata: { trace: "t".repeat(1001) } })],
    }),
    ["metrics[0].metadata.trace: Metadata value too long: 1001 chars, max 1000"],
  ],
  [
    "violations in two metrics",
    JSON.stringify({
      service: "svc",
      metrics: [legacyMetric({ duration_ms: -1 }), legacyMetric(), legacyMetric({ value: 1e13 })],
    }),
    [
      "metrics[0].duration_ms: Duration cannot be negative: -1.0",
      "metrics[2].value: Metric value out of range: 10000000000000.0, must be between -1000000000000.0 and 1000000000000.0",
    ],
  ],
];

/** Contract §2 layer A: what pydantic refused with 422, by error type and location. */
const SCHEMA_ERRORS: [string, unknown, { type: string; loc: (string | number)[] }[]][] = [
  [
    "a missing service",
    { metrics: [legacyMetric()] },
    [{ type: "missing", loc: ["body", "service"] }],
  ],
  [
    "a service over 50 characters",
    { service: "s".repeat(51), metrics: [legacyMetric()] },
    [{ type: "string_too_long", loc: ["body", "service"] }],
  ],
  [
    "a version over 20 characters",
    { service: "svc", version: "1".repeat(21), metrics: [legacyMetric()] },
    [{ type: "string_too_long", loc: ["body", "version"] }],
  ],
  [
    "an instance id over 50 characters",
    { service: "svc", instance_id: "i".repeat(51), metrics: [legacyMetric()] },
    [{ type: "string_too_long", loc: ["body", "instance_id"] }],
  ],
  [
    "a numeric service",
    { service: 7, metrics: [legacyMetric()] },
    [{ type: "string_type", loc: ["body", "service"] }],
  ],
  ["missing metrics", { service: "svc" }, [{ type: "missing", loc: ["body", "metrics"] }]],
  [
    "metrics that are not a list",
    { service: "svc", metrics: {} },
    [{ type: "list_type", loc: ["body", "metrics"] }],
  ],
  [
    "an unknown metric type",
    { service: "svc", metrics: [legacyMetric({ type: "bogus" })] },
    [{ type: "enum", loc: ["body", "metrics", 0, "type"] }],
  ],
  [
    "a missing value",
    { service: "svc", metrics: [{ type: "custom" }] },
    [{ type: "missing", loc: ["body", "metrics", 0, "value"] }],
  ],
  [
    "a null value",
    { service: "svc", metrics: [legacyMetric({ value: null })] },
    [{ type: "float_type", loc: ["body", "metrics", 0, "value"] }],
  ],
  [
    "a non-numeric value",
    { service: "svc", metrics: [legacyMetric({ value: "lots" })] },
    [{ type: "float_parsing", loc: ["body", "metrics", 0, "value"] }],
  ],
  [
    "a timestamp that is no date",
    { service: "svc", metrics: [legacyMetric({ timestamp: "yesterday" })] },
    [{ type: "datetime_parsing", loc: ["body", "metrics", 0, "timestamp"] }],
  ],
  [
    "null dimensions",
    { service: "svc", metrics: [legacyMetric({ dimensions: null })] },
    [{ type: "dict_type", loc: ["body", "metrics", 0, "dimensions"] }],
  ],
  ["a body that is a list", [legacyMetric()], [{ type: "model_attributes_type", loc: ["body"] }]],
  [
    "several problems at once",
    { service: "s".repeat(51), metrics: [{ type: "x", value: null }] },
    [
      { type: "string_too_long", loc: ["body", "service"] },
      { type: "enum", loc: ["body", "metrics", 0, "type"] },
      { type: "float_type", loc: ["body", "metrics", 0, "value"] },
    ],
  ],
];

describe("legacy validation (docs/legacy-contract.md §2) over POST /metrics", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({ METRICS_RATE_LIMIT: "100000" });
  });
  afterAll(async () => {
    await svc.close();
  });

  it.each(REJECTED)(
    "should reject the whole batch for %s: 200, every message, nothing stored",
    async (_name, raw, errors) => {
      const before = await countIn(svc.sql, "metrics");
      const count = (JSON.parse(raw.replace(/-?Infinity|NaN/g, "0")) as { metrics: unknown[] })
        .metrics.length;
      const res = await postMetrics(svc.url, undefined, { key: svc.key, raw });
      expect(res.status).toBe(200);
      expect(res.json).toEqual({
        status: "success",
        accepted: 0,
        rejected: count,
        errors,
        request_id: expect.stringMatching(/^req_[0-9a-f]{16}$/),
      });
      expect(await countIn(svc.sql, "metrics")).toBe(before);
    },
  );

  it.each(SCHEMA_ERRORS)(
    "should answer 422 for %s, storing nothing",
    async (_name, body, expected) => {
      const before = await countIn(svc.sql, "metrics");
      const res = await postMetrics(svc.url, body, { key: svc.key });
      expect(res.status).toBe(422);
      expect(
        (res.json.detail as { type: string; loc: unknown[] }[]).map(({ type, loc }) => ({
          type,
          loc,
        })),
      ).toEqual(expected);
      expect(await countIn(svc.sql, "metrics")).toBe(before);
    },
  );

  it("should accept the edges of every limit and store them", async () => {
    const res = await postMetrics(
      svc.url,
      {
        service: "edges_OK-1",
        version: "not-semver-is-only-a",
        instance_id: "pod-1.a_b",
        metrics: [
          legacyMetric({ duration_ms: 0, value: -1e12 }),
          legacyMetric({ duration_ms: 86400000, value: 1e12 }),
          legacyMetric({ dimensions: many(20, "d", null) }),
          legacyMetric({ metadata: { "": "an empty key is allowed", ...many(29, "m", null) } }),
          legacyMetric({
            dimensions: { note: "v".repeat(200) },
            metadata: { trace: "t".repeat(1000) },
          }),
          legacyMetric({ value: "1.5" }),
          legacyMetric({ timestamp: null }),
        ],
      },
      { key: await svc.keyFor("edges_OK-1") },
    );
    expect(res.json).toMatchObject({ accepted: 7, rejected: 0, errors: [] });
    expect(await countIn(svc.sql, "metrics", "service = 'edges_OK-1'")).toBe(7);
    expect(await countIn(svc.sql, "metrics", "service = 'edges_OK-1' AND value = 1.5")).toBe(1);
  });
});
