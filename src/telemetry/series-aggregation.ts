import { type Attributes, type HrTime, ValueType } from "@opentelemetry/api";
import type { Resource } from "@opentelemetry/resources";
import {
  AggregationTemporality,
  type CollectionResult,
  DataPointType,
  type MetricData,
  type MetricProducer,
} from "@opentelemetry/sdk-metrics";

/**
 * The events' counters and histograms, aggregated here instead of by the
 * OpenTelemetry SDK's synchronous instruments. The SDK hashes every
 * measurement's attributes (sort, then `JSON.stringify`) to find its series:
 * about 3-5 µs a call here, two calls an event, the largest single cost of the
 * service's own per-event work (bench/ingest/breakdown.ts). Here the caller
 * holds a series' cell and adds to it; the readers collect the cells through a
 * {@link MetricProducer}, the SDK's interface for metrics aggregated outside
 * it, so the Prometheus and OTLP exporters serialize them like their own.
 * Aggregation matches the SDK's: cumulative sums, explicit-bucket histograms
 * with upper-inclusive boundaries, min and max, NaN and negative values skipped.
 */

/** What a counter or histogram is called and measures. */
export interface SeriesDescriptor {
  readonly name: string;
  readonly description: string;
  readonly unit: string;
}

/** One series of a counter: add to it. */
export interface SumCell {
  readonly attributes: Attributes;
  readonly startTime: HrTime;
  value: number;
}

/** One series of a histogram: record into it with {@link recordValue}. */
export interface HistogramCell {
  readonly attributes: Attributes;
  readonly startTime: HrTime;
  readonly counts: number[];
  sum: number;
  count: number;
  min: number;
  max: number;
}

/** A counter's or a histogram's series, by a key the caller derives from their attributes. */
export interface SeriesTable<Cell> {
  /** The series of `attributes` (known by `key`), created on first use; past the limit, the overflow series. */
  cell(key: string, attributes: Attributes): Cell;
}

/** The attributes of the series that takes every new one past the limit, as the SDK names it. */
const OVERFLOW_ATTRIBUTES: Attributes = { "otel.metric.overflow": true };
const OVERFLOW_KEY = "\u0000overflow";

function hrTimeNow(): HrTime {
  const ms = Date.now();
  return [Math.floor(ms / 1000), (ms % 1000) * 1e6];
}

/** Index of the first boundary not below `value` (the SDK's `binarySearchUB`): upper bounds are inclusive. */
function bucketOf(boundaries: readonly number[], value: number): number {
  let lo = 0;
  let hi = boundaries.length - 1;
  let found = boundaries.length;
  while (hi >= lo) {
    const mid = (lo + hi) >>> 1;
    if ((boundaries[mid] ?? 0) < value) lo = mid + 1;
    else {
      found = mid;
      hi = mid - 1;
    }
  }
  return found;
}

/** Records one measurement into a histogram series; NaN and negative values are skipped, as the SDK does. */
export function recordValue(
  cell: HistogramCell,
  boundaries: readonly number[],
  value: number,
): void {
  if (!(value >= 0)) return;
  cell.count += 1;
  cell.sum += value;
  if (value < cell.min) cell.min = value;
  if (value > cell.max) cell.max = value;
  const i = bucketOf(boundaries, value);
  cell.counts[i] = (cell.counts[i] ?? 0) + 1;
}

interface Table<Cell> extends SeriesTable<Cell> {
  /** The table's metric, or undefined while it has no series (the SDK reports none either). */
  collect(endTime: HrTime): MetricData | undefined;
}

function createTable<Cell>(
  limit: number,
  newCell: (attributes: Attributes) => Cell,
  toMetric: (cells: Iterable<Cell>, endTime: HrTime) => MetricData,
): Table<Cell> {
  const cells = new Map<string, Cell>();
  return {
    cell(key, attributes) {
      let cell = cells.get(key);
      if (cell !== undefined) return cell;
      // As the SDK's cardinality limit: the last slot is the overflow series.
      if (cells.size >= limit - 1) {
        cell = cells.get(OVERFLOW_KEY);
        if (cell === undefined) {
          cell = newCell(OVERFLOW_ATTRIBUTES);
          cells.set(OVERFLOW_KEY, cell);
        }
        return cell;
      }
      cell = newCell(attributes);
      cells.set(key, cell);
      return cell;
    },
    collect: (endTime) => (cells.size === 0 ? undefined : toMetric(cells.values(), endTime)),
  };
}

/** Options of {@link createSeriesAggregation}. */
export interface SeriesAggregationOptions {
  /** Series one counter or histogram holds; new ones beyond go to `otel.metric.overflow`. */
  readonly seriesLimit: number;
  /** The resource the readers report (they keep their own; required by the producer's result). */
  readonly resource: Resource;
  readonly scopeName: string;
}

/** Counters and histograms aggregated outside the SDK, and the producer the readers collect them with. */
export interface SeriesAggregation {
  counter(descriptor: SeriesDescriptor): SeriesTable<SumCell>;
  histogram(
    descriptor: SeriesDescriptor,
    boundaries: readonly number[],
  ): SeriesTable<HistogramCell>;
  /** Give to every metric reader as one of its `metricProducers`. */
  readonly producer: MetricProducer;
}

/** Creates an empty aggregation; instruments are added with `counter` and `histogram`. */
export function createSeriesAggregation(options: SeriesAggregationOptions): SeriesAggregation {
  const tables: Table<unknown>[] = [];
  const descriptorOf = (d: SeriesDescriptor) => ({ ...d, valueType: ValueType.DOUBLE });
  return {
    counter(descriptor) {
      const table = createTable<SumCell>(
        options.seriesLimit,
        (attributes) => ({ attributes, startTime: hrTimeNow(), value: 0 }),
        (cells, endTime) => ({
          descriptor: descriptorOf(descriptor),
          aggregationTemporality: AggregationTemporality.CUMULATIVE,
          dataPointType: DataPointType.SUM,
          isMonotonic: true,
          dataPoints: Array.from(cells, (c) => ({
            attributes: c.attributes,
            startTime: c.startTime,
            endTime,
            value: c.value,
          })),
        }),
      );
      tables.push(table as Table<unknown>);
      return table;
    },
    histogram(descriptor, boundaries) {
      const bounds = [...boundaries];
      const table = createTable<HistogramCell>(
        options.seriesLimit,
        (attributes) => ({
          attributes,
          startTime: hrTimeNow(),
          counts: new Array<number>(bounds.length + 1).fill(0),
          sum: 0,
          count: 0,
          min: Number.POSITIVE_INFINITY,
          max: Number.NEGATIVE_INFINITY,
        }),
        (cells, endTime) => ({
          descriptor: descriptorOf(descriptor),
          aggregationTemporality: AggregationTemporality.CUMULATIVE,
          dataPointType: DataPointType.HISTOGRAM,
          // Copies: an exporter may serialize after more measurements arrived.
          dataPoints: Array.from(cells, (c) => ({
            attributes: c.attributes,
            startTime: c.startTime,
            endTime,
            value: {
              buckets: { boundaries: bounds, counts: [...c.counts] },
              sum: c.sum,
              count: c.count,
              ...(c.count > 0 ? { min: c.min, max: c.max } : {}),
            },
          })),
        }),
      );
      tables.push(table as Table<unknown>);
      return table;
    },
    producer: {
      async collect(): Promise<CollectionResult> {
        const endTime = hrTimeNow();
        const metrics: MetricData[] = [];
        for (const table of tables) {
          const metric = table.collect(endTime);
          if (metric !== undefined) metrics.push(metric);
        }
        return {
          resourceMetrics: {
            resource: options.resource,
            scopeMetrics:
              metrics.length === 0 ? [] : [{ scope: { name: options.scopeName }, metrics }],
          },
          errors: [],
        };
      },
    },
  };
}
