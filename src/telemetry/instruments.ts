import type { Counter, Histogram, Meter } from "@opentelemetry/api";
import { createLabelBounds, type Labels } from "./label-bounds.js";

/** One committed event, as the instruments need it. */
export interface CommittedEvent {
  readonly metricType: string;
  readonly service: string;
  readonly value: number;
  readonly durationMs: number | null;
  /** Every dimension, typed ones included, as stored. */
  readonly dimensions: Readonly<Record<string, unknown>>;
  /** Every metadata entry, typed ones included, as stored. */
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** Options of {@link createEventInstruments}. */
export interface EventInstrumentsOptions {
  readonly maxValuesPerLabel: number;
  readonly maxLabelLength: number;
  /** Also record the OpenTelemetry MCP semantic-convention instruments. */
  readonly semconv: boolean;
  /** Told each time a label value collapses into `_other`. */
  readonly onOverflow?: (label: string) => void;
}

/** Bucket boundaries in seconds, from sub-millisecond to two minutes. */
export const SECONDS_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
];

/** The histograms that take {@link SECONDS_BUCKETS}. */
export const SECONDS_HISTOGRAMS = [
  "mcp_auth_request_duration_seconds",
  "mcp_tool_execution_duration_seconds",
  "mcp_tool_discovery_duration_seconds",
  "mcp_health_check_duration_seconds",
  "mcp_protocol_latency_seconds",
  "mcp.server.operation.duration",
];

/** The events' instruments: what the dashboard and Prometheus read. */
export interface EventInstruments {
  /** Records a committed batch; never called for rejected or failed ones. */
  record(events: readonly CommittedEvent[]): void;
}

/** MCP method names of the semantic conventions, from the legacy method dimension. */
const SEMCONV_METHODS = new Set([
  "initialize",
  "tools/list",
  "tools/call",
  "ping",
  "resources/list",
  "resources/read",
  "prompts/list",
  "prompts/get",
]);

/**
 * Creates the instruments of contract §4 on a meter. Counters count events
 * (one each, W9: the Python service added the client's `value`); durations go
 * to the histograms in seconds, zero included (W9: zero was skipped);
 * protocol latencies record `value`, which is in seconds.
 */
export function createEventInstruments(
  meter: Meter,
  options: EventInstrumentsOptions,
): EventInstruments {
  const labels = createLabelBounds({
    maxValuesPerLabel: options.maxValuesPerLabel,
    maxLength: options.maxLabelLength,
    ...(options.onOverflow ? { onOverflow: options.onOverflow } : {}),
  });
  const counter = (name: string, description: string) =>
    meter.createCounter(name, { description, unit: "1" });
  const seconds = (name: string, description: string) =>
    meter.createHistogram(name, { description, unit: "s" });

  const byType: Record<string, { count?: Counter; duration?: Histogram }> = {
    auth_request: {
      count: counter("mcp_auth_requests_total", "Authentication events"),
      duration: seconds("mcp_auth_request_duration_seconds", "Authentication duration"),
    },
    tool_execution: {
      count: counter("mcp_tool_executions_total", "MCP method calls"),
      duration: seconds("mcp_tool_execution_duration_seconds", "MCP method call duration"),
    },
    tool_discovery: {
      count: counter("mcp_tool_discovery_total", "Semantic tool searches"),
      duration: seconds("mcp_tool_discovery_duration_seconds", "Semantic tool search duration"),
    },
    health_check: {
      count: counter("mcp_health_checks_total", "Health probes"),
      duration: seconds("mcp_health_check_duration_seconds", "Health probe duration"),
    },
  };
  const protocolLatency = seconds(
    "mcp_protocol_latency_seconds",
    "Time between MCP protocol steps",
  );
  const operation = options.semconv
    ? seconds(
        "mcp.server.operation.duration",
        "MCP server operation duration (OpenTelemetry MCP semantic conventions)",
      )
    : undefined;

  const semconvAttributes = (event: CommittedEvent, bound: Labels) => {
    const method = typeof event.dimensions.method === "string" ? event.dimensions.method : "";
    const attributes: Labels = {
      "mcp.method.name": SEMCONV_METHODS.has(method)
        ? method
        : labels.bound("mcp.method.name", method),
    };
    if (method === "tools/call" && typeof event.dimensions.tool_name === "string")
      attributes["gen_ai.tool.name"] = bound.tool_name ?? "";
    if (event.dimensions.success === false) {
      // error.type takes code-like values only: free text could carry anything.
      const code = event.metadata.error_code;
      const codeLike = typeof code === "string" && /^[A-Za-z0-9_.-]{1,64}$/.test(code);
      attributes["error.type"] = labels.bound("error.type", codeLike ? code : "_OTHER");
    }
    const version = event.dimensions.protocol_version;
    if (typeof version === "string")
      attributes["mcp.protocol.version"] = labels.bound("mcp.protocol.version", version);
    return attributes;
  };

  return {
    record(events) {
      for (const event of events) {
        const bound = labels.labelsFor(event.metricType, event.service, event.dimensions);
        if (event.metricType === "protocol_latency") {
          if (Number.isFinite(event.value) && event.value >= 0)
            protocolLatency.record(event.value, bound);
          continue;
        }
        const instruments = byType[event.metricType];
        if (instruments === undefined) continue; // registry_operation and custom: storage only
        instruments.count?.add(1, bound);
        if (event.durationMs !== null) {
          instruments.duration?.record(event.durationMs / 1000, bound);
          if (operation && event.metricType === "tool_execution") {
            operation.record(event.durationMs / 1000, semconvAttributes(event, bound));
          }
        }
      }
    },
  };
}
