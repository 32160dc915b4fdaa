import { randomUUID } from "node:crypto";
import { statSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Metadata } from "@grpc/grpc-js";
import { type Counter, diag, type Histogram, type Meter } from "@opentelemetry/api";
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
import { createExpositionServer } from "./exposition.js";
import { createEventInstruments, type EventInstruments, SECONDS_BUCKETS } from "./instruments.js";
import { createLabelBounds } from "./label-bounds.js";

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
  /**
   * Events accepted (committed), rejected (by reason), or replayed: a retried
   * batch answered from its earlier commit, stored and counted once.
   */
  events(outcome: "accepted" | "rejected" | "replayed", count: number, reason?: string): void;
  /** A request refused by a key's rate limit. */
  rateLimited(service: string): void;
  /**
   * A request refused, or a batch of it rejected, by the service of the key
   * that sent it (`_unknown` without a valid key) and the reason.
   */
  refused(service: string, reason: string): void;
  /**
   * Events a key sent as another service than its own, stored under the one
   * reported (`METRICS_KEY_SERVICE_BINDING=audit`).
   */
  serviceMismatch(keyId: string, keyService: string, reported: string, count: number): void;
  /** A rate-limit decision this replica took alone, because the shared buckets (Redis) were unreachable. */
  rateLimitedLocally(): void;
  /** One group commit: how many rows, how long, whether it failed and why. */
  commit(rows: number, durationMillis: number, failure?: string): void;
  /**
   * A connection refused as it was accepted, by the port (`main`, or the
   * Prometheus exposition's) and the bound it was over (`total`, `per_address`).
   */
  connectionRefused(port: "main" | "prometheus", reason: string): void;
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
 * Series one event instrument may hold before new ones fold into
 * `otel_metric_overflow="true"` (the SDK's default is 2000). The label caps
 * bound each label; this bounds their product.
 */
const SERIES_PER_INSTRUMENT = 10_000;

/** The instrumentation scope of every instrument. */
const SCOPE_NAME = "mcp-metrics-service";

/** A view giving a histogram explicit boundaries (the SDK's defaults are millisecond-sized, W9). */
function histogramView(instrumentName: string, boundaries: number[]): ViewOptions {
  return {
    instrumentName,
    aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries } },
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
    description:
      "Events accepted, rejected, or replayed (a retried batch answered from its earlier commit)",
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
  const refusals = meter.createCounter("mcp_metrics_refused_requests_total", {
    description:
      "Requests refused or batches rejected, by the service of the key that sent them (_unknown without a valid key) and reason",
  });
  const mismatches = meter.createCounter("mcp_metrics_service_mismatch_events_total", {
    description:
      "Events a key sent as another service than its own, stored under the reported service (METRICS_KEY_SERVICE_BINDING=audit)",
  });
  // The reported service is the sender's text: bounded like the event labels.
  const reportedServices = createLabelBounds({
    maxValuesPerLabel: options.maxValuesPerLabel,
    maxLength: options.maxLabelLength,
  });
  const localDecisions = meter.createCounter("mcp_metrics_rate_limit_local_decisions_total", {
    description:
      "Rate-limit decisions taken by this replica alone while the shared buckets (Redis) were unreachable",
  });
  const connectionsRefused = meter.createCounter("mcp_metrics_connections_refused_total", {
    description:
      "Connections refused as they were accepted, by port (main, prometheus) and the bound they were over (total, per_address)",
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
    refused: (service, reason) => refusals.add(1, { service, reason }),
    serviceMismatch: (keyId, keyService, reported, count) =>
      mismatches.add(count, {
        key_id: keyId,
        key_service: keyService,
        service: reportedServices.bound("service", reported),
      }),
    rateLimitedLocally: () => localDecisions.add(1),
    connectionRefused: (port, reason) => connectionsRefused.add(1, { port, reason }),
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
  const resource = resourceFromAttributes({
    // One id per process unless configured, as the semantic conventions ask: the
    // cumulative series of replicas exporting to one Collector never collide.
    "service.instance.id": randomUUID(),
    ...options.resourceAttributes,
    "service.name": options.serviceName,
  });
  // The event instruments aggregate their own series (series-aggregation.ts);
  // every reader collects them beside the SDK's own instruments.
  let overflows: Counter | undefined;
  const events = createEventInstruments({
    maxValuesPerLabel: options.maxValuesPerLabel,
    maxLabelLength: options.maxLabelLength,
    semconv: options.semconv,
    onOverflow: (label) => overflows?.add(1, { label }),
    seriesLimit: SERIES_PER_INSTRUMENT,
    resource,
    scopeName: SCOPE_NAME,
  });
  const metricProducers = [events.producer];
  const readers: IMetricReader[] = [];
  let prometheus: PrometheusExporter | undefined;
  if (options.prometheus) {
    prometheus = new PrometheusExporter({
      host: options.prometheus.host,
      port: options.prometheus.port,
      // Served by createExpositionServer (its serializer is ~10x faster, same text).
      preventServerStart: true,
      withoutScopeInfo: true,
      metricProducers,
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
        metricProducers,
      }),
    );
  }
  const provider = new MeterProvider({
    resource,
    readers,
    views: [
      histogramView("mcp_metrics_commit_rows", ROW_BUCKETS),
      histogramView("mcp_metrics_commit_duration_seconds", SECONDS_BUCKETS),
    ],
  });
  const meter = provider.getMeter(SCOPE_NAME);
  overflows = meter.createCounter("mcp_metrics_label_overflow_total", {
    description: "Label values collapsed into _other by the cardinality cap",
  });
  const service = createServiceMetrics(meter, options);

  let prometheusUrl: string | undefined;
  let exposition: Server | undefined;
  if (prometheus && options.prometheus) {
    const { host, port } = options.prometheus;
    const server = createExpositionServer(
      prometheus,
      (error) => diag.error("Prometheus exposition: metrics collection failed", error),
      { onConnectionRefused: (reason) => service.connectionRefused("prometheus", reason) },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host, port }, () => {
          server.off("error", reject);
          // Later errors (e.g. accept failing for want of file descriptors) must
          // not crash the service for the sake of its metrics port.
          server.on("error", (error) => diag.error("Prometheus exposition server error", error));
          resolve();
        });
      });
    } catch (error) {
      await provider.shutdown().catch(() => {});
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(
        `cannot serve Prometheus metrics on ${host}:${port} (OTEL_EXPORTER_PROMETHEUS_PORT or OTEL_PROMETHEUS_PORT): ${reason}`,
      );
    }
    exposition = server;
    prometheusUrl = `http://${host}:${(server.address() as AddressInfo).port}/metrics`;
  }
  return {
    // With no reader nothing would ever collect the series: skip the work.
    events: readers.length > 0 ? events : { record() {}, producer: events.producer },
    service,
    prometheusUrl,
    async shutdown() {
      if (exposition !== undefined) {
        // close() also ends idle keep-alive connections (a scraper's); a scrape
        // in progress gets its answer.
        await new Promise((resolve) => exposition?.close(resolve));
      }
      await provider.shutdown();
    },
  };
}
