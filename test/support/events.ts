import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type EventSchema, FlowStep } from "../../gen/mcp/metrics/v1/events_pb.js";
import { EVENT_KINDS, type EventKind, type TypedField } from "../../src/catalog/catalog.js";
import { type EventRow, specializedRowOf } from "../../src/storage/rows.js";

/** A batch as plain init data, usable for both IngestRequest and IngestStreamRequest. */
export interface BatchInit {
  service: string;
  version?: string;
  instanceId?: string;
  events: MessageInitShape<typeof EventSchema>[];
}

/** A fixed event time (one minute ago), so stored timestamps can be checked exactly. */
export function recentMs(): number {
  return Math.floor(Date.now() / 1000) * 1000 - 60_000;
}

/**
 * A typed field's sample value, of its type: what {@link mixedBatch} sends
 * for a kind it has no hand-written event for.
 */
export function sampleValue(field: TypedField): unknown {
  switch (field.type) {
    case "bool":
      return true;
    case "string":
      return `${field.name}-1`;
    case "double":
      return 1.5;
    case "int":
      return field.bigint ? 7n : 7;
    case "enum":
      return [...(field.labels?.keys() ?? [])][0];
  }
}

/** An event of `kind` with every typed field set to a sample value. */
function sampleEvent(kind: EventKind, timestamp: Timestamp): EventInit {
  const value = Object.fromEntries(kind.fields.map((f) => [f.localName, sampleValue(f)]));
  return {
    timestamp,
    durationMs: 5,
    ...(kind.valueRequired ? { value: 2.5 } : {}),
    kind: { case: kind.localName, value },
  } as EventInit;
}

type EventInit = MessageInitShape<typeof EventSchema>;

/**
 * One event of every kind of the event catalog, in field-number order, with
 * their typed fields set, as a service would send them: hand-written values
 * where a test reads them back, sample values for any other kind, so a kind
 * added to the catalog is in every suite that sends this batch.
 */
export function mixedBatch(service = "test-service", atMs = recentMs()): BatchInit {
  const timestamp = timestampFromMs(atMs);
  const written: EventInit[] = [
    {
      timestamp,
      durationMs: 45.2,
      kind: {
        case: "authRequest",
        value: { success: true, method: "jwt", server: "github", userHash: "u-abc" },
      },
    },
    {
      timestamp,
      durationMs: 120,
      dimensions: { region: "eu-west-1" },
      kind: {
        case: "toolExecution",
        value: {
          toolName: "current_time",
          serverPath: "/currenttime",
          serverName: "currenttime",
          success: false,
          clientName: "claude-desktop",
          clientVersion: "0.9.1",
          method: "tools/call",
          userHash: "u-abc",
          errorCode: "TIMEOUT",
          inputSizeBytes: 512n,
          outputSizeBytes: 2048n,
        },
      },
    },
    {
      timestamp,
      durationMs: 33,
      kind: {
        case: "toolDiscovery",
        value: {
          query: "what time is it",
          resultsCount: 3,
          topKServices: 5,
          topNTools: 10,
          embeddingTimeMs: 12.5,
          faissSearchTimeMs: 1.25,
        },
      },
    },
    {
      timestamp,
      value: 0.42,
      kind: {
        case: "protocolLatency",
        value: { flowStep: FlowStep.INITIALIZE_TO_TOOLS_CALL, serverName: "currenttime" },
      },
    },
    {
      timestamp,
      durationMs: 8,
      kind: {
        case: "registryOperation",
        value: { operation: "list", resourceType: "server", success: true },
      },
    },
    {
      timestamp,
      durationMs: 2,
      kind: {
        case: "healthCheck",
        value: { endpoint: "/health", statusCode: 200, healthy: true },
      },
    },
    {
      timestamp,
      value: 17,
      metadata: { note: "hello" },
      kind: { case: "custom", value: { metricName: "queue_depth" } },
    },
  ];
  const byCase = new Map(written.map((e) => [e.kind?.case, e]));
  return {
    service,
    version: "1.2.3",
    instanceId: "pod-1",
    events: [...EVENT_KINDS]
      .sort((a, b) => a.number - b.number)
      .map((kind) => byCase.get(kind.localName as never) ?? sampleEvent(kind, timestamp)),
  };
}

/** A batch of `n` auth events, for load and shutdown tests. */
export function authBatch(n: number, service = "test-service"): BatchInit {
  return {
    service,
    events: Array.from({ length: n }, (_, i) => ({
      durationMs: i,
      kind: { case: "authRequest" as const, value: { success: i % 2 === 0, method: "jwt" } },
    })),
  };
}

/** A stored auth event's row, as the event store takes it: `i` sets its microseconds and duration. */
export function authRow(service = "svc", i = 0): EventRow {
  return {
    service,
    serviceVersion: null,
    instanceId: null,
    metricType: "auth_request",
    timestamp: `2026-11-25T12:00:00.${String(i).padStart(6, "0")}Z`,
    value: 1,
    durationMs: i,
    dimensions: "{}",
    metadata: "{}",
    keyService: "svc",
    specialized: specializedRowOf("auth_request", (f) =>
      f.name === "success" ? 1 : f.name === "method" ? "jwt" : null,
    ),
    rollup: {
      dimensions: [
        ["success", "true"],
        ["method", "jwt"],
      ],
      failed: false,
      latencyMs: i,
    },
  };
}
