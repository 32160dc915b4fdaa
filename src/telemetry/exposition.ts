import { createServer, type Server } from "node:http";
import type { Attributes, AttributeValue } from "@opentelemetry/api";
import type { Resource } from "@opentelemetry/resources";
import {
  type DataPoint,
  DataPointType,
  type Histogram,
  type MetricData,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";

/*
 * The Prometheus text exposition of the service's metrics, byte for byte what
 * `@opentelemetry/exporter-prometheus`'s `PrometheusSerializer` writes with the
 * options the service uses (no prefix, no timestamps, target info, no scope
 * labels): test/telemetry/exposition-format.test.ts compares the two. The
 * library escapes and sanitizes every label of every sample line with five
 * regular expressions, about 10 µs a line here: a scrape of 4,000 series took
 * 40-65 ms of the event loop (bench/ingest/scrape.ts). Here a series' labels
 * are written once for all its lines, and text that needs no escaping is not
 * rewritten.
 */

const NEEDS_ESCAPE = /[\\\n"]/;

function escapeString(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function labelValue(value: AttributeValue | undefined): string {
  const text = typeof value === "string" ? value : (JSON.stringify(value) ?? "");
  return NEEDS_ESCAPE.test(text) ? escapeString(text).replace(/"/g, '\\"') : text;
}

const sanitizedNames = new Map<string, string>();
/** A metric or label name with the characters Prometheus refuses made `_` (memoized: names repeat). */
function sanitize(name: string): string {
  let sanitized = sanitizedNames.get(name);
  if (sanitized === undefined) {
    sanitized = name.replace(/[^a-z0-9_]/gi, "_").replace(/_{2,}/g, "_");
    if (sanitizedNames.size < 10_000) sanitizedNames.set(name, sanitized);
  }
  return sanitized;
}

/** `k="v",k2="v2"`: the labels of one series, written once for all its lines. */
function labelsOf(attributes: Attributes): string {
  let text = "";
  for (const key in attributes) {
    if (!Object.hasOwn(attributes, key)) continue;
    text += `${text === "" ? "" : ","}${sanitize(key)}="${labelValue(attributes[key])}"`;
  }
  return text;
}

function valueString(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return `${value}`;
}

function sample(name: string, labels: string, value: number): string {
  return labels === ""
    ? `${name} ${valueString(value)}\n`
    : `${name}{${labels}} ${valueString(value)}\n`;
}

function typeOf(metric: MetricData): string {
  switch (metric.dataPointType) {
    case DataPointType.SUM:
      return metric.isMonotonic ? "counter" : "gauge";
    case DataPointType.GAUGE:
      return "gauge";
    case DataPointType.HISTOGRAM:
      return "histogram";
    default:
      return "untyped";
  }
}

function histogramSamples(name: string, point: DataPoint<Histogram>): string {
  const labels = labelsOf(point.attributes);
  const histogram = point.value;
  let text = sample(`${name}_count`, labels, histogram.count);
  if (histogram.sum !== undefined && histogram.sum !== null)
    text += sample(`${name}_sum`, labels, histogram.sum);
  const { boundaries, counts } = histogram.buckets;
  const prefix = labels === "" ? `${name}_bucket{le="` : `${name}_bucket{${labels},le="`;
  let cumulative = 0;
  let infinityBound = false;
  for (let i = 0; i < counts.length; i++) {
    cumulative += counts[i] ?? 0;
    const upper = boundaries[i];
    if (upper === undefined && infinityBound) break;
    if (upper === Number.POSITIVE_INFINITY) infinityBound = true;
    const le = upper === undefined || upper === Number.POSITIVE_INFINITY ? "+Inf" : String(upper);
    text += `${prefix}${le}"} ${valueString(cumulative)}\n`;
  }
  return text;
}

function metricText(metric: MetricData): string {
  let name = sanitize(escapeString(metric.descriptor.name));
  if (name === "" || name === "_") return "";
  if (name[0] !== undefined && name[0] >= "0" && name[0] <= "9") name = `_${name}`;
  if (
    !name.endsWith("_total") &&
    metric.dataPointType === DataPointType.SUM &&
    metric.isMonotonic
  ) {
    name = `${name}_total`;
  }
  const help = `# HELP ${name} ${escapeString(metric.descriptor.description || "description missing")}`;
  const unit = metric.descriptor.unit
    ? `\n# UNIT ${name} ${escapeString(metric.descriptor.unit)}`
    : "";
  let samples = "";
  if (metric.dataPointType === DataPointType.HISTOGRAM) {
    for (const point of metric.dataPoints) samples += histogramSamples(name, point);
  } else if (
    metric.dataPointType === DataPointType.SUM ||
    metric.dataPointType === DataPointType.GAUGE
  ) {
    for (const point of metric.dataPoints)
      samples += sample(name, labelsOf(point.attributes), point.value);
  }
  return `${help}${unit}\n# TYPE ${name} ${typeOf(metric)}\n${samples}`.trim();
}

function targetInfo(resource: Resource): string {
  const line = sample("target_info", labelsOf(resource.attributes), 1).trim();
  return `# HELP target_info Target metadata\n# TYPE target_info gauge\n${line}\n`;
}

/** The exposition text of one collection. */
export function serializeExposition(metrics: ResourceMetrics): string {
  let text = "";
  for (const scope of metrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      const part = metricText(metric);
      if (part !== "") text += `${part}\n`;
    }
  }
  return targetInfo(metrics.resource) + (text === "" ? "# no registered metrics" : text);
}

/** What the exposition collects from: the Prometheus exporter, a metric reader. */
export interface Collectable {
  collect(): Promise<{ resourceMetrics: ResourceMetrics; errors: unknown[] }>;
}

/**
 * The exposition's HTTP server: `GET /metrics` collects `reader` (the
 * Prometheus exporter, whose own server is not started) and answers the text;
 * any other path is 404, as the exporter's own server answers.
 */
export function createExpositionServer(
  reader: Collectable,
  onError: (error: unknown) => void,
): Server {
  return createServer((req, res) => {
    let path: string;
    try {
      path = new URL(req.url ?? "/", "http://localhost").pathname;
    } catch {
      res.writeHead(400).end("Bad Request");
      return;
    }
    if (path !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    reader.collect().then(
      ({ resourceMetrics, errors }) => {
        if (errors.length > 0) onError(errors[0]);
        res
          .writeHead(200, { "content-type": "text/plain" })
          .end(serializeExposition(resourceMetrics));
      },
      (error: unknown) => {
        onError(error);
        res
          .writeHead(200, { "content-type": "text/plain" })
          .end(`# failed to export metrics: ${error}`);
      },
    );
  });
}
