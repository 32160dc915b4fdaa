import { discoverEnvApiKeys, type EnvApiKey } from "./auth/env-keys.js";
import { DEFAULT_ONE_PORT_OPTIONS } from "./http/one-port.js";
import { LIMITS } from "./ingest/validate.js";

/** SQLite `synchronous` levels this service allows (docs/dependencies.md trap 10). */
export type SqliteSynchronous = "FULL" | "NORMAL";

/**
 * What happens to a batch whose `service` is not its key's
 * (`METRICS_KEY_SERVICE_BINDING`): `audit` stores it and reports the
 * mismatch, `enforce` refuses it (403 / PERMISSION_DENIED), `off` neither.
 */
export type KeyServiceBinding = "audit" | "enforce" | "off";

/**
 * The service's whole configuration, read once from the environment at start-up,
 * validated and frozen. Nothing else in the service reads `process.env`.
 */
export interface Config {
  /** Interface the one API port binds to (`METRICS_SERVICE_HOST`, default `0.0.0.0`). */
  readonly host: string;
  /** The one API port for gRPC, Connect, gRPC-Web and JSON (`METRICS_SERVICE_PORT`, default 8890; 0 picks a free port). */
  readonly port: number;
  /**
   * TLS on the one port (`METRICS_TLS_CERT_FILE` and `METRICS_TLS_KEY_FILE`, PEM
   * files, both or neither); cleartext when absent.
   */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** SQLite database file (`SQLITE_DB_PATH`, default `./data/metrics.db`); its directory is created. */
  readonly sqlitePath: string;
  /** SQLite `synchronous` pragma (`SQLITE_SYNCHRONOUS`, default `FULL`: an acknowledged batch survives power loss). */
  readonly sqliteSynchronous: SqliteSynchronous;
  /** How long a write waits for another process's lock (`SQLITE_BUSY_TIMEOUT_MS`, default 5000). */
  readonly sqliteBusyTimeoutMillis: number;
  /**
   * PostgreSQL that replicas share (`DATABASE_URL`, `postgres://...`); when
   * set it replaces the SQLite file, and the `SQLITE_*` settings do not apply.
   */
  readonly databaseUrl: string | undefined;
  /** Most PostgreSQL connections per replica (`DATABASE_POOL_MAX`, default 10). */
  readonly databasePoolMax: number;
  /**
   * The longest one wait of a request for storage, in ms
   * (`METRICS_STORAGE_TIMEOUT_MS`, default 10000): a commit (its time queued
   * included), a batch id's lookup, a PostgreSQL connection or query. Past it
   * the request gets UNAVAILABLE / 503 with `Retry-After`. Kept below the one
   * port's request timeout (see {@link STORAGE_WAITS_PER_REQUEST}).
   */
  readonly storageTimeoutMillis: number;
  /**
   * Redis holding the rate-limit buckets that replicas share (`REDIS_URL`,
   * e.g. `redis://redis:6379`); each process keeps its own when absent.
   */
  readonly redisUrl: string | undefined;
  /** Requests per minute per API key unless the key has its own limit (`METRICS_RATE_LIMIT`, default 1000). */
  readonly rateLimitPerMinute: number;
  /** Failed authentications allowed per client address per minute (`METRICS_AUTH_FAILURES_PER_MINUTE`, default 30; 0 disables). */
  readonly authFailuresPerMinute: number;
  /** Default retention of the raw and specialized tables, in days (`METRICS_RETENTION_DAYS`, default 90). */
  readonly retentionDays: number;
  /** Retention cleanup settings. */
  readonly retention: RetentionConfig;
  /** Largest accepted request message or body, in bytes (`METRICS_MAX_REQUEST_BYTES`, default 1 MiB). */
  readonly maxRequestBytes: number;
  /**
   * Requests handled at once, streams included (`METRICS_MAX_CONCURRENT_REQUESTS`,
   * default 64); more are answered UNAVAILABLE / 503 without reading their body.
   */
  readonly maxConcurrentRequests: number;
  /**
   * Requests without a valid API key handled at once (`METRICS_MAX_ANONYMOUS_REQUESTS`,
   * default 16): a pool of their own, so they never crowd out keyed requests.
   */
  readonly maxAnonymousRequests: number;
  /**
   * A key's fair share of `maxConcurrentRequests` (`METRICS_MAX_CONCURRENT_REQUESTS_PER_KEY`,
   * default a quarter of it, 16): past it, while the other keys would be left
   * fewer slots than this, the key's requests get 429 / RESOURCE_EXHAUSTED.
   */
  readonly maxConcurrentRequestsPerKey: number;
  /**
   * The longest one request message may take to arrive (`METRICS_MESSAGE_DEADLINE_MS`,
   * default 30000): a stream's messages each from its first byte to its last,
   * a unary call's or a JSON route's body from the request's start; past it
   * the call ends with RESOURCE_EXHAUSTED (RPCs) or 408 (JSON routes).
   */
  readonly messageDeadlineMillis: number;
  /**
   * The least rate, in bytes per second, at which a request message or body
   * must arrive once it has taken 5 s (`METRICS_MIN_DATA_RATE`, default 240,
   * Kestrel's; 0 turns it off): a slower one ends with RESOURCE_EXHAUSTED
   * (RPCs) or 408 (JSON routes).
   */
  readonly minDataRate: number;
  /**
   * Rows waiting for a commit before new batches are refused with UNAVAILABLE / 503
   * (`METRICS_MAX_QUEUED_ROWS`, default 50000).
   */
  readonly maxQueuedRows: number;
  /**
   * About how many bytes of rows may wait for a commit before new batches are
   * refused with UNAVAILABLE / 503 (`METRICS_MAX_QUEUED_BYTES`, default 64 MiB).
   */
  readonly maxQueuedBytes: number;
  /**
   * Connections open at once on the one port (`METRICS_MAX_CONNECTIONS`,
   * default 4096); more are closed as they are accepted, before a byte is read.
   */
  readonly maxConnections: number;
  /**
   * Connections open at once on the one port from one client address
   * (`METRICS_MAX_CONNECTIONS_PER_ADDRESS`, default 256: generous, as a load
   * balancer or a NAT puts many clients behind one address); more are reset.
   */
  readonly maxConnectionsPerAddress: number;
  /** Most rows one group-commit transaction takes (`METRICS_COMMIT_MAX_ROWS`, default 5000). */
  readonly commitMaxRows: number;
  /**
   * Group-commit delay, in ms (`METRICS_COMMIT_MAX_DELAY_MS`, default 0 = never
   * wait): while other requests are in flight, a commit waits for them until
   * this long after the previous commit ended; with none, it commits at once.
   */
  readonly commitMaxDelayMillis: number;
  /**
   * How long a batch id is remembered, in seconds (`METRICS_IDEMPOTENCY_WINDOW_SECONDS`,
   * default 86400 = one day; 0 turns batch ids off): a batch retried with the
   * same id within it is stored once and answered with the original result.
   */
  readonly idempotencyWindowSeconds: number;
  /** How long a graceful shutdown waits for in-flight requests (`METRICS_SHUTDOWN_TIMEOUT_MS`, default 10000). */
  readonly shutdownTimeoutMillis: number;
  /** How often in-memory `last_used_at` times are written to `api_keys` (`METRICS_KEY_USAGE_FLUSH_MS`, default 60000). */
  readonly keyUsageFlushMillis: number;
  /** How often the keys are re-read, so that `keys create/revoke/rotate` apply (`METRICS_KEY_RELOAD_MS`, default 5000). */
  readonly keyReloadMillis: number;
  /**
   * What a batch reported as another service than its key's gets
   * (`METRICS_KEY_SERVICE_BINDING`: `audit`, the default, `enforce` or `off`;
   * the older `true` and `false` read as `enforce` and `off`).
   */
  readonly keyServiceBinding: KeyServiceBinding;
  /**
   * Most events in one request: a legacy body, a unary `Ingest` or one stream
   * message (`METRICS_MAX_BATCH_EVENTS`, default 5000; the gateway's nginx
   * flushes up to 1,024 at once). The body-size limit still applies.
   */
  readonly maxBatchEvents: number;
  /** Log level: fatal, error, warn, info, debug, trace or silent (`LOG_LEVEL`, default `info`). */
  readonly logLevel: string;
  /** Keys from `METRICS_API_KEY_<NAME>` variables. */
  readonly envApiKeys: readonly EnvApiKey[];
  /** OpenTelemetry export settings. */
  readonly telemetry: TelemetryConfig;
}

/** When and how expired rows are deleted. */
export interface RetentionConfig {
  /** Whether sweeps run on a schedule (`METRICS_RETENTION_ENABLED`, default true); the admin API works either way. */
  readonly scheduled: boolean;
  /** First sweep after start-up, in ms (`METRICS_RETENTION_START_DELAY_MS`, default 60000). */
  readonly startDelayMillis: number;
  /** Between sweeps, in ms (`METRICS_RETENTION_INTERVAL_MS`, default 3600000: hourly). */
  readonly intervalMillis: number;
  /** Rows deleted per transaction (`METRICS_RETENTION_BATCH_ROWS`, default 1000). */
  readonly batchRows: number;
  /** The shortest retention a policy may be set to, in days (`METRICS_RETENTION_MIN_DAYS`, default 7). */
  readonly minDays: number;
}

/** Where and how the service's metrics are exported. */
export interface TelemetryConfig {
  /** `OTEL_SERVICE_NAME`, default `mcp-metrics-service`. */
  readonly serviceName: string;
  /** `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`). */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /**
   * Prometheus exposition (`OTEL_PROMETHEUS_ENABLED`, default true): its
   * interface (`OTEL_EXPORTER_PROMETHEUS_HOST`, the OpenTelemetry
   * specification's name, or the older `OTEL_PROMETHEUS_HOST`; default
   * `0.0.0.0`, so that a Prometheus in another container or pod reaches it)
   * and port (`OTEL_EXPORTER_PROMETHEUS_PORT` or `OTEL_PROMETHEUS_PORT`, default 9465).
   */
  readonly prometheus: { readonly host: string; readonly port: number } | undefined;
  /**
   * OTLP export, as the OpenTelemetry specification's variables say (see
   * {@link OtlpConfig}); undefined when no OTLP exporter runs.
   */
  readonly otlp: OtlpConfig | undefined;
  /**
   * Distinct values per label before `_other` (`METRICS_MAX_LABEL_CARDINALITY`,
   * the upstream gateway's name, default 150; `METRICS_MAX_LABEL_VALUES` is
   * read when it is unset).
   */
  readonly maxValuesPerLabel: number;
  /** Longest label value (`METRICS_MAX_LABEL_LENGTH`, default 96). */
  readonly maxLabelLength: number;
  /** Also record the MCP semantic-convention instruments (`METRICS_OTEL_SEMCONV`, default false). */
  readonly semconv: boolean;
  /**
   * How much the OpenTelemetry SDK says about itself (`OTEL_LOG_LEVEL`, the
   * specification's variable: `none`, `error`, `warn`, `info` (default),
   * `debug`, `verbose`, `all`), written through the service's log.
   */
  readonly sdkLogLevel: OtelLogLevel;
}

/** The OTLP protocols the specification names. */
export const OTLP_PROTOCOLS = ["grpc", "http/protobuf", "http/json"] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** How metrics are exported over OTLP: each from its `OTEL_EXPORTER_OTLP_METRICS_*` or `OTEL_EXPORTER_OTLP_*` variable. */
export interface OtlpConfig {
  /** `…_PROTOCOL`: `grpc`, `http/protobuf` (the specification's default) or `http/json`. */
  readonly protocol: OtlpProtocol;
  /**
   * Where to: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as given; else
   * `OTEL_EXPORTER_OTLP_ENDPOINT` (or the older `OTEL_OTLP_ENDPOINT`) with
   * `/v1/metrics` appended over HTTP, as given over gRPC; else the
   * specification's default, `http://localhost:4318/v1/metrics` or `http://localhost:4317`.
   */
  readonly url: string;
  /** `…_HEADERS` (`k=v,k2=v2`, URL-encoded), the metrics' own over the generic ones. */
  readonly headers: Readonly<Record<string, string>>;
  /** `OTEL_METRIC_EXPORT_INTERVAL`, default 60000 ms. */
  readonly intervalMillis: number;
  /** `…_TIMEOUT`, default 10000 ms: how long one export may take. */
  readonly timeoutMillis: number;
  /** `…_COMPRESSION`: `gzip` or `none` (default). */
  readonly compression: "gzip" | "none";
  /** `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`: `cumulative` (default), `delta` or `lowmemory`. */
  readonly temporality: "cumulative" | "delta" | "lowmemory";
  /** PEM files: `…_CERTIFICATE` (the server's CA), `…_CLIENT_CERTIFICATE` and `…_CLIENT_KEY` (mTLS). */
  readonly certificates: {
    readonly ca?: string | undefined;
    readonly cert?: string | undefined;
    readonly key?: string | undefined;
  };
}

/** Metrics exporters `OTEL_METRICS_EXPORTER` may name (the specification's `console` is not offered). */
const METRICS_EXPORTERS = ["otlp", "prometheus", "none"];

/** Thrown by {@link loadConfig} with every problem found, one per line. */
export class ConfigError extends Error {
  override name = "ConfigError";
  /** Each invalid setting, naming its variable. */
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.problems = problems;
  }
}

/** A URL setting as given, once its scheme is one of `protocols` (`redis:`, …). */
function urlOf(
  name: string,
  raw: string | undefined,
  protocols: readonly string[],
  problems: string[],
): string | undefined {
  if (raw === undefined) return undefined;
  let protocol = "";
  try {
    protocol = new URL(raw).protocol;
  } catch {
    // reported below
  }
  if (!protocols.includes(protocol)) {
    const schemes = protocols.map((p) => `${p}//`).join(" or ");
    problems.push(`${name}: must be a ${schemes} URL`);
    return undefined;
  }
  return raw;
}

/**
 * Storage waits one request may make in a row: a batch id's lookup, then its
 * commit. Both must end before the one port's request timeout (the HTTP/2
 * stream idle timer and the HTTP/1.1 request timeout), which resets a stream
 * without a status (issue 21, part 5: a 30 s query timeout tied with it).
 */
const STORAGE_WAITS_PER_REQUEST = 2;

/** Room left after those waits to write the answer before the transport's timer fires. */
const STORAGE_TIMEOUT_HEADROOM_MILLIS = 1000;

/** The longest storage timeout that keeps a request's waits below the one port's timers. */
export const MAX_STORAGE_TIMEOUT_MILLIS = Math.floor(
  (DEFAULT_ONE_PORT_OPTIONS.requestTimeoutMillis - STORAGE_TIMEOUT_HEADROOM_MILLIS) /
    STORAGE_WAITS_PER_REQUEST,
);

/** `OTEL_LOG_LEVEL`'s values, as the OpenTelemetry specification lists them. */
const OTEL_LOG_LEVELS = ["none", "error", "warn", "info", "debug", "verbose", "all"] as const;
export type OtelLogLevel = (typeof OTEL_LOG_LEVELS)[number];

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads, defaults and validates the configuration, collecting every problem
 * before failing so that one start-up shows them all.
 */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const read = (name: string): string | undefined => {
    const raw = env[name]?.trim();
    return raw === undefined || raw === "" ? undefined : raw;
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const value = /^-?\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return value;
  };
  const oneOf = <T extends string>(name: string, fallback: T, allowed: readonly T[]): T => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const match = allowed.find((a) => a.toLowerCase() === raw.toLowerCase());
    if (match === undefined) {
      problems.push(`${name}=${JSON.stringify(raw)}: must be one of ${allowed.join(", ")}`);
      return fallback;
    }
    return match;
  };

  /** METRICS_STORAGE_TIMEOUT_MS, refused with the reason when the transport's timers would fire first. */
  const storageTimeout = (): number => {
    const name = "METRICS_STORAGE_TIMEOUT_MS";
    const value = integer(name, 10_000, 100, Number.MAX_SAFE_INTEGER);
    if (value <= MAX_STORAGE_TIMEOUT_MILLIS) return value;
    problems.push(
      `${name}=${value}: must be at most ${MAX_STORAGE_TIMEOUT_MILLIS}, so that a request's ` +
        `${STORAGE_WAITS_PER_REQUEST} storage waits (a batch id's lookup, then its commit) end in ` +
        `503 / UNAVAILABLE ${STORAGE_TIMEOUT_HEADROOM_MILLIS} ms before the one port's ` +
        `${DEFAULT_ONE_PORT_OPTIONS.requestTimeoutMillis} ms request timeout would reset its stream`,
    );
    return MAX_STORAGE_TIMEOUT_MILLIS;
  };

  const flag = (name: string, fallback: boolean): boolean => {
    const raw = read(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (["true", "1", "yes", "on"].includes(raw)) return true;
    if (["false", "0", "no", "off"].includes(raw)) return false;
    problems.push(`${name}=${JSON.stringify(raw)}: must be true or false`);
    return fallback;
  };
  /** The key binding mode; the flag it replaced (`true`/`false`) still reads. */
  const binding = (): KeyServiceBinding => {
    const raw = read("METRICS_KEY_SERVICE_BINDING")?.toLowerCase();
    if (raw === "true") return "enforce";
    if (raw === "false") return "off";
    return oneOf<KeyServiceBinding>("METRICS_KEY_SERVICE_BINDING", "audit", [
      "audit",
      "enforce",
      "off",
    ]);
  };
  /** `k=v,k2=v2` lists, as OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS write them. */
  /**
   * `k=v,k2=v2`, URL-encoded, as the OpenTelemetry specification writes
   * headers and resource attributes. A problem names the variable and the
   * item's position, never its text: a header carries credentials.
   */
  const pairs = (name: string): Record<string, string> => {
    const out: Record<string, string> = {};
    const items = (read(name) ?? "").split(",");
    for (const [index, item] of items.entries()) {
      if (item.trim() === "") continue;
      const at = item.indexOf("=");
      if (at <= 0) {
        problems.push(`${name}: item ${index + 1} is not key=value`);
        continue;
      }
      try {
        out[decodeURIComponent(item.slice(0, at).trim())] = decodeURIComponent(
          item.slice(at + 1).trim(),
        );
      } catch {
        problems.push(
          `${name}: item ${index + 1} is not URL-encoded (a % not followed by two hex digits)`,
        );
      }
    }
    return out;
  };
  /**
   * Which exporters run. `OTEL_SDK_DISABLED=true`: none. `OTEL_METRICS_EXPORTER`
   * (a list of `otlp`, `prometheus`, or `none`), when set: exactly those.
   * Unset, this service differs from the specification's default (`otlp`,
   * which would send to localhost whether or not a Collector is there):
   * Prometheus unless `OTEL_PROMETHEUS_ENABLED=false`, and OTLP once an
   * endpoint is configured.
   */
  const exportersChosen = (): { prometheus: boolean; otlp: boolean } => {
    if (flag("OTEL_SDK_DISABLED", false)) return { prometheus: false, otlp: false };
    const raw = read("OTEL_METRICS_EXPORTER");
    if (raw === undefined) {
      const endpoint = ["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .concat("OTEL_OTLP_ENDPOINT")
        .some((name) => read(name) !== undefined);
      return { prometheus: flag("OTEL_PROMETHEUS_ENABLED", true), otlp: endpoint };
    }
    const names = raw
      .split(",")
      .map((name) => name.trim().toLowerCase())
      .filter((name) => name !== "");
    for (const name of names) {
      if (!METRICS_EXPORTERS.includes(name)) {
        problems.push(
          `OTEL_METRICS_EXPORTER: "${name}" is not one of ${METRICS_EXPORTERS.join(", ")}`,
        );
      }
    }
    if (names.includes("none") && names.length > 1) {
      problems.push(`OTEL_METRICS_EXPORTER: "none" cannot be listed with other exporters`);
    }
    return { prometheus: names.includes("prometheus"), otlp: names.includes("otlp") };
  };
  const exporters = exportersChosen();
  /** An OTLP setting: the metrics' own variable, else the generic one. */
  const otlpSetting = (suffix: string): [name: string, value: string | undefined] => {
    const own = `OTEL_EXPORTER_OTLP_METRICS_${suffix}`;
    if (read(own) !== undefined) return [own, read(own)];
    return [`OTEL_EXPORTER_OTLP_${suffix}`, read(`OTEL_EXPORTER_OTLP_${suffix}`)];
  };
  const otlpChoice = <T extends string>(suffix: string, fallback: T, allowed: readonly T[]): T => {
    const [name, raw] = otlpSetting(suffix);
    return raw === undefined ? fallback : oneOf<T>(name, fallback, allowed);
  };
  const otlpConfig = (): OtlpConfig => {
    const legacy = read("OTEL_OTLP_ENDPOINT");
    const protocol = otlpChoice<OtlpProtocol>("PROTOCOL", "http/protobuf", OTLP_PROTOCOLS);
    // Checked here, without echoing them (a URL may carry a token): the SDK
    // would log an unparsable one as it is.
    const http = ["http:", "https:"];
    const own = urlOf(
      "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
      read("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
      http,
      problems,
    );
    const generic =
      urlOf("OTEL_EXPORTER_OTLP_ENDPOINT", read("OTEL_EXPORTER_OTLP_ENDPOINT"), http, problems) ??
      urlOf("OTEL_OTLP_ENDPOINT", legacy, http, problems);
    const url =
      own ??
      (generic === undefined
        ? protocol === "grpc"
          ? "http://localhost:4317"
          : "http://localhost:4318/v1/metrics"
        : protocol === "grpc"
          ? generic
          : `${generic.replace(/\/+$/, "")}/v1/metrics`);
    const [timeoutName] = otlpSetting("TIMEOUT");
    return {
      protocol,
      url,
      headers: {
        ...pairs("OTEL_EXPORTER_OTLP_HEADERS"),
        ...pairs("OTEL_EXPORTER_OTLP_METRICS_HEADERS"),
      },
      intervalMillis: integer("OTEL_METRIC_EXPORT_INTERVAL", 60_000, 100, 86_400_000),
      timeoutMillis: integer(timeoutName, 10_000, 1, 600_000),
      compression: otlpChoice<"gzip" | "none">("COMPRESSION", "none", ["gzip", "none"]),
      temporality: oneOf<"cumulative" | "delta" | "lowmemory">(
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
        "cumulative",
        ["cumulative", "delta", "lowmemory"],
      ),
      certificates: {
        ca: otlpSetting("CERTIFICATE")[1],
        cert: otlpSetting("CLIENT_CERTIFICATE")[1],
        key: otlpSetting("CLIENT_KEY")[1],
      },
    };
  };
  const resourceAttributes = pairs("OTEL_RESOURCE_ATTRIBUTES");
  const telemetry: TelemetryConfig = {
    // OTEL_SERVICE_NAME wins over a service.name in OTEL_RESOURCE_ATTRIBUTES (OpenTelemetry spec).
    serviceName:
      read("OTEL_SERVICE_NAME") ?? resourceAttributes["service.name"] ?? "mcp-metrics-service",
    resourceAttributes,
    prometheus: exporters.prometheus
      ? {
          // The specification's names win over the older ones, as for OTLP.
          host: read("OTEL_EXPORTER_PROMETHEUS_HOST") ?? read("OTEL_PROMETHEUS_HOST") ?? "0.0.0.0",
          port:
            read("OTEL_EXPORTER_PROMETHEUS_PORT") === undefined
              ? integer("OTEL_PROMETHEUS_PORT", 9465, 0, 65535)
              : integer("OTEL_EXPORTER_PROMETHEUS_PORT", 9465, 0, 65535),
        }
      : undefined,
    otlp: exporters.otlp ? otlpConfig() : undefined,
    maxValuesPerLabel:
      read("METRICS_MAX_LABEL_CARDINALITY") === undefined
        ? integer("METRICS_MAX_LABEL_VALUES", 150, 1, 100_000)
        : integer("METRICS_MAX_LABEL_CARDINALITY", 150, 1, 100_000),
    maxLabelLength: integer("METRICS_MAX_LABEL_LENGTH", 96, 8, 1024),
    semconv: flag("METRICS_OTEL_SEMCONV", false),
    sdkLogLevel: oneOf<OtelLogLevel>("OTEL_LOG_LEVEL", "info", OTEL_LOG_LEVELS),
  };

  const maxConcurrentRequests = integer("METRICS_MAX_CONCURRENT_REQUESTS", 64, 1, 1_000_000);
  const certFile = read("METRICS_TLS_CERT_FILE");
  const keyFile = read("METRICS_TLS_KEY_FILE");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    problems.push(
      "METRICS_TLS_CERT_FILE and METRICS_TLS_KEY_FILE: set both (TLS) or neither (cleartext)",
    );
  }
  const config: Config = {
    host: read("METRICS_SERVICE_HOST") ?? "0.0.0.0",
    port: integer("METRICS_SERVICE_PORT", 8890, 0, 65535),
    tls:
      certFile !== undefined && keyFile !== undefined
        ? Object.freeze({ certFile, keyFile })
        : undefined,
    sqlitePath: read("SQLITE_DB_PATH") ?? "./data/metrics.db",
    sqliteSynchronous: oneOf<SqliteSynchronous>("SQLITE_SYNCHRONOUS", "FULL", ["FULL", "NORMAL"]),
    sqliteBusyTimeoutMillis: integer("SQLITE_BUSY_TIMEOUT_MS", 5000, 0, 600_000),
    rateLimitPerMinute: integer("METRICS_RATE_LIMIT", 1000, 0, 100_000_000),
    databaseUrl: urlOf(
      "DATABASE_URL",
      read("DATABASE_URL"),
      ["postgres:", "postgresql:"],
      problems,
    ),
    databasePoolMax: integer("DATABASE_POOL_MAX", 10, 2, 1000),
    storageTimeoutMillis: storageTimeout(),
    redisUrl: urlOf("REDIS_URL", read("REDIS_URL"), ["redis:", "rediss:"], problems),
    authFailuresPerMinute: integer("METRICS_AUTH_FAILURES_PER_MINUTE", 30, 0, 1_000_000),
    retentionDays: integer("METRICS_RETENTION_DAYS", 90, 1, 36_500),
    retention: Object.freeze({
      scheduled: flag("METRICS_RETENTION_ENABLED", true),
      startDelayMillis: integer("METRICS_RETENTION_START_DELAY_MS", 60_000, 0, 86_400_000),
      intervalMillis: integer("METRICS_RETENTION_INTERVAL_MS", 3_600_000, 1000, 604_800_000),
      batchRows: integer("METRICS_RETENTION_BATCH_ROWS", 1000, 1, 1_000_000),
      minDays: integer("METRICS_RETENTION_MIN_DAYS", 7, 1, 36_500),
    }),
    maxRequestBytes: integer("METRICS_MAX_REQUEST_BYTES", 1024 * 1024, 1024, 256 * 1024 * 1024),
    maxConcurrentRequests,
    messageDeadlineMillis: integer("METRICS_MESSAGE_DEADLINE_MS", 30_000, 100, 600_000),
    minDataRate: integer("METRICS_MIN_DATA_RATE", 240, 0, 1_000_000_000),
    maxConcurrentRequestsPerKey: integer(
      "METRICS_MAX_CONCURRENT_REQUESTS_PER_KEY",
      Math.max(1, Math.ceil(maxConcurrentRequests / 4)),
      1,
      1_000_000,
    ),
    maxAnonymousRequests: integer("METRICS_MAX_ANONYMOUS_REQUESTS", 16, 1, 1_000_000),
    maxQueuedBytes: integer("METRICS_MAX_QUEUED_BYTES", 64 * 1024 * 1024, 1024 * 1024, 2 ** 40),
    maxQueuedRows: integer("METRICS_MAX_QUEUED_ROWS", 50_000, 100, 100_000_000),
    maxConnections: integer("METRICS_MAX_CONNECTIONS", 4096, 1, 1_000_000),
    maxConnectionsPerAddress: integer("METRICS_MAX_CONNECTIONS_PER_ADDRESS", 256, 1, 1_000_000),
    commitMaxRows: integer("METRICS_COMMIT_MAX_ROWS", 5000, 1, 1_000_000),
    commitMaxDelayMillis: integer("METRICS_COMMIT_MAX_DELAY_MS", 0, 0, 1000),
    idempotencyWindowSeconds: integer("METRICS_IDEMPOTENCY_WINDOW_SECONDS", 86_400, 0, 2_592_000),
    shutdownTimeoutMillis: integer("METRICS_SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
    keyUsageFlushMillis: integer("METRICS_KEY_USAGE_FLUSH_MS", 60_000, 100, 86_400_000),
    keyReloadMillis: integer("METRICS_KEY_RELOAD_MS", 5000, 100, 86_400_000),
    keyServiceBinding: binding(),
    // Never below what the gateway's nginx flushes at once: it deletes a batch answered 200.
    maxBatchEvents: integer("METRICS_MAX_BATCH_EVENTS", LIMITS.maxEvents, 1024, 1_000_000),
    logLevel: oneOf("LOG_LEVEL", "info", LOG_LEVELS),
    envApiKeys: Object.freeze(discoverEnvApiKeys(env)),
    telemetry: Object.freeze(telemetry),
  };
  if (config.retentionDays < config.retention.minDays) {
    problems.push(
      `METRICS_RETENTION_DAYS (${config.retentionDays}) is below METRICS_RETENTION_MIN_DAYS (${config.retention.minDays})`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
