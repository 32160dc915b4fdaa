// backends: sqlite only: validation as functions; no service, no database
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { type Event, EventSchema, type FlowStep } from "../../gen/mcp/metrics/v1/events_pb.js";
import type { Violation } from "../../src/errors.js";
import {
  type BatchInput,
  LEGACY_PATHS,
  RPC_PATHS,
  validateBatch,
} from "../../src/ingest/validate.js";

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);

function auth(
  fields: Partial<Omit<Event, "kind" | "$typeName">> = {},
  typed: Record<string, unknown> = {},
): Event {
  return create(EventSchema, { ...fields, kind: { case: "authRequest", value: typed } });
}

function batch(events: Event[], envelope: Partial<BatchInput> = {}): BatchInput {
  return { service: "svc", events, ...envelope };
}

function violations(input: BatchInput, paths = RPC_PATHS): Violation[] {
  return validateBatch(input, { nowMs: NOW, paths }).violations;
}

describe("validateBatch", () => {
  it("should take a batch of the configured size and name that size past it", () => {
    const events = (n: number) => Array.from({ length: n }, () => auth());
    const check = (n: number) =>
      validateBatch(batch(events(n)), { nowMs: NOW, paths: RPC_PATHS, maxEvents: 1024 }).violations;
    expect(check(1024)).toEqual([]);
    expect(check(1025)).toEqual([
      { field: "events", description: "Too many metrics in request: 1025, max 1024" },
    ]);
  });

  it("should accept a well-formed batch with no violations and no warnings", () => {
    const result = validateBatch(
      batch([auth({ durationMs: 0, timestamp: timestampFromMs(NOW) }, { success: true })], {
        version: "1.0.0",
        instanceId: "pod-1.a_b",
      }),
      { nowMs: NOW, paths: RPC_PATHS },
    );
    expect(result).toEqual({ violations: [], warnings: [] });
  });

  // Each row: what is wrong, the batch, and the exact violations of docs/legacy-contract.md §2.
  const cases: [string, BatchInput, Violation[]][] = [
    [
      "empty service",
      batch([auth()], { service: "" }),
      [{ field: "service", description: "Service name is required" }],
    ],
    [
      "service over 50 characters",
      batch([auth()], { service: "s".repeat(51) }),
      [{ field: "service", description: "Service name too long: 51 chars, max 50" }],
    ],
    [
      "service with a space",
      batch([auth()], { service: "my service" }),
      [
        {
          field: "service",
          description:
            "Service name must contain only alphanumeric characters, underscores, and hyphens",
        },
      ],
    ],
    [
      "version over 20 characters",
      batch([auth()], { version: "1.0.0-".padEnd(21, "x") }),
      [{ field: "version", description: "Version too long: 21 chars, max 20" }],
    ],
    [
      "instance id with a slash",
      batch([auth()], { instanceId: "pod/1" }),
      [
        {
          field: "instance_id",
          description:
            "Instance ID must contain only alphanumeric characters, underscores, dots, and hyphens",
        },
      ],
    ],
    [
      "instance id over 50 characters",
      batch([auth()], { instanceId: "i".repeat(51) }),
      [{ field: "instance_id", description: "Instance ID too long: 51 chars, max 50" }],
    ],
    ["no events", batch([]), [{ field: "events", description: "At least one metric is required" }]],
    [
      "5,001 events",
      batch(Array.from({ length: 5001 }, () => auth({ value: Number.NaN }))),
      [{ field: "events", description: "Too many metrics in request: 5001, max 5000" }],
    ],
    [
      "an event without a kind",
      batch([create(EventSchema, {})]),
      [
        {
          field: "events[0].kind",
          description:
            "Event kind is required: set one of auth_request, tool_execution, tool_discovery, protocol_latency, registry_operation, health_check, custom",
        },
      ],
    ],
    [
      "a timestamp 301 s ahead",
      batch([auth({ timestamp: timestampFromMs(NOW + 301_000) })]),
      [
        {
          field: "events[0].timestamp",
          description: "Timestamp is too far in the future: 2026-11-25T12:05:01+00:00",
        },
      ],
    ],
    [
      "a timestamp outside Timestamp's range",
      batch([auth({ timestamp: { seconds: 253_402_300_800n, nanos: 0 } as Event["timestamp"] })]),
      [
        {
          field: "events[0].timestamp",
          description: "Timestamp must be a valid time between 0001-01-01 and 9999-12-31 UTC",
        },
      ],
    ],
    [
      "a value over 1e12",
      batch([auth({ value: 1e13 })]),
      [
        {
          field: "events[0].value",
          description:
            "Metric value out of range: 10000000000000.0, must be between -1000000000000.0 and 1000000000000.0",
        },
      ],
    ],
    [
      "a NaN value",
      batch([auth({ value: Number.NaN })]),
      [
        {
          field: "events[0].value",
          description:
            "Metric value out of range: nan, must be between -1000000000000.0 and 1000000000000.0",
        },
        { field: "events[0].value", description: "Metric value cannot be NaN" },
      ],
    ],
    [
      "a -Infinity value",
      batch([auth({ value: Number.NEGATIVE_INFINITY })]),
      [
        {
          field: "events[0].value",
          description:
            "Metric value out of range: -inf, must be between -1000000000000.0 and 1000000000000.0",
        },
        { field: "events[0].value", description: "Metric value cannot be infinite" },
      ],
    ],
    [
      "a custom event without a value",
      batch([create(EventSchema, { kind: { case: "custom", value: { metricName: "x" } } })]),
      [{ field: "events[0].value", description: "Metric value is required" }],
    ],
    [
      "a negative duration",
      batch([auth({ durationMs: -0.5 })]),
      [{ field: "events[0].duration_ms", description: "Duration cannot be negative: -0.5" }],
    ],
    [
      "a duration over 24 h",
      batch([auth({ durationMs: 86_400_001 })]),
      [
        {
          field: "events[0].duration_ms",
          description: "Duration too large: 86400001.0ms, max 86400000.0ms",
        },
      ],
    ],
    [
      "21 dimensions counting typed ones",
      batch([
        auth(
          { dimensions: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`d${i}`, i])) },
          { success: true },
        ),
      ]),
      [{ field: "events[0].dimensions", description: "Too many dimensions: 21, max 20" }],
    ],
    [
      "a dimension key with a dash",
      batch([auth({ dimensions: { "invalid-key": 1 } })]),
      [
        {
          field: "events[0].dimensions.invalid-key",
          description:
            "Dimension key must start with letter/underscore and contain only alphanumeric/underscore characters",
        },
      ],
    ],
    [
      "a dimension key over 50 characters",
      batch([auth({ dimensions: { ["k".repeat(51)]: 1 } })]),
      [
        {
          field: `events[0].dimensions.${"k".repeat(51)}`,
          description: "Dimension key too long: 51 chars, max 50",
        },
      ],
    ],
    [
      "a dimension value over 200 characters",
      batch([auth({ dimensions: { note: "é".repeat(201) } })]),
      [
        {
          field: "events[0].dimensions.note",
          description: "Dimension value too long: 201 chars, max 200",
        },
      ],
    ],
    [
      "a typed dimension over 200 characters",
      batch([auth({}, { method: "m".repeat(201) })]),
      [
        {
          field: "events[0].auth_request.method",
          description: "Dimension value too long: 201 chars, max 200",
        },
      ],
    ],
    [
      "a dimension repeating a typed field",
      batch([auth({ dimensions: { success: false } }, { success: true })]),
      [
        {
          field: "events[0].dimensions.success",
          description:
            "Dimension key repeats the typed field auth_request.success; set only one of them",
        },
      ],
    ],
    [
      "an unknown flow step number",
      batch([
        create(EventSchema, {
          value: 1,
          kind: { case: "protocolLatency", value: { flowStep: 9 as FlowStep } },
        }),
      ]),
      [
        {
          field: "events[0].protocol_latency.flow_step",
          description:
            "Unknown value 9: expected one of initialize_to_tools_list, tools_list_to_tools_call, initialize_to_tools_call",
        },
      ],
    ],
    [
      "a NaN typed metadata number",
      batch([
        create(EventSchema, {
          kind: { case: "toolDiscovery", value: { embeddingTimeMs: Number.NaN } },
        }),
      ]),
      [
        {
          field: "events[0].tool_discovery.embedding_time_ms",
          description: "Metadata value must be a finite number, got nan",
        },
      ],
    ],
    [
      "31 metadata fields",
      batch([
        auth({ metadata: Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`m${i}`, i])) }),
      ]),
      [{ field: "events[0].metadata", description: "Too many metadata fields: 31, max 30" }],
    ],
    [
      "a metadata value over 1000 characters as JSON",
      batch([auth({ metadata: { blob: { a: "x".repeat(992) } } })]),
      [
        {
          field: "events[0].metadata.blob",
          description: "Metadata value too long: 1001 chars, max 1000",
        },
      ],
    ],
    [
      "a typed metadata field over 1000 characters",
      batch([auth({}, { errorCode: "e".repeat(1001) })]),
      [
        {
          field: "events[0].auth_request.error_code",
          description: "Metadata value too long: 1001 chars, max 1000",
        },
      ],
    ],
  ];

  it.each(cases)("should reject %s", (_name, input, expected) => {
    expect(violations(input)).toEqual(expected);
  });

  it("should allow the edges: duration 0 and 86,400,000, value ±1e12, 20 dimensions, 30 metadata, empty metadata keys and null values", () => {
    const events = [
      auth({ durationMs: 0, value: -1e12 }),
      auth({ durationMs: 86_400_000, value: 1e12 }),
      auth({
        dimensions: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`d${i}`, null])),
      }),
      auth({
        metadata: {
          "": "empty key is allowed",
          ...Object.fromEntries(Array.from({ length: 29 }, (_, i) => [`m${i}`, null])),
        },
      }),
      auth({ timestamp: timestampFromMs(NOW + 300_000) }),
    ];
    expect(violations(batch(events))).toEqual([]);
  });

  it("should report every violation of the batch, not only the first", () => {
    const found = violations(
      batch([auth({ value: 2e12 }), auth({ durationMs: -1 })], { service: "bad name" }),
    );
    expect(found.map((v) => v.field)).toEqual([
      "service",
      "events[0].value",
      "events[1].duration_ms",
    ]);
  });

  it("should name typed fields by their legacy keys on the legacy path", () => {
    const found = violations(batch([auth({}, { method: "m".repeat(201) })]), LEGACY_PATHS);
    expect(found).toEqual([
      {
        field: "metrics[0].dimensions.method",
        description: "Dimension value too long: 201 chars, max 200",
      },
    ]);
  });

  it("should only warn about an old timestamp, a non-semantic version and a nested dimension", () => {
    const result = validateBatch(
      batch(
        [
          auth({
            timestamp: timestampFromMs(NOW - 8 * 86_400_000),
            dimensions: { nested: { a: 1 } },
          }),
        ],
        {
          version: "v1",
        },
      ),
      { nowMs: NOW, paths: RPC_PATHS },
    );
    expect(result.violations).toEqual([]);
    expect(result.warnings).toEqual([
      "Version 'v1' does not follow semantic versioning (x.y.z)",
      "Timestamp is very old: 2026-11-17T12:00:00+00:00",
      "Dimension value at events[0].dimensions.nested will be converted to string: dict",
    ]);
  });
});
