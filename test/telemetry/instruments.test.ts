// backends: sqlite only: the instruments on their own; no service
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { SumMetricData } from "@opentelemetry/sdk-metrics";
import { describe, expect, it } from "vitest";
import { type CommittedEvent, createEventInstruments } from "../../src/telemetry/instruments.js";

const toolCall = (service: string, dimensions: Record<string, unknown>): CommittedEvent => ({
  metricType: "tool_execution",
  service,
  value: 1,
  durationMs: 10,
  dimensions,
  metadata: {},
});

function instruments(maxValuesPerLabel: number, onOverflow?: (label: string) => void) {
  return createEventInstruments({
    maxValuesPerLabel,
    maxLabelLength: 96,
    semconv: false,
    seriesLimit: 10_000,
    resource: resourceFromAttributes({}),
    scopeName: "test",
    ...(onOverflow ? { onOverflow } : {}),
  });
}

/** A tool call's labels when its event set only `labels`: every other label is `_unset`. */
const toolLabels = (labels: Record<string, string>) => ({
  success: "_unset",
  method: "_unset",
  server_name: "_unset",
  server_path: "_unset",
  tool_name: "_unset",
  client_name: "_unset",
  client_version: "_unset",
  ...labels,
  metric_type: "tool_execution",
});

/** The tool-call counter's series: their labels and counts. */
async function toolCounts(events: ReturnType<typeof instruments>) {
  const { resourceMetrics } = await events.producer.collect();
  const metric = resourceMetrics.scopeMetrics[0]?.metrics.find(
    (m) => m.descriptor.name === "mcp_tool_executions_total",
  ) as SumMetricData | undefined;
  return (metric?.dataPoints ?? []).map((p) => ({ ...p.attributes, count: p.value }));
}

describe("createEventInstruments", () => {
  it("should report an overflow at every event whose label collapsed, not only at the first", async () => {
    const overflows: string[] = [];
    const events = instruments(1, (label) => overflows.push(label));
    events.record(["a", "b", "b", "c"].map((tool) => toolCall("s", { tool_name: tool })));
    expect(overflows).toEqual(["tool_name", "tool_name", "tool_name"]);
    expect(await toolCounts(events)).toEqual([
      { ...toolLabels({ tool_name: "a", service: "s" }), count: 1 },
      { ...toolLabels({ tool_name: "_other", service: "s" }), count: 3 },
    ]);
  });

  it("should keep label sets apart whose values would run together", async () => {
    // Joined with blanks, with "-" for a missing label, both read "- x - - - - - -".
    const events = instruments(100);
    events.record([
      toolCall("s", { method: "x -" }),
      toolCall("s", { method: "x", server_name: "- -" }),
      toolCall("s", { method: "x", server_name: "- -" }),
    ]);
    expect(await toolCounts(events)).toEqual([
      { ...toolLabels({ method: "x_-", service: "s" }), count: 1 },
      { ...toolLabels({ method: "x", server_name: "-_-", service: "s" }), count: 2 },
    ]);
  });

  it("should count events whose label values are too long to remember like any other", async () => {
    const overflows: string[] = [];
    const events = instruments(1, (label) => overflows.push(label));
    const long = (c: string) => c.repeat(190);
    events.record(
      [long("a"), long("b"), long("b"), long("a")].map((t) => toolCall("s", { tool_name: t })),
    );
    expect(overflows).toEqual(["tool_name", "tool_name"]);
    expect(await toolCounts(events)).toEqual([
      { ...toolLabels({ tool_name: long("a").slice(0, 96), service: "s" }), count: 2 },
      { ...toolLabels({ tool_name: "_other", service: "s" }), count: 2 },
    ]);
  });

  it("should spend a service's place under the label cap even for events it only stores", async () => {
    const overflows: string[] = [];
    const events = instruments(1, (label) => overflows.push(label));
    events.record([
      {
        metricType: "custom",
        service: "first",
        value: 3,
        durationMs: null,
        dimensions: {},
        metadata: {},
      },
      toolCall("second", {}),
    ]);
    expect(overflows).toEqual(["service"]);
    expect(await toolCounts(events)).toEqual([{ ...toolLabels({ service: "_other" }), count: 1 }]);
  });
});
