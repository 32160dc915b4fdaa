import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type EventSchema, FlowStep } from "../../gen/mcp/metrics/v1/events_pb.js";
import type { EventRow } from "../../src/storage/rows.js";

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

/** One event of every kind, with their typed fields set, as a service would send them. */
export function mixedBatch(service = "test-service", atMs = recentMs()): BatchInit {
  const timestamp = timestampFromMs(atMs);
  return {
    service,
    version: "1.2.3",
    instanceId: "pod-1",
    events: [
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
    ],
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
    auth: {
      success: 1,
      method: "jwt",
      server: null,
      userHash: null,
      errorCode: null,
      targetKind: null,
    },
  };
}
