// backends: sqlite only: the exposition's serializer on its own; no service
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AggregationType, MeterProvider } from "@opentelemetry/sdk-metrics";
import { describe, expect, it } from "vitest";
import { serializeExposition } from "../../src/telemetry/exposition.js";
import { SECONDS_BUCKETS } from "../../src/telemetry/instruments.js";
import { createSeriesAggregation, recordValue } from "../../src/telemetry/series-aggregation.js";

/** The library's serializer with the service's options: no prefix, no timestamps, target info, no scope labels. */
const library = new PrometheusSerializer(undefined, false, undefined, false, true);

const ODD_VALUES = {
  quote: 'say "hi"',
  backslash: "C:\\path",
  newline: "two\nlines",
  plain: "tools/call",
  "dotted.key-name": "x",
  number: 42,
  flag: true,
  list: ["a", 'b"'],
};

async function collected(resourceAttributes: Record<string, string>, record: boolean) {
  const resource = resourceFromAttributes(resourceAttributes);
  const aggregation = createSeriesAggregation({ seriesLimit: 3, resource, scopeName: "agg" });
  const exporter = new PrometheusExporter({
    preventServerStart: true,
    withoutScopeInfo: true,
    metricProducers: [aggregation.producer],
  });
  const meter = new MeterProvider({
    resource,
    readers: [exporter],
    views: [
      {
        instrumentName: "custom_seconds",
        aggregation: {
          type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM,
          options: { boundaries: [0.1, 1, Number.POSITIVE_INFINITY] },
        },
      },
    ],
  }).getMeter("sdk");
  if (record) {
    meter.createCounter("dotted.name-with_dashes", { description: "Back\\slash\nnewline" }).add(2);
    meter.createCounter("already_total").add(1.5, ODD_VALUES);
    meter.createUpDownCounter("queue").add(-3, { q: "a" });
    meter.createHistogram("default_buckets", { unit: "ms" }).record(7, { plain: "x" });
    meter.createHistogram("custom_seconds").record(0.5);
    meter
      .createObservableGauge("gauge", { description: "" })
      .addCallback((r) => r.observe(Number.POSITIVE_INFINITY, { g: "1" }));
    const counter = aggregation.counter({
      name: "mcp_calls_total",
      description: "Calls",
      unit: "1",
    });
    const histogram = aggregation.histogram(
      { name: "mcp.duration", description: "Duration", unit: "s" },
      SECONDS_BUCKETS,
    );
    for (const [i, labels] of [ODD_VALUES, { a: "1" }, { a: "2" }, { a: "3" }].entries()) {
      counter.cell(String(i), labels).value += i + 1;
      recordValue(histogram.cell(String(i), labels), SECONDS_BUCKETS, i * 0.3);
    }
  }
  return (await exporter.collect()).resourceMetrics;
}

describe("serializeExposition", () => {
  it("should write exactly what the library's serializer writes", async () => {
    const metrics = await collected(
      { "service.name": 'mcp "metrics"', "host\\name": "a\nb" },
      true,
    );
    const ours = serializeExposition(metrics);
    expect(ours).toContain('already_total{quote="say \\"hi\\"",backslash="C:\\\\path"');
    // One deliberate difference: a name gets its unit's suffix, as Prometheus's
    // conventions and the OpenTelemetry specification ask (this version of the
    // library adds none); names that already end with it are left alone.
    expect(ours).toContain('mcp_duration_seconds_bucket{a="1",le="0.25"} 0');
    expect(ours).toContain("default_buckets_milliseconds_count");
    expect(ours).toContain("custom_seconds_count");
    expect(ours).toContain('otel_metric_overflow="true"');
    const unitSuffixed = library
      .serialize(metrics)
      .replace(/\bmcp_duration(?=[_ {\n])/g, "mcp_duration_seconds")
      .replace(/\bdefault_buckets(?=[_ {\n])/g, "default_buckets_milliseconds");
    expect(ours).toBe(unitSuffixed);
  });

  it("should say so when nothing is registered, as the library does", async () => {
    const metrics = await collected({ "service.name": "empty" }, false);
    expect(serializeExposition(metrics)).toBe(library.serialize(metrics));
  });
});
