import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import type { Attributes, AttributeValue } from "@opentelemetry/api";
import type { Resource } from "@opentelemetry/resources";
import {
  type DataPoint,
  DataPointType,
  type Histogram,
  type MetricData,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import { type ConnectionRefusal, limitConnections } from "../http/connection-limit.js";

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

/**
 * The units a metric name carries as a suffix, as the OpenTelemetry
 * specification's Prometheus compatibility maps them (UCUM to Prometheus
 * base units); a unit in braces (`{request}`) is an annotation and adds none.
 */
const UNIT_SUFFIXES: Readonly<Record<string, string>> = {
  s: "seconds",
  ms: "milliseconds",
  By: "bytes",
  KiBy: "kibibytes",
  MiBy: "mebibytes",
  "%": "percent",
};

const exposedNames = new Map<string, string>();

/**
 * A metric's name in the exposition: sanitized, then given its unit's suffix
 * unless it already ends with it (`process.cpu.time`, unit `s`, is
 * `process_cpu_time_seconds_total`; `mcp_metrics_commit_duration_seconds`
 * stays as named), `_ratio` for a gauge of unit `1`, and `_total` for a
 * monotonic sum (Prometheus naming conventions; the SDK's own serializer of
 * this version adds no unit suffix).
 */
function exposedName(metric: MetricData): string {
  const { descriptor } = metric;
  const kind = metric.dataPointType;
  const monotonic = kind === DataPointType.SUM && metric.isMonotonic;
  const memo = `${descriptor.name}\u0000${descriptor.unit}\u0000${kind}\u0000${monotonic}`;
  let name = exposedNames.get(memo);
  if (name !== undefined) return name;
  name = sanitize(escapeString(descriptor.name));
  if (name === "" || name === "_") return "";
  if (name[0] !== undefined && name[0] >= "0" && name[0] <= "9") name = `_${name}`;
  const bare = name.endsWith("_total") ? name.slice(0, -"_total".length) : name;
  const suffix =
    UNIT_SUFFIXES[descriptor.unit] ??
    (descriptor.unit === "1" && kind === DataPointType.GAUGE ? "ratio" : undefined);
  if (suffix !== undefined && !bare.endsWith(`_${suffix}`)) {
    name = name === bare ? `${bare}_${suffix}` : `${bare}_${suffix}_total`;
  }
  if (!name.endsWith("_total") && monotonic) name = `${name}_total`;
  if (exposedNames.size < 10_000) exposedNames.set(memo, name);
  return name;
}

function metricText(metric: MetricData): string {
  const name = exposedName(metric);
  if (name === "") return "";
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
 * Timeouts and bounds of the exposition port. With Node's defaults (60 s for
 * headers, checked every 30 s; no bound on connections) a client that drips
 * its headers held a connection for 90 s and one that sends nothing for 60 s
 * (measured on Node 20), and connections were bounded only by the process's
 * descriptors. The one port's limits apply here too, smaller, for a port
 * that serves a few scrapers.
 */
export const EXPOSITION_LIMITS = {
  /** Time to receive a request's headers (as the one port). */
  headersTimeoutMillis: 10_000,
  /** Time to receive a whole request (as the one port). */
  requestTimeoutMillis: 30_000,
  /**
   * An idle keep-alive connection's life (Node's default, made explicit):
   * Prometheus scrapes every 10-15 s and reconnects cheaply, so a connection
   * is not kept between scrapes.
   */
  keepAliveTimeoutMillis: 5_000,
  /** How often Node looks for connections past those timeouts (its default, 30 s, adds that much). */
  connectionsCheckingIntervalMillis: 1_000,
  /** Connections open at once: a few Prometheus servers and agents each hold one or two. */
  maxConnections: 64,
  /** Connections open at once from one client address. */
  maxConnectionsPerAddress: 16,
  /**
   * Least time between the starts of two collections, and how many times a
   * collection's own duration must pass before the next starts. Each
   * collection serializes the whole exposition on the event loop (3 ms at
   * 4,000 series, 240 ms at 86,000): 20 scrape loops back to back raised the
   * ingest p99 from 11-20 ms to 224-5,664 ms at 4,000 series, 18-56 ms with
   * this bound (docs/security.md, "The Prometheus port"). A scrape that comes sooner waits for the next collection,
   * which answers every scrape that arrived meanwhile; however many ask,
   * collections take at most a fifth of the event loop.
   */
  minCollectionIntervalMillis: 500,
  collectionSpacing: 5,
} as const;

/** What the exposition server reports, and its bounds when not {@link EXPOSITION_LIMITS}'. */
export interface ExpositionOptions {
  /** Told about each connection refused by the total or per-address bound. */
  readonly onConnectionRefused?: (reason: ConnectionRefusal) => void;
  readonly maxConnections?: number;
  readonly maxConnectionsPerAddress?: number;
}

/**
 * The exposition's text for a scrape, from a collection that starts after
 * the scrape arrived (a scrape never sees counts older than itself, so a test
 * or an operator reads what they just did), at most one collection starting
 * per `minCollectionIntervalMillis` (or per `collectionSpacing` times the
 * last collection's duration, when longer): scrapes that arrive sooner wait
 * for the next one and share it. Serving the previous collection's text for
 * 500 ms instead took the load off as well (ingest p99 18-66 ms), but a scrape
 * right after a request missed it; sharing only a collection in progress did
 * not help (p99 255-2,511 ms).
 */
function coalesced(
  reader: Collectable,
  onError: (error: unknown) => void,
  limits: { readonly minCollectionIntervalMillis: number; readonly collectionSpacing: number },
): () => Promise<Buffer> {
  /** The collection scheduled for the scrapes that arrived since the last one started. */
  let next: Promise<Buffer> | undefined;
  let lastStart = Number.NEGATIVE_INFINITY;
  let lastDuration = 0;
  const collect = (): Promise<Buffer> => {
    const started = performance.now();
    lastStart = started;
    return (
      reader
        .collect()
        .then(({ resourceMetrics, errors }) => {
          if (errors.length > 0) onError(errors[0]);
          return Buffer.from(serializeExposition(resourceMetrics));
        })
        // A failed collection, or a serializer bug: answered, never an unhandled rejection.
        .catch((error: unknown) => {
          onError(error);
          return Buffer.from(`# failed to export metrics: ${error}`);
        })
        .finally(() => {
          lastDuration = performance.now() - started;
        })
    );
  };
  return () => {
    if (next !== undefined) return next;
    const spacing = Math.max(
      limits.minCollectionIntervalMillis,
      lastDuration * limits.collectionSpacing,
    );
    const wait = lastStart + spacing - performance.now();
    if (wait <= 0) return collect();
    next = new Promise<void>((resolve) => setTimeout(resolve, wait)).then(() => {
      next = undefined;
      return collect();
    });
    return next;
  };
}

/**
 * The exposition's HTTP server: `GET /metrics` collects `reader` (the
 * Prometheus exporter, whose own server is not started) and answers the text;
 * any other path is 404, as the exporter's own server answers. Scrapes in
 * quick succession share one collection (see {@link EXPOSITION_LIMITS}), and
 * the connections are bounded and timed out like the one port's.
 */
export function createExpositionServer(
  reader: Collectable,
  onError: (error: unknown) => void,
  options: ExpositionOptions = {},
): Server {
  const exposition = coalesced(reader, onError, EXPOSITION_LIMITS);
  const server = createServer(
    {
      headersTimeout: EXPOSITION_LIMITS.headersTimeoutMillis,
      requestTimeout: EXPOSITION_LIMITS.requestTimeoutMillis,
      keepAliveTimeout: EXPOSITION_LIMITS.keepAliveTimeoutMillis,
      connectionsCheckingInterval: EXPOSITION_LIMITS.connectionsCheckingIntervalMillis,
    },
    (req, res) => {
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
      void exposition().then((body) =>
        res
          .writeHead(200, { "content-type": "text/plain", "content-length": body.length })
          .end(body),
      );
    },
  );
  const admit = limitConnections(server, {
    maxConnections: options.maxConnections ?? EXPOSITION_LIMITS.maxConnections,
    maxConnectionsPerAddress:
      options.maxConnectionsPerAddress ?? EXPOSITION_LIMITS.maxConnectionsPerAddress,
    onRefused: options.onConnectionRefused,
  });
  // Before the HTTP server's own listener, which sets up a parser: a refused
  // socket is reset before anything reads it.
  server.prependListener("connection", (socket: Socket) => admit(socket));
  return server;
}
