// backends: sqlite only: normalization as functions; no service, no database
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { EventSchema, FlowStep } from "../../gen/mcp/metrics/v1/events_pb.js";
import { liftLegacyKeys, toEventRow } from "../../src/ingest/normalize.js";
import { formatMillis } from "../../src/ingest/timestamps.js";

const envelope = { service: "svc", version: "1.0.0", instanceId: "i-1" };
const AT = Date.UTC(2026, 10, 25, 12, 0, 0, 123);

describe("liftLegacyKeys", () => {
  it("should move legacy dimension and metadata keys into the typed fields", () => {
    const event = create(EventSchema, {
      kind: { case: "toolExecution", value: {} },
      dimensions: { tool_name: "t", success: true, method: "tools/call", extra: "kept" },
      metadata: { error_code: null, input_size_bytes: 12, trace: "kept" },
    });
    liftLegacyKeys(event);
    expect(event.kind.value).toMatchObject({
      toolName: "t",
      success: true,
      method: "tools/call",
      inputSizeBytes: 12n,
    });
    expect((event.kind.value as { errorCode?: string }).errorCode).toBeUndefined();
    expect(event.dimensions).toEqual({ extra: "kept" });
    expect(event.metadata).toEqual({ trace: "kept" });
  });

  it("should leave the maps it was given as they were, keeping a key named __proto__", () => {
    const dimensions = JSON.parse('{"tool_name": "t", "__proto__": "p", "extra": 1}');
    const event = create(EventSchema, { kind: { case: "toolExecution", value: {} }, dimensions });
    liftLegacyKeys(event);
    expect(Object.keys(dimensions)).toEqual(["tool_name", "__proto__", "extra"]);
    expect(Object.keys(event.dimensions ?? {})).toEqual(["__proto__", "extra"]);
    expect(Object.getOwnPropertyDescriptor(event.dimensions, "__proto__")?.value).toBe("p");
  });

  it("should leave a value that does not fit the typed field in the free-form map", () => {
    const event = create(EventSchema, {
      kind: { case: "authRequest", value: {} },
      dimensions: { success: "yes", method: 7 },
    });
    liftLegacyKeys(event);
    expect(event.dimensions).toEqual({ success: "yes", method: 7 });
    const typed = event.kind.value as { success?: boolean; method?: string };
    expect(typed.success).toBeUndefined();
    expect(typed.method).toBeUndefined();
  });

  it("should map a legacy flow_step text onto the enum", () => {
    const event = create(EventSchema, {
      value: 0.5,
      kind: { case: "protocolLatency", value: {} },
      dimensions: { flow_step: "tools_list_to_tools_call" },
    });
    liftLegacyKeys(event);
    expect(event.kind.value).toMatchObject({ flowStep: FlowStep.TOOLS_LIST_TO_TOOLS_CALL });
  });
});

describe("toEventRow", () => {
  it("should store the same row for a typed event and its legacy-keyed twin", () => {
    const typed = create(EventSchema, {
      timestamp: timestampFromMs(AT),
      durationMs: 45.2,
      kind: {
        case: "authRequest",
        value: { success: true, method: "jwt", server: "s", userHash: "", errorCode: "E1" },
      },
    });
    const legacy = create(EventSchema, {
      timestamp: timestampFromMs(AT),
      durationMs: 45.2,
      value: 1,
      kind: { case: "authRequest", value: {} },
      dimensions: { success: true, method: "jwt", server: "s", user_hash: "" },
      metadata: { error_code: "E1" },
    });
    liftLegacyKeys(legacy);
    const a = toEventRow(typed, envelope, 0);
    expect(toEventRow(legacy, envelope, 0)).toEqual(a);
    expect(a).toMatchObject({
      metricType: "auth_request",
      timestamp: "2026-11-25T12:00:00.123000Z",
      value: 1,
    });
    expect(a.specialized?.table.name).toBe("auth_metrics");
    // success, method, server, user_hash, error_code, target_kind
    expect(a.specialized?.values).toEqual([1, "jwt", "s", "", "E1", null]);
    expect(JSON.parse(a.metadata)).toEqual({ error_code: "E1" });
  });

  it("should use the receive time when the event has no timestamp, and NULL for unset typed fields", () => {
    const row = toEventRow(
      create(EventSchema, { kind: { case: "toolExecution", value: { toolName: "t" } } }),
      envelope,
      AT,
    );
    expect(row.timestamp).toBe("2026-11-25T12:00:00.123000Z");
    expect(row.durationMs).toBeNull();
    const columns = row.specialized?.table.fields.map((f, i) => [
      f.name,
      row.specialized?.values[i],
    ]);
    expect(Object.fromEntries(columns ?? [])).toMatchObject({
      tool_name: "t",
      success: null,
      input_size_bytes: null,
    });
  });

  it("should write nothing into specialized tables for kinds that have none", () => {
    const row = toEventRow(
      create(EventSchema, { value: 3, kind: { case: "custom", value: { metricName: "m" } } }),
      envelope,
      AT,
    );
    expect(row.specialized).toBeUndefined();
    expect(JSON.parse(row.dimensions)).toEqual({ metric_name: "m" });
  });
});

describe("formatMillis", () => {
  it("should give fixed-width UTC text so that text order is time order", () => {
    expect(formatMillis(Date.UTC(2026, 0, 2, 3, 4, 5, 6))).toBe("2026-01-02T03:04:05.006000Z");
    expect(
      formatMillis(Date.UTC(2026, 0, 2, 3, 4, 5, 6)) <
        formatMillis(Date.UTC(2026, 0, 2, 3, 4, 5, 10)),
    ).toBe(true);
  });
});
