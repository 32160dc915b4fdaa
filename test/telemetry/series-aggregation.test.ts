// backends: sqlite only: the series aggregation on its own; no service
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AggregationType,
  DataPointType,
  type HistogramMetricData,
  MeterProvider,
} from "@opentelemetry/sdk-metrics";
import { describe, expect, it } from "vitest";
import { SECONDS_BUCKETS } from "../../src/telemetry/instruments.js";
import { createSeriesAggregation, recordValue } from "../../src/telemetry/series-aggregation.js";

const resource = resourceFromAttributes({ "service.name": "test" });

function serialize(exporter: PrometheusExporter): Promise<string> {
  return exporter
    .collect()
    .then(({ resourceMetrics }) => new PrometheusSerializer().serialize(resourceMetrics));
}

/** Values that probe the edges: a boundary itself (upper bounds are inclusive), zero, the last bucket, NaN, negatives. */
const VALUES = [0, 0.0005, 0.0006, 0.001, 0.25, 0.3, 120, 121, 5000, Number.NaN, -1, 0.01];
const LABEL_SETS = [
  { tool_name: "a", service: "s" },
  { tool_name: "b", service: "s" },
  { tool_name: "c", service: "s" },
  { tool_name: "d", service: "s" },
  { tool_name: "e", service: "s" },
];

describe("createSeriesAggregation", () => {
  it("should expose exactly what the SDK's own counter and histogram expose, overflow series included", async () => {
    // The SDK's instruments, with the same boundaries and a series limit of 4.
    const sdkExporter = new PrometheusExporter({ preventServerStart: true });
    const meter = new MeterProvider({
      resource,
      readers: [sdkExporter],
      views: [
        {
          instrumentName: "h_seconds",
          aggregation: {
            type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM,
            options: { boundaries: SECONDS_BUCKETS },
          },
          aggregationCardinalityLimit: 4,
        },
        { instrumentName: "c_total", aggregationCardinalityLimit: 4 },
      ],
    }).getMeter("scope");
    const sdkCounter = meter.createCounter("c_total", { description: "C", unit: "1" });
    const sdkHistogram = meter.createHistogram("h_seconds", { description: "H", unit: "s" });

    // The same measurements through the aggregation.
    const aggregation = createSeriesAggregation({ seriesLimit: 4, resource, scopeName: "scope" });
    const counter = aggregation.counter({ name: "c_total", description: "C", unit: "1" });
    const histogram = aggregation.histogram(
      { name: "h_seconds", description: "H", unit: "s" },
      SECONDS_BUCKETS,
    );
    const ownExporter = new PrometheusExporter({
      preventServerStart: true,
      metricProducers: [aggregation.producer],
    });
    new MeterProvider({ resource, readers: [ownExporter] });

    for (const [i, value] of VALUES.entries()) {
      const labels = LABEL_SETS[i % LABEL_SETS.length] ?? {};
      const key = JSON.stringify(labels);
      sdkCounter.add(1, labels);
      sdkHistogram.record(value, labels);
      counter.cell(key, labels).value += 1;
      recordValue(histogram.cell(key, labels), SECONDS_BUCKETS, value);
    }
    const theirs = await serialize(sdkExporter);
    const ours = await serialize(ownExporter);
    expect(ours).toContain('otel_metric_overflow="true"');
    expect(ours).toContain(
      'h_seconds_bucket{tool_name="b",service="s",otel_scope_name="scope",le="0.0005"} 1',
    );
    expect(ours).toBe(theirs);
  });

  it("should report no metric before a first measurement, and snapshots that later ones leave alone", async () => {
    const aggregation = createSeriesAggregation({ seriesLimit: 10, resource, scopeName: "s" });
    const histogram = aggregation.histogram({ name: "h", description: "", unit: "s" }, [1, 2]);
    const empty = await aggregation.producer.collect();
    expect(empty.resourceMetrics.scopeMetrics).toEqual([]);

    const cell = histogram.cell("k", { k: "v" });
    recordValue(cell, [1, 2], 1);
    recordValue(cell, [1, 2], 1.5);
    const first = await aggregation.producer.collect();
    recordValue(cell, [1, 2], 3);
    const metric = first.resourceMetrics.scopeMetrics[0]?.metrics[0] as HistogramMetricData;
    expect(metric.dataPointType).toBe(DataPointType.HISTOGRAM);
    expect(metric.dataPoints[0]?.value).toEqual({
      buckets: { boundaries: [1, 2], counts: [1, 1, 0] },
      sum: 2.5,
      count: 2,
      min: 1,
      max: 1.5,
    });
  });
});
