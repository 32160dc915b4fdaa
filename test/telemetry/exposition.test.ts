import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startService } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { GRPC, ingestClient } from "../support/clients.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import {
  countIn,
  exposition,
  freePort,
  onPostgres,
  samples,
  scrape,
  startTestService,
  type TestService,
  tempDir,
} from "../support/service.js";

describe("the Prometheus exposition", () => {
  let svc: TestService;
  let port: number;
  beforeAll(async () => {
    const prometheus = await exposition();
    port = prometheus.port;
    svc = await startTestService({
      ...prometheus.env,
      METRICS_MAX_LABEL_VALUES: "50",
    });
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should expose the contract's names and labels, counting events and recording seconds", async () => {
    await postMetrics(
      svc.url,
      {
        service: "expo",
        metrics: [
          legacyMetric({
            value: 7,
            duration_ms: 250,
            dimensions: { success: true, method: "jwt", server: "gh" },
          }),
          legacyMetric({
            duration_ms: 0,
            dimensions: { success: false, method: "jwt", server: "gh" },
          }),
          {
            type: "tool_execution",
            value: 1,
            duration_ms: 40,
            dimensions: {
              method: "tools/call",
              success: true,
              tool_name: "now",
              server_name: "time",
              client_name: "claude",
            },
          },
          {
            type: "protocol_latency",
            value: 0.75,
            dimensions: { flow_step: "initialize_to_tools_call" },
          },
          { type: "custom", value: 3, dimensions: { metric_name: "x" } },
        ],
      },
      { key: await svc.keyFor("expo") },
    );
    const text = await scrape(port);
    expect(samples(text, "mcp_auth_requests_total").sort()).toEqual([
      'mcp_auth_requests_total{success="false",method="jwt",server="gh",target_kind="_unset",service="expo",metric_type="auth_request"} 1',
      'mcp_auth_requests_total{success="true",method="jwt",server="gh",target_kind="_unset",service="expo",metric_type="auth_request"} 1',
    ]);
    expect(samples(text, "mcp_tool_executions_total")).toEqual([
      'mcp_tool_executions_total{success="true",method="tools/call",server_name="time",server_path="_unset",tool_name="now",client_name="claude",client_version="_unset",service="expo",metric_type="tool_execution"} 1',
    ]);
    // Zero durations count (docs/legacy-contract.md W9), in seconds, with second-sized buckets.
    expect(text).toContain(
      'mcp_auth_request_duration_seconds_count{success="false",method="jwt",server="gh",target_kind="_unset",service="expo",metric_type="auth_request"} 1',
    );
    expect(text).toContain(
      'mcp_auth_request_duration_seconds_bucket{success="true",method="jwt",server="gh",target_kind="_unset",service="expo",metric_type="auth_request",le="0.25"} 1',
    );
    expect(text).toContain(
      'mcp_auth_request_duration_seconds_bucket{success="true",method="jwt",server="gh",target_kind="_unset",service="expo",metric_type="auth_request",le="0.1"} 0',
    );
    expect(text).toContain(
      'mcp_protocol_latency_seconds_sum{flow_step="initialize_to_tools_call",server_name="_unset",client_name="_unset",service="expo",metric_type="protocol_latency"} 0.75',
    );
    expect(text).toContain('mcp_metrics_events_total{outcome="accepted"}');
    expect(text).toMatch(/mcp_metrics_requests_total\{ingress="json",code="ok"\} \d+/);
    // A service.instance.id of its own per process (a UUID), so that replicas never collide.
    expect(text).toMatch(
      /^target_info\{service_instance_id="[0-9a-f-]{36}",service_name="mcp-metrics-service"\} 1$/m,
    );
    // The build, and every counter whose labels are known ahead, from start-up.
    expect(text).toMatch(
      /^mcp_metrics_build_info\{version="\d+\.\d+\.\d+",commit="[^"]+",nodejs_version="v\d+\.\d+\.\d+"\} 1$/m,
    );
    expect(text).toContain('mcp_metrics_storage_errors_total{failure="unavailable"} 0');
    // Process and Node.js runtime metrics, named with their units as Prometheus asks
    // (the event loop's delay is first reported once it has been sampled a while).
    for (const family of [
      "process_cpu_time_seconds_total",
      "process_memory_usage",
      "nodejs_eventloop_delay_p99_seconds",
      "nodejs_eventloop_utilization_ratio",
      "v8js_memory_heap_used_bytes",
    ]) {
      const line = new RegExp(`^${family}(\\{[^}]*\\})? [0-9.e+-]+$`, "m");
      await expect.poll(async () => line.test(await scrape(port)), { timeout: 5000 }).toBe(true);
    }
    expect(text).toContain('mcp_metrics_requests_total{ingress="grpc-web",code="unavailable"} 0');
    // Counted, one event, whatever its value.
    expect(text).toContain(
      'mcp_custom_events_total{metric_name="x",service="expo",metric_type="custom"} 1',
    );
  });

  it("should count every event type: registry operations, custom events and a search's two phases too", async () => {
    const service = "expo-every-type";
    const res = await postMetrics(
      svc.url,
      {
        service,
        metrics: [
          {
            type: "registry_operation",
            value: 1,
            duration_ms: 30,
            dimensions: { operation: "register", resource_type: "server", success: true },
          },
          { type: "custom", value: -4.5, dimensions: { metric_name: "cache_misses" } },
          {
            type: "tool_discovery",
            value: 1,
            duration_ms: 120,
            dimensions: {
              query: "weather",
              results_count: 0,
              embedding_time_ms: 40,
              faiss_search_time_ms: "8",
            },
          },
        ],
      },
      { key: await svc.keyFor(service) },
    );
    expect(res.json.accepted).toBe(3);
    const text = await scrape(port);
    const line = (name: string) =>
      text.split("\n").filter((l) => l.startsWith(name) && l.includes(service));
    expect(line("mcp_registry_operations_total")).toEqual([
      `mcp_registry_operations_total{operation="register",resource_type="server",success="true",service="${service}",metric_type="registry_operation"} 1`,
    ]);
    expect(line("mcp_registry_operation_duration_seconds_sum")).toEqual([
      `mcp_registry_operation_duration_seconds_sum{operation="register",resource_type="server",success="true",service="${service}",metric_type="registry_operation"} 0.03`,
    ]);
    // Counted, whatever its value.
    expect(line("mcp_custom_events_total")).toEqual([
      `mcp_custom_events_total{metric_name="cache_misses",service="${service}",metric_type="custom"} 1`,
    ]);
    const labels = `results_count="0",top_k_services="_unset",top_n_tools="_unset",service="${service}",metric_type="tool_discovery"`;
    expect(line("mcp_tool_discovery_embedding_duration_seconds_sum")).toEqual([
      `mcp_tool_discovery_embedding_duration_seconds_sum{${labels}} 0.04`,
    ]);
    expect(line("mcp_tool_discovery_search_duration_seconds_sum")).toEqual([
      `mcp_tool_discovery_search_duration_seconds_sum{${labels}} 0.008`,
    ]);
  });

  it("should record nothing for a rejected batch", async () => {
    const res = await postMetrics(
      svc.url,
      { service: "expo-rejected", metrics: [legacyMetric(), legacyMetric({ duration_ms: -1 })] },
      { key: await svc.keyFor("expo-rejected") },
    );
    expect(res.json.accepted).toBe(0);
    const text = await scrape(port);
    // Only the refusal itself is counted, by the key's service.
    expect(text.split("\n").filter((l) => l.includes('service="expo-rejected"'))).toEqual([
      'mcp_metrics_refused_requests_total{service="expo-rejected",reason="invalid_batch"} 1',
    ]);
    expect(text).toMatch(/mcp_metrics_events_total\{outcome="rejected",reason="invalid"\} [1-9]/);
  });

  it("should count RPCs by ingress and code, rate-limit refusals included", async () => {
    await ingestClient(GRPC, svc.url, await svc.keyFor("expo-grpc")).ingest({
      service: "expo-grpc",
      events: [{ kind: { case: "authRequest", value: { success: true } } }],
    });
    await ingestClient(GRPC, svc.url, "bad-key")
      .ingest({ service: "x", events: [] })
      .catch(() => {});
    const text = await scrape(port);
    expect(text).toMatch(/mcp_metrics_requests_total\{ingress="grpc",code="ok"\} [1-9]/);
    expect(text).toMatch(
      /mcp_metrics_requests_total\{ingress="grpc",code="unauthenticated"\} [1-9]/,
    );
    expect(text).toMatch(/mcp_metrics_commit_rows_count [1-9]/);
    // The SQLite file's size; PostgreSQL reports its own (docs/replicas.md).
    if (onPostgres) expect(text).not.toContain("mcp_metrics_database_bytes");
    else expect(text).toMatch(/mcp_metrics_database_bytes \d+/);
  });

  it("should stay bounded under 10,000 distinct user hashes, queries and tool names, while the database keeps every value", async () => {
    for (let batch = 0; batch < 100; batch++) {
      const metrics = Array.from({ length: 100 }, (_, i) => {
        const n = batch * 100 + i;
        return i % 2
          ? {
              type: "tool_execution",
              value: 1,
              duration_ms: 1,
              dimensions: {
                tool_name: `tool-${n}`,
                user_hash: `user-${n}`,
                method: "tools/call",
                success: true,
              },
            }
          : {
              type: "tool_discovery",
              value: 1,
              duration_ms: 1,
              dimensions: { query: `query number ${n}`, results_count: n % 5 },
            };
      });
      const res = await postMetrics(
        svc.url,
        { service: "cardinality", metrics },
        { key: await svc.keyFor("cardinality") },
      );
      expect(res.json.accepted).toBe(100);
    }
    const text = await scrape(port);
    // One series per counter sample and per histogram (its _count line).
    const series = text
      .split("\n")
      .filter((l) => /^mcp_\w+(_total|_count)\{/.test(l) && l.includes('service="cardinality"'));
    console.log(`series for 10,000 distinct values: ${series.length}`);
    // tool_name: 50 values + _other, on the counter and the histogram; results_count: 5 values, likewise.
    expect(series.length).toBeLessThanOrEqual(2 * 51 + 2 * 5);
    expect(text).toContain('tool_name="_other"');
    expect(text).not.toContain("user-");
    expect(text).not.toContain("query number");
    expect(text).toMatch(/mcp_metrics_label_overflow_total\{label="tool_name"\} [1-9]/);
    expect(await countIn(svc.sql, "tool_metrics", "service = 'cardinality'")).toBe(5000);
    expect(
      await countIn(svc.sql, "tool_metrics", "tool_name = 'tool-9999' AND user_hash = 'user-9999'"),
    ).toBe(1);
    expect(await countIn(svc.sql, "discovery_metrics", "query = 'query number 9998'")).toBe(1);
  });

  it("should count rate-limit refusals per service", async () => {
    const key = "tiny-key-0123456789";
    const limited = await exposition();
    const limitedPort = limited.port;
    const tiny = await startTestService({
      METRICS_API_KEY_TINY: key,
      METRICS_RATE_LIMIT: "1",
      ...limited.env,
    });
    try {
      await postMetrics(tiny.url, { service: "tiny", metrics: [legacyMetric()] }, { key });
      expect(
        (await postMetrics(tiny.url, { service: "tiny", metrics: [legacyMetric()] }, { key }))
          .status,
      ).toBe(429);
      await ingestClient(GRPC, tiny.url, key)
        .ingest({ service: "tiny", events: [] })
        .catch(() => {});
      expect(await scrape(limitedPort)).toContain(
        'mcp_metrics_rate_limited_total{service="tiny"} 2',
      );
    } finally {
      await tiny.close();
    }
  });

  it("should refuse to start, naming the variable, when the Prometheus port is taken", async () => {
    const config = loadConfig({
      METRICS_SERVICE_HOST: "127.0.0.1",
      METRICS_SERVICE_PORT: "0",
      SQLITE_DB_PATH: `${tempDir()}/m.db`,
      OTEL_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_PROMETHEUS_PORT: String(port),
      METRICS_API_KEY_X: "x-key-0123456789",
    });
    await expect(startService(config, createLogger("silent"))).rejects.toThrow(
      /OTEL_PROMETHEUS_PORT.*EADDRINUSE/,
    );
  });

  it("should serve the exposition only on the interface OTEL_PROMETHEUS_HOST names", async () => {
    const promPort = await freePort();
    const bound = await startTestService({
      OTEL_PROMETHEUS_ENABLED: "true",
      OTEL_PROMETHEUS_HOST: "127.0.0.2",
      OTEL_PROMETHEUS_PORT: String(promPort),
    });
    try {
      const res = await fetch(`http://127.0.0.2:${promPort}/metrics`);
      expect(res.status).toBe(200);
      await expect(fetch(`http://127.0.0.1:${promPort}/metrics`)).rejects.toThrow();
    } finally {
      await bound.close();
    }
  });
});
