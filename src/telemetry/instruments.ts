import type { Resource } from "@opentelemetry/resources";
import type { MetricProducer } from "@opentelemetry/sdk-metrics";
import { EVENT_KINDS } from "../catalog/catalog.js";
import { createLabelBounds, LABEL_KEYS, type Labels, labelText } from "./label-bounds.js";
import {
  createSeriesAggregation,
  type HistogramCell,
  recordValue,
  type SeriesTable,
  type SumCell,
} from "./series-aggregation.js";

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
  /** Series one instrument holds before new ones fold into `otel.metric.overflow`. */
  readonly seriesLimit: number;
  /** The resource the readers report (required by the producer interface; the readers use their own). */
  readonly resource: Resource;
  /** The instrumentation scope the instruments are reported under. */
  readonly scopeName: string;
}

/** Bucket boundaries in seconds, from sub-millisecond to two minutes. */
export const SECONDS_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
];

/** The events' instruments: what the dashboard and Prometheus read. */
export interface EventInstruments {
  /** Records a committed batch; never called for rejected or failed ones. */
  record(events: readonly CommittedEvent[]): void;
  /** Give to every metric reader (`metricProducers`): the instruments' series. */
  readonly producer: MetricProducer;
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

/** The series of one event's bounded label set in each of its type's instruments, found once. */
interface Series {
  readonly key: string;
  readonly labels: Labels;
  /** Labels whose value collapsed into `_other`: reported again at every event, as on a first look-up. */
  readonly overflowed: readonly string[];
  count?: SumCell;
  duration?: HistogramCell;
}

/**
 * Distinct raw label sets remembered; past it the memory starts over (the
 * series themselves stay). Raw values are unbounded where the labels are not:
 * 10,000 tool names all collapse into `_other` but are 10,000 raw sets.
 */
const SERIES_MEMO_LIMIT = 20_000;

/**
 * Longest raw key remembered. A gateway's label values are short (a typical
 * key is under 100 characters); long ones, up to the contract's 200 per value,
 * are labelled afresh each time instead, so that the memo stays within a few
 * MB whatever a client sends.
 */
const MEMO_KEY_MAX_LENGTH = 256;

/**
 * Creates the instruments of docs/legacy-contract.md §4. Counters count events (one each,
 * docs/legacy-contract.md W9: the Python service added the client's `value`); durations go to the
 * histograms in seconds, zero included (docs/legacy-contract.md W9: zero was skipped); protocol
 * latencies record `value`, which is in seconds. An event finds its series
 * through a memo keyed by its raw label values, so the label bounds
 * (normalizing, capping) and the series look-up run once per distinct label
 * set, not once per event.
 */
export function createEventInstruments(options: EventInstrumentsOptions): EventInstruments {
  const labels = createLabelBounds({
    maxValuesPerLabel: options.maxValuesPerLabel,
    maxLength: options.maxLabelLength,
    onOverflow: (label) => overflowed.push(label),
  });
  // Collects the overflows of one label-set computation (seriesOf, recordOperation).
  let overflowed: string[] = [];
  const aggregation = createSeriesAggregation({
    seriesLimit: options.seriesLimit,
    resource: options.resource,
    scopeName: options.scopeName,
  });
  const counter = (name: string, description: string) =>
    aggregation.counter({ name, description, unit: "1" });
  const seconds = (name: string, description: string) =>
    aggregation.histogram({ name, description, unit: "s" }, SECONDS_BUCKETS);

  /** Each kind's instruments, as its catalog entry declares them. */
  const byType = new Map(
    EVENT_KINDS.map((kind) => [
      kind.name,
      {
        count: kind.counter && counter(kind.counter.name, kind.counter.description),
        duration: kind.histogram && seconds(kind.histogram.name, kind.histogram.description),
        /** Whether the histogram records the value, in seconds, instead of the duration. */
        valueSeconds: kind.histogram?.source === "value_seconds",
        /** Fields in milliseconds with a histogram of their own (a search's two phases). */
        phases: kind.fields.flatMap((field) =>
          field.histogramMs
            ? [
                {
                  key: field.name,
                  table: seconds(field.histogramMs.name, field.histogramMs.description),
                },
              ]
            : [],
        ),
      },
    ]),
  );
  const operation = options.semconv
    ? seconds(
        "mcp.server.operation.duration",
        "MCP server operation duration (OpenTelemetry MCP semantic conventions)",
      )
    : undefined;

  const memo = new Map<string, Series>();
  const seriesOf = (event: CommittedEvent): Series => {
    // Length-prefixed values: no value can shift into its neighbour's place.
    let key = `${event.metricType} ${event.service.length}:${event.service}`;
    for (const name of LABEL_KEYS[event.metricType] ?? []) {
      if (Object.hasOwn(event.dimensions, name)) {
        const text = labelText(event.dimensions[name]);
        key += ` ${text.length}:${text}`;
      } else key += " -";
    }
    let series = memo.get(key);
    if (series === undefined) {
      overflowed = [];
      const bound = labels.labelsFor(event.metricType, event.service, event.dimensions);
      series = { key: JSON.stringify(Object.entries(bound)), labels: bound, overflowed };
      if (key.length <= MEMO_KEY_MAX_LENGTH) {
        if (memo.size >= SERIES_MEMO_LIMIT) memo.clear();
        memo.set(key, series);
      }
    }
    for (const label of series.overflowed) options.onOverflow?.(label);
    return series;
  };

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

  const recordOperation = (event: CommittedEvent, series: Series, seconds: number): void => {
    if (operation === undefined) return;
    overflowed = [];
    const attributes = semconvAttributes(event, series.labels);
    for (const label of overflowed) options.onOverflow?.(label);
    const cell = operation.cell(JSON.stringify(Object.entries(attributes)), attributes);
    recordValue(cell, SECONDS_BUCKETS, seconds);
  };

  /** Times in milliseconds that a kind's fields hold, where the event sent them (as dimensions or metadata), in seconds. */
  const recordPhases = (
    event: CommittedEvent,
    series: Series,
    phases: readonly { readonly key: string; readonly table: SeriesTable<HistogramCell> }[],
  ): void => {
    for (const { key, table } of phases) {
      const raw = event.dimensions[key] ?? event.metadata[key];
      const millis = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw;
      if (typeof millis !== "number" || !Number.isFinite(millis) || millis < 0) continue;
      recordValue(table.cell(series.key, series.labels), SECONDS_BUCKETS, millis / 1000);
    }
  };

  return {
    producer: aggregation.producer,
    record(events) {
      for (const event of events) {
        // Labelled first even where nothing is recorded: a service that sends
        // only custom events still takes its place under the service label cap.
        const series = seriesOf(event);
        const instruments = byType.get(event.metricType);
        if (instruments === undefined) continue;
        if (instruments.count) {
          series.count ??= instruments.count.cell(series.key, series.labels);
          series.count.value += 1;
        }
        if (instruments.duration && instruments.valueSeconds) {
          if (Number.isFinite(event.value) && event.value >= 0) {
            series.duration ??= instruments.duration.cell(series.key, series.labels);
            recordValue(series.duration, SECONDS_BUCKETS, event.value);
          }
        } else if (instruments.duration && event.durationMs !== null) {
          const seconds = event.durationMs / 1000;
          series.duration ??= instruments.duration.cell(series.key, series.labels);
          recordValue(series.duration, SECONDS_BUCKETS, seconds);
          if (event.metricType === "tool_execution") recordOperation(event, series, seconds);
        }
        if (instruments.phases.length > 0) recordPhases(event, series, instruments.phases);
      }
    },
  };
}
