import { statSync } from "node:fs";
import { Metadata } from "@grpc/grpc-js";
import type { Histogram, Meter } from "@opentelemetry/api";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-grpc";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AggregationType,
  type IMetricReader,
  MeterProvider,
  PeriodicExportingMetricReader,
  type ViewOptions,
} from "@opentelemetry/sdk-metrics";
import type { TelemetryConfig } from "../config.js";
import {
  createEventInstruments,
  type EventInstruments,
  SECONDS_BUCKETS,
  SECONDS_HISTOGRAMS,
} from "./instruments.js";

/**
 * How telemetry leaves the service: the telemetry configuration, plus what
 * the composition root knows about the running service.
 */
export interface TelemetryOptions extends TelemetryConfig {
  /** The database file, whose size (with its WAL) is reported. */
  readonly databasePath?: string;
  /** Rows waiting for a commit, reported as a gauge. */
  readonly queuedRows?: () => number;
}

/** The service's own health metrics. */
export interface ServiceMetrics {
  /** One request, by ingress (`grpc`, `connect`, `grpc-web`, `json`) and outcome code. */
  request(ingress: string, code: string): void;
  /** Events accepted (committed) or rejected, by reason. */
  events(outcome: "accepted" | "rejected", count: number, reason?: string): void;
  /** A request refused by a key's rate limit. */
  rateLimited(service: string): void;
  /** One group commit: how many rows, how long, whether it failed and why. */
  commit(rows: number, durationMillis: number, failure?: string): void;
}

/** Everything the service records. */
export interface Telemetry {
  readonly events: EventInstruments;
  readonly service: ServiceMetrics;
  /** The Prometheus exposition's address, when enabled. */
  readonly prometheusUrl: string | undefined;
  /** Flushes the exporters and stops the Prometheus server. */
  shutdown(): Promise<void>;
}

const ROW_BUCKETS = [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/**
 * Series one instrument may hold before the SDK folds new ones into
 * `otel_metric_overflow="true"` (its default is 2000). The label caps bound
 * each label; this bounds their product.
 */
const SERIES_PER_INSTRUMENT = 10_000;

/** The event counters, whose only view sets the series limit. */
const EVENT_COUNTERS = [
  "mcp_auth_requests_total",
  "mcp_tool_executions_total",
  "mcp_tool_discovery_total",
  "mcp_health_checks_total",
];

/** A view giving a histogram explicit boundaries (the SDK's defaults are millisecond-sized, W9). */
function histogramView(instrumentName: string, boundaries: number[]): ViewOptions {
  return {
    instrumentName,
    aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries } },
    aggregationCardinalityLimit: SERIES_PER_INSTRUMENT,
  };
}

function databaseBytes(path: string): number {
  let total = 0;
  for (const suffix of ["", "-wal"]) {
    try {
      total += statSync(path + suffix).size;
    } catch {
      // not there (yet): counts as empty
    }
  }
  return total;
}

function createServiceMetrics(meter: Meter, options: TelemetryOptions): ServiceMetrics {
  const requests = meter.createCounter("mcp_metrics_requests_total", {
    description: "Requests by ingress and outcome",
  });
  const events = meter.createCounter("mcp_metrics_events_total", {
    description: "Events accepted or rejected",
  });
  const limited = meter.createCounter("mcp_metrics_rate_limited_total", {
    description: "Requests refused by a rate limit",
  });
  const commitRows: Histogram = meter.createHistogram("mcp_metrics_commit_rows", {
    description: "Rows per group commit",
    unit: "1",
  });
  const commitSeconds = meter.createHistogram("mcp_metrics_commit_duration_seconds", {
    description: "Group commit duration",
    unit: "s",
  });
  const storageErrors = meter.createCounter("mcp_metrics_storage_errors_total", {
    description: "Failed commits by kind",
  });
  const queue = meter.createObservableGauge("mcp_metrics_queue_rows", {
    description: "Rows waiting for a commit",
  });
  queue.addCallback((result) => result.observe(options.queuedRows?.() ?? 0));
  if (options.databasePath !== undefined && options.databasePath !== ":memory:") {
    const path = options.databasePath;
    const size = meter.createObservableGauge("mcp_metrics_database_bytes", {
      description: "Database file and WAL size",
      unit: "By",
    });
    size.addCallback((result) => result.observe(databaseBytes(path)));
  }
  return {
    request: (ingress, code) => requests.add(1, { ingress, code }),
    events: (outcome, count, reason = "") =>
      events.add(count, reason ? { outcome, reason } : { outcome }),
    rateLimited: (service) => limited.add(1, { service }),
    commit(rows, durationMillis, failure) {
      commitRows.record(rows);
      commitSeconds.record(durationMillis / 1000);
      if (failure !== undefined) storageErrors.add(1, { failure });
    },
  };
}

/**
 * Sets up the meter provider with its readers and views before any
 * instrument exists (STACK.md trap 8), then creates the instruments from it.
 * The Prometheus server is started here and a port clash fails start-up with
 * a clear error (the exporter itself reports it only to a callback).
 */
export async function createTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const readers: IMetricReader[] = [];
  let prometheus: PrometheusExporter | undefined;
  if (options.prometheus) {
    prometheus = new PrometheusExporter({
      host: options.prometheus.host,
      port: options.prometheus.port,
      preventServerStart: true,
      withoutScopeInfo: true,
    });
    readers.push(prometheus);
  }
  if (options.otlp) {
    // The gRPC exporter takes headers as gRPC metadata.
    const metadata = new Metadata();
    for (const [key, value] of Object.entries(options.otlp.headers)) metadata.set(key, value);
    const exporter = new OTLPMetricExporter({ url: options.otlp.url, metadata });
    readers.push(
      new PeriodicExportingMetricReader({
        exporter,
        exportIntervalMillis: options.otlp.intervalMillis,
        exportTimeoutMillis: Math.min(options.otlp.intervalMillis, 30_000),
      }),
    );
  }
  const provider = new MeterProvider({
    resource: resourceFromAttributes({
      ...options.resourceAttributes,
      "service.name": options.serviceName,
    }),
    readers,
    views: [
      ...SECONDS_HISTOGRAMS.map((name) => histogramView(name, SECONDS_BUCKETS)),
      histogramView("mcp_metrics_commit_rows", ROW_BUCKETS),
      histogramView("mcp_metrics_commit_duration_seconds", SECONDS_BUCKETS),
      ...EVENT_COUNTERS.map((instrumentName) => ({
        instrumentName,
        aggregationCardinalityLimit: SERIES_PER_INSTRUMENT,
      })),
    ],
  });
  const meter = provider.getMeter("mcp-metrics-service");
  const overflows = meter.createCounter("mcp_metrics_label_overflow_total", {
    description: "Label values collapsed into _other by the cardinality cap",
  });
  const events = createEventInstruments(meter, {
    maxValuesPerLabel: options.maxValuesPerLabel,
    maxLabelLength: options.maxLabelLength,
    semconv: options.semconv,
    onOverflow: (label) => overflows.add(1, { label }),
  });
  const service = createServiceMetrics(meter, options);

  let prometheusUrl: string | undefined;
  if (prometheus && options.prometheus) {
    try {
      await prometheus.startServer();
    } catch (error) {
      await provider.shutdown().catch(() => {});
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(
        `cannot serve Prometheus metrics on ${options.prometheus.host}:${options.prometheus.port} (OTEL_PROMETHEUS_PORT): ${reason}`,
      );
    }
    prometheusUrl = `http://${options.prometheus.host}:${options.prometheus.port}/metrics`;
  }
  return {
    events,
    service,
    prometheusUrl,
    shutdown: () => provider.shutdown(),
  };
}
