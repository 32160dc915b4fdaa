import { randomUUID } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { credentials, Metadata } from "@grpc/grpc-js";
import { type Counter, diag, type Histogram, type Meter } from "@opentelemetry/api";
import { OTLPMetricExporter as OTLPGrpcMetricExporter } from "@opentelemetry/exporter-metrics-otlp-grpc";
import {
  AggregationTemporalityPreference,
  OTLPMetricExporter as OTLPJsonMetricExporter,
} from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPMetricExporter as OTLPProtoMetricExporter } from "@opentelemetry/exporter-metrics-otlp-proto";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { HostMetricsInstrumentation } from "@opentelemetry/instrumentation-host-metrics";
import { RuntimeNodeInstrumentation } from "@opentelemetry/instrumentation-runtime-node";
import type { CompressionAlgorithm } from "@opentelemetry/otlp-exporter-base";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AggregationType,
  type IMetricReader,
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ViewOptions,
} from "@opentelemetry/sdk-metrics";
import type { OtlpConfig, TelemetryConfig } from "../config.js";
import type { Logger } from "../log.js";
import { BUILD_COMMIT, SERVICE_VERSION } from "../version.js";
import { createExpositionServer } from "./exposition.js";
import { createEventInstruments, type EventInstruments, SECONDS_BUCKETS } from "./instruments.js";
import { createLabelBounds } from "./label-bounds.js";
import { routeSdkDiagnostics } from "./sdk-log.js";

/**
 * How telemetry leaves the service: the telemetry configuration, plus what
 * the composition root knows about the running service.
 */
export interface TelemetryOptions extends TelemetryConfig {
  /** Where the SDK's diagnostics and export failures are logged; silent when absent. */
  readonly log?: Logger;
  /** The database file, whose size (with its WAL) is reported. */
  readonly databasePath?: string;
  /** Rows waiting for a commit, reported as a gauge (or see {@link Telemetry.observeQueuedRows}). */
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
  /**
   * Reports the rows waiting for a commit (`mcp_metrics_queue_rows`) from
   * `rows` from now on, 0 before: the event store, started after telemetry,
   * hands its queue over as it starts.
   */
  observeQueuedRows(rows: () => number): void;
  /** Flushes the exporters and stops the Prometheus server. */
  shutdown(): Promise<void>;
}

/** The request outcomes exported at 0 from start-up (codes as Connect names them, one vocabulary on every ingress). */
const STARTING_CODES = [
  "ok",
  "invalid_argument",
  "unauthenticated",
  "permission_denied",
  "resource_exhausted",
  "unavailable",
  "internal",
];

const ROW_BUCKETS = [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/**
 * Series one event instrument may hold before new ones fold into
 * `otel_metric_overflow="true"` (the SDK's default is 2000). The label caps
 * bound each label; this bounds their product.
 */
const SERIES_PER_INSTRUMENT = 10_000;

/** How often the event loop's delay is sampled, in ms (the package's default is 10). */
const RUNTIME_PRECISION_MILLIS = 10;

/** The instrumentation scope of every instrument. */
const SCOPE_NAME = "mcp-metrics-service";

const TEMPORALITY = {
  cumulative: AggregationTemporalityPreference.CUMULATIVE,
  delta: AggregationTemporalityPreference.DELTA,
  lowmemory: AggregationTemporalityPreference.LOWMEMORY,
} as const;

/** Reads a PEM file an OTLP variable names; a failure names the file. */
function pem(path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new Error(`OTLP certificate ${path} cannot be read (${reason})`);
  }
}

/**
 * The official OTLP exporter for the configured protocol: `grpc`
 * (exporter-metrics-otlp-grpc), `http/protobuf` (-proto) or `http/json`
 * (-http), each given the endpoint, headers, timeout, compression,
 * temporality and certificates as the specification's variables set them.
 */
export function createOtlpExporter(otlp: OtlpConfig): PushMetricExporter {
  const common = {
    url: otlp.url,
    timeoutMillis: otlp.timeoutMillis,
    compression: otlp.compression as CompressionAlgorithm,
    temporalityPreference: TEMPORALITY[otlp.temporality],
  };
  const ca = pem(otlp.certificates.ca);
  const cert = pem(otlp.certificates.cert);
  const key = pem(otlp.certificates.key);
  if (otlp.protocol === "grpc") {
    // The gRPC exporter takes headers as gRPC metadata.
    const metadata = new Metadata();
    for (const [name, value] of Object.entries(otlp.headers)) {
      // grpc-js would put the value in its error: name the header only.
      if (!/^[\x20-\x7e]*$/.test(value)) {
        throw new Error(`OTLP header ${name}: a gRPC header value must be printable ASCII`);
      }
      metadata.set(name, value);
    }
    const tls = ca !== undefined || cert !== undefined;
    return new OTLPGrpcMetricExporter({
      ...common,
      metadata,
      ...(tls ? { credentials: credentials.createSsl(ca ?? null, key ?? null, cert ?? null) } : {}),
    });
  }
  const http = {
    ...common,
    headers: { ...otlp.headers },
    ...(ca || cert || key ? { httpAgentOptions: { ca, cert, key } } : {}),
  };
  return otlp.protocol === "http/json"
    ? new OTLPJsonMetricExporter(http)
    : new OTLPProtoMetricExporter(http);
}

/** How often a failing exporter's failures are logged: the first at once, then a summary per interval. */
const EXPORT_FAILURE_LOG_MILLIS = 60_000;

/** An endpoint as it may be logged: no user info, no query (either may carry a credential). */
export function redactedEndpoint(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return "(unparsable endpoint)";
  }
}

/**
 * Reports each failed export: counted every time, logged at warn the first
 * time and then at most once per {@link EXPORT_FAILURE_LOG_MILLIS}, with how
 * many failed meanwhile, the endpoint and the reason (never the headers).
 */
function exportFailureReporter(
  log: Logger | undefined,
  endpoint: string,
  count: (failures: number) => void,
): (error: Error | undefined) => void {
  let lastLogged = Number.NEGATIVE_INFINITY;
  let unlogged = 0;
  return (error) => {
    count(1);
    unlogged++;
    const now = performance.now();
    if (now - lastLogged < EXPORT_FAILURE_LOG_MILLIS) return;
    log?.warn(
      { exporter: "otlp", endpoint, failures: unlogged, reason: error?.message ?? "unknown" },
      "metrics export failed",
    );
    lastLogged = now;
    unlogged = 0;
  };
}

/** `exporter`, telling `onFailure` of every export that did not succeed. */
function countingFailures(
  exporter: PushMetricExporter,
  onFailure: (error: Error | undefined) => void,
): PushMetricExporter {
  return {
    export(metrics, done) {
      exporter.export(metrics, (result) => {
        // ExportResultCode.SUCCESS is 0 (@opentelemetry/core).
        if (result.code !== 0) onFailure(result.error);
        done(result);
      });
    },
    forceFlush: () => exporter.forceFlush(),
    shutdown: () => exporter.shutdown(),
    ...(exporter.selectAggregationTemporality
      ? { selectAggregationTemporality: exporter.selectAggregationTemporality.bind(exporter) }
      : {}),
    ...(exporter.selectAggregation
      ? { selectAggregation: exporter.selectAggregation.bind(exporter) }
      : {}),
  };
}

/** A view giving a histogram explicit boundaries (the SDK's defaults are millisecond-sized, docs/legacy-contract.md W9). */
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

function createServiceMetrics(
  meter: Meter,
  options: TelemetryOptions,
  queuedRows: () => number,
): ServiceMetrics {
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
  queue.addCallback((result) => result.observe(queuedRows()));
  if (options.databasePath !== undefined && options.databasePath !== ":memory:") {
    const path = options.databasePath;
    const size = meter.createObservableGauge("mcp_metrics_database_bytes", {
      description: "Database file and WAL size",
      unit: "By",
    });
    size.addCallback((result) => result.observe(databaseBytes(path)));
  }
  // Every series whose labels are known ahead is exported from start-up, at 0:
  // `rate()` and `increase()` then see a first burst as one, and an alert on
  // it can fire (a series born at its first increment has no earlier sample).
  for (const ingress of ["grpc", "grpc-web", "connect", "json"]) {
    for (const code of STARTING_CODES) requests.add(0, { ingress, code });
  }
  for (const outcome of ["accepted", "replayed"]) events.add(0, { outcome });
  for (const failure of ["unavailable", "closed", "internal"]) storageErrors.add(0, { failure });
  for (const port of ["main", "prometheus"]) {
    for (const reason of ["total", "per_address"]) connectionsRefused.add(0, { port, reason });
  }
  localDecisions.add(0);
  const buildInfo = meter.createObservableGauge("mcp_metrics_build_info", {
    description: "The running build: 1, labelled with its version, commit and Node.js version",
  });
  const build = { version: SERVICE_VERSION, commit: BUILD_COMMIT, nodejs_version: process.version };
  buildInfo.addCallback((result) => result.observe(1, build));
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
 * instrument exists (docs/dependencies.md trap 8), then creates the instruments from it.
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
  let exportFailures: Counter | undefined;
  if (options.log) routeSdkDiagnostics(options.log, options.sdkLogLevel);
  if (options.otlp) {
    const exporter = countingFailures(
      createOtlpExporter(options.otlp),
      exportFailureReporter(options.log, redactedEndpoint(options.otlp.url), (count) =>
        exportFailures?.add(count, { exporter: "otlp" }),
      ),
    );
    readers.push(
      new PeriodicExportingMetricReader({
        exporter,
        exportIntervalMillis: options.otlp.intervalMillis,
        // The exporter's own timeout (OTEL_EXPORTER_OTLP_TIMEOUT) within the
        // reader's, which may not exceed the interval (the SDK's rule).
        exportTimeoutMillis: Math.min(
          options.otlp.intervalMillis,
          Math.max(30_000, options.otlp.timeoutMillis),
        ),
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
  let queuedRows = options.queuedRows ?? (() => 0);
  const service = createServiceMetrics(meter, options, () => queuedRows());
  const runtime = startRuntimeMetrics(provider);
  exportFailures = meter.createCounter("mcp_metrics_export_failures_total", {
    description:
      "Exports that failed, by exporter (otlp): the collector unreachable, refusing, or too slow",
  });
  if (options.otlp) exportFailures.add(0, { exporter: "otlp" });

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
      runtime.stop();
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
    observeQueuedRows(rows) {
      queuedRows = rows;
    },
    async shutdown() {
      if (exposition !== undefined) {
        // close() also ends idle keep-alive connections (a scraper's); a scrape
        // in progress gets its answer.
        await new Promise((resolve) => exposition?.close(resolve));
      }
      runtime.stop();
      await provider.shutdown();
    },
  };
}

/**
 * Process and Node.js runtime metrics, from the maintained OpenTelemetry
 * packages: the process's CPU time and memory (`process_cpu_time_seconds_total`,
 * `process_memory_usage`; instrumentation-host-metrics, whose system-wide groups are
 * left to a node exporter) and the event loop's delay and utilization, V8's
 * heap and garbage collection (`nodejs_eventloop_*`, `v8js_*`;
 * instrumentation-runtime-node).
 */
function startRuntimeMetrics(provider: MeterProvider): { stop(): void } {
  const instrumentations = [
    new HostMetricsInstrumentation({
      enabled: false,
      metricGroups: ["process.cpu", "process.memory"],
    }),
    new RuntimeNodeInstrumentation({
      enabled: false,
      monitoringPrecision: RUNTIME_PRECISION_MILLIS,
    }),
  ];
  for (const instrumentation of instrumentations) {
    instrumentation.setMeterProvider(provider);
    instrumentation.enable();
  }
  return {
    stop() {
      for (const instrumentation of instrumentations) instrumentation.disable();
    },
  };
}
