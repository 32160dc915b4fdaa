// backends: sqlite only: configuration parsing; no service, no database
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";

describe("loadConfig", () => {
  it("should default every setting as the README documents", () => {
    expect(loadConfig({})).toEqual({
      host: "0.0.0.0",
      port: 8890,
      sqlitePath: "./data/metrics.db",
      sqliteSynchronous: "FULL",
      sqliteBusyTimeoutMillis: 5000,
      databasePoolMax: 10,
      storageTimeoutMillis: 10000,
      rateLimitPerMinute: 1000,
      authFailuresPerMinute: 30,
      retentionDays: 90,
      retention: {
        scheduled: true,
        startDelayMillis: 60000,
        intervalMillis: 3600000,
        batchRows: 1000,
        minDays: 7,
      },
      maxRequestBytes: 1048576,
      maxConcurrentRequests: 64,
      maxConcurrentRequestsPerKey: 16,
      maxConnections: 4096,
      maxConnectionsPerAddress: 256,
      messageDeadlineMillis: 30000,
      minDataRate: 240,
      maxAnonymousRequests: 16,
      maxQueuedRows: 50000,
      maxQueuedBytes: 67108864,
      commitMaxRows: 5000,
      commitMaxDelayMillis: 0,
      shutdownTimeoutMillis: 10000,
      idempotencyWindowSeconds: 86400,
      keyUsageFlushMillis: 60000,
      keyReloadMillis: 5000,
      keyServiceBinding: "audit",
      maxBatchEvents: 5000,
      logLevel: "info",
      envApiKeys: [],
      telemetry: {
        serviceName: "mcp-metrics-service",
        resourceAttributes: {},
        prometheus: { host: "0.0.0.0", port: 9465 },
        otlp: undefined,
        maxValuesPerLabel: 150,
        maxLabelLength: 96,
        semconv: false,
        sdkLogLevel: "info",
      },
    });
  });

  it("should refuse a storage timeout that the one port's request timeout would cut short", () => {
    expect(loadConfig({ METRICS_STORAGE_TIMEOUT_MS: "14500" }).storageTimeoutMillis).toBe(14500);
    // Two waits of 15 s (a batch id's lookup, then the commit) would meet the 30 s stream timer.
    expect(() => loadConfig({ METRICS_STORAGE_TIMEOUT_MS: "15000" })).toThrow(
      /METRICS_STORAGE_TIMEOUT_MS=15000: must be at most 14500, .* 30000 ms request timeout/,
    );
  });

  it("should choose OTLP's protocol and endpoint as the OpenTelemetry specification says", () => {
    const otlp = (env: Record<string, string>) => loadConfig(env).telemetry.otlp;
    expect(otlp({})).toBeUndefined();
    expect(otlp({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })).toMatchObject({
      protocol: "http/protobuf",
      url: "http://c:4318/v1/metrics",
      timeoutMillis: 10_000,
      compression: "none",
      temporality: "cumulative",
    });
    expect(
      otlp({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4317/", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }),
    ).toMatchObject({ protocol: "grpc", url: "http://c:4317/" });
    expect(
      otlp({
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://c:4318/m",
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://ignored:4318",
        OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: "2000",
        OTEL_EXPORTER_OTLP_TIMEOUT: "9000",
      }),
    ).toMatchObject({ url: "http://c:4318/m", timeoutMillis: 2000 });
    expect(otlp({ OTEL_METRICS_EXPORTER: "otlp,prometheus" })).toMatchObject({
      url: "http://localhost:4318/v1/metrics",
    });
    expect(
      otlp({ OTEL_METRICS_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }),
    ).toMatchObject({ url: "http://localhost:4317" });
    expect(loadConfig({ OTEL_METRICS_EXPORTER: "otlp" }).telemetry.prometheus).toBeUndefined();
    expect(() => loadConfig({ OTEL_METRICS_EXPORTER: "console" })).toThrow(
      /OTEL_METRICS_EXPORTER: "console" is not one of otlp, prometheus, none/,
    );
    expect(() =>
      loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: "http", OTEL_OTLP_ENDPOINT: "http://c" }),
    ).toThrow(
      /OTEL_EXPORTER_OTLP_PROTOCOL="http": must be one of grpc, http\/protobuf, http\/json/,
    );
  });

  it("should refuse malformed OTLP headers and endpoints without echoing them (they carry credentials)", () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return "";
      } catch (error) {
        return (error as Error).message;
      }
    };
    const collector = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" };
    const header = problems({
      ...collector,
      OTEL_EXPORTER_OTLP_HEADERS: "x=1,Authorization: Bearer sk-secret",
    });
    expect(header).toContain("OTEL_EXPORTER_OTLP_HEADERS: item 2 is not key=value");
    expect(header).not.toContain("sk-secret");
    const encoded = problems({ ...collector, OTEL_EXPORTER_OTLP_HEADERS: "api-key=sk-se%cret" });
    expect(encoded).toContain("OTEL_EXPORTER_OTLP_HEADERS: item 1 is not URL-encoded");
    expect(encoded).not.toContain("sk-se");
    const endpoint = problems({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318?token=sk-secret" });
    expect(endpoint).toContain("OTEL_EXPORTER_OTLP_ENDPOINT: must be a http:// or https:// URL");
    expect(endpoint).not.toContain("sk-secret");
  });

  it("should refuse a default retention below the floor", () => {
    expect(() => loadConfig({ METRICS_RETENTION_DAYS: "3" })).toThrow(
      /METRICS_RETENTION_DAYS \(3\) is below METRICS_RETENTION_MIN_DAYS \(7\)/,
    );
  });

  it("should take REDIS_URL for the shared rate limit", () => {
    expect(loadConfig({ REDIS_URL: "redis://cache:6379/0" }).redisUrl).toBe("redis://cache:6379/0");
    expect(loadConfig({}).redisUrl).toBeUndefined();
  });

  it("should read METRICS_KEY_SERVICE_BINDING's modes, and its older true and false", () => {
    const mode = (value: string) =>
      loadConfig({ METRICS_KEY_SERVICE_BINDING: value }).keyServiceBinding;
    expect([mode("audit"), mode("ENFORCE"), mode("off"), mode("true"), mode("false")]).toEqual([
      "audit",
      "enforce",
      "off",
      "enforce",
      "off",
    ]);
    expect(() => loadConfig({ METRICS_KEY_SERVICE_BINDING: "strict" })).toThrow(
      /METRICS_KEY_SERVICE_BINDING="strict": must be one of audit, enforce, off/,
    );
  });

  it("should take METRICS_MAX_LABEL_CARDINALITY, and METRICS_MAX_LABEL_VALUES when it is unset", () => {
    const cap = (env: Record<string, string>) => loadConfig(env).telemetry.maxValuesPerLabel;
    expect(cap({ METRICS_MAX_LABEL_CARDINALITY: "3" })).toBe(3);
    expect(cap({ METRICS_MAX_LABEL_VALUES: "7" })).toBe(7);
    expect(cap({ METRICS_MAX_LABEL_CARDINALITY: "3", METRICS_MAX_LABEL_VALUES: "7" })).toBe(3);
  });

  it("should take METRICS_MAX_BATCH_EVENTS within its bounds", () => {
    expect(loadConfig({ METRICS_MAX_BATCH_EVENTS: "1024" }).maxBatchEvents).toBe(1024);
    expect(() => loadConfig({ METRICS_MAX_BATCH_EVENTS: "1000" })).toThrow(
      /METRICS_MAX_BATCH_EVENTS="1000": must be a whole number from 1024 to 1000000/,
    );
  });

  it("should be frozen", () => {
    expect(Object.isFrozen(loadConfig({}))).toBe(true);
  });

  it("should read METRICS_API_KEY_<NAME> variables with the legacy naming rule, and the admin key", () => {
    const config = loadConfig({
      METRICS_API_KEY_CURRENTTIME_SERVER: "k1",
      METRICS_API_KEY_AUTH: " k2 ",
      METRICS_API_KEY: "ignored: what clients read",
      METRICS_API_KEY_EMPTY: "",
      METRICS_ADMIN_API_KEY: " k3 ",
    });
    expect(config.envApiKeys).toEqual([
      { variable: "METRICS_ADMIN_API_KEY", service: "admin", key: "k3", scope: "admin" },
      { variable: "METRICS_API_KEY_AUTH", service: "auth", key: "k2", scope: "ingest" },
      {
        variable: "METRICS_API_KEY_CURRENTTIME_SERVER",
        service: "currenttime-server",
        key: "k1",
        scope: "ingest",
      },
    ]);
  });

  it("should read the standard OpenTelemetry variables, with the legacy OTEL_OTLP_ENDPOINT as an alias", () => {
    // The Python service's variable, read as it read it: http/protobuf to <endpoint>/v1/metrics.
    expect(loadConfig({ OTEL_OTLP_ENDPOINT: "http://legacy:4318" }).telemetry.otlp).toMatchObject({
      protocol: "http/protobuf",
      url: "http://legacy:4318/v1/metrics",
    });
    const config = loadConfig({
      OTEL_OTLP_ENDPOINT: "http://legacy:4317",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://generic:4317",
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://metrics:4317",
      OTEL_EXPORTER_OTLP_HEADERS: "api-key=abc,x-team=mcp%20gateway",
      OTEL_METRIC_EXPORT_INTERVAL: "15000",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod",
      OTEL_PROMETHEUS_ENABLED: "false",
    });
    expect(config.telemetry).toMatchObject({
      otlp: {
        url: "http://metrics:4317",
        headers: { "api-key": "abc", "x-team": "mcp gateway" },
        intervalMillis: 15000,
      },
      resourceAttributes: { "deployment.environment": "prod" },
      prometheus: undefined,
    });
  });

  it("should take service.name from OTEL_RESOURCE_ATTRIBUTES unless OTEL_SERVICE_NAME is set", () => {
    expect(
      loadConfig({ OTEL_RESOURCE_ATTRIBUTES: "service.name=from-attrs" }).telemetry.serviceName,
    ).toBe("from-attrs");
    expect(
      loadConfig({
        OTEL_RESOURCE_ATTRIBUTES: "service.name=from-attrs",
        OTEL_SERVICE_NAME: "explicit",
      }).telemetry.serviceName,
    ).toBe("explicit");
  });

  it("should report every invalid setting at once, naming each variable", () => {
    let error: unknown;
    try {
      loadConfig({
        METRICS_SERVICE_PORT: "http",
        METRICS_RATE_LIMIT: "-1",
        SQLITE_SYNCHRONOUS: "OFF",
        REDIS_URL: "http://cache:6379",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      'METRICS_SERVICE_PORT="http": must be a whole number from 0 to 65535',
      'SQLITE_SYNCHRONOUS="OFF": must be one of FULL, NORMAL',
      'METRICS_RATE_LIMIT="-1": must be a whole number from 0 to 100000000',
      "REDIS_URL: must be a redis:// or rediss:// URL",
    ]);
  });
});
