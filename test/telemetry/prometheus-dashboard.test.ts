// backends: sqlite only: the dashboards' PromQL against a real Prometheus; the exposition it scrapes is exposition.test.ts', on both
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeyAdmin } from "../../src/auth/key-admin.js";
import { loadConfig } from "../../src/config.js";
import { openStorage } from "../../src/storage/drivers.js";
import { GRPC, ingestClient } from "../support/clients.js";
import { postMetrics } from "../support/legacy.js";
import { exposition, freePort, startTestService, type TestService } from "../support/service.js";
import {
  appliesTo,
  DASHBOARD,
  FAMILIES,
  familyOf,
  labelValuesOf,
  panelsOf,
  VARIABLE_LABELS,
  type Variable,
  variableQuery,
} from "./dashboard.js";
import { dashboardTraffic, typedEvents } from "./dashboard-traffic.js";
import { selectorsOf } from "./promql-selectors.js";
import { type RealPrometheus, startPrometheus } from "./real-prometheus.js";

const ROOT = join(import.meta.dirname, "..", "..");

/** The Prometheus job of deploy/prometheus/prometheus.yml, as this test's Prometheus names it too. */
const JOB = "mcp-metrics-service";

/**
 * Grafana's own variables, as this test stands them in: a rate over the last
 * minute (a scrape a second), totals over the last hour (the dashboard's
 * default time range, longer than the test).
 */
const GRAFANA_VARIABLES: Readonly<Record<string, string>> = {
  __rate_interval: "1m",
  __interval: "1s",
  __range: "1h",
};

/** A query with its variables replaced by `values` and Grafana's own. */
function substitute(expr: string, values: Readonly<Record<string, string>>): string {
  return expr.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_m, name: string) => {
    const value = GRAFANA_VARIABLES[name] ?? values[name];
    if (value === undefined) throw new Error(`no value for $${name} in ${expr}`);
    return value;
  });
}

/** Every panel's queries, with their panel. */
const QUERIES = panelsOf(DASHBOARD).flatMap((panel) =>
  (panel.targets ?? []).map((target) => ({ panel: panel.title, ...target })),
);

/** Contract §5: the Python dashboard's PromQL, verbatim. */
const CONTRACT_QUERIES = [
  'sum(rate(mcp_tool_executions_total{method="initialize", success="True"}[1m]))',
  'sum(rate(mcp_tool_executions_total{method="tools/list", success="True"}[1m]))',
  'sum(rate(mcp_tool_executions_total{method="tools/call", success="True"}[1m]))',
  'sum(rate(mcp_auth_requests_total{success="True"}[1m]))',
  'sum(rate(mcp_auth_requests_total{success="True"}[5m]))',
  'sum(rate(mcp_auth_requests_total{success="False"}[5m]))',
  'sum(mcp_auth_requests_total{success="True"}) / sum(mcp_auth_requests_total) * 100',
  "count(count by (server_name)(mcp_tool_executions_total))",
  "sum(increase(mcp_tool_executions_total[1h]))",
  'topk(1, sum(mcp_tool_executions_total{method="tools/call"}) by (tool_name))',
  "histogram_quantile(0.95, rate(mcp_auth_request_duration_seconds_bucket[5m]))",
  "histogram_quantile(0.99, rate(mcp_auth_request_duration_seconds_bucket[5m]))",
  "histogram_quantile(0.95, rate(mcp_tool_execution_duration_seconds_bucket[5m]))",
  "histogram_quantile(0.99, rate(mcp_tool_execution_duration_seconds_bucket[5m]))",
  "sum(rate(mcp_tool_executions_total[5m])) by (method)",
  'sum(rate(mcp_auth_requests_total{success="False"}[5m])) / sum(rate(mcp_auth_requests_total[5m])) * 100',
  'sum(rate(mcp_tool_executions_total{success="False"}[5m])) / sum(rate(mcp_tool_executions_total[5m])) * 100',
  "avg(rate(mcp_auth_request_duration_seconds_sum[5m])) / avg(rate(mcp_auth_request_duration_seconds_count[5m]))",
  "avg(rate(mcp_tool_execution_duration_seconds_sum[5m])) / avg(rate(mcp_tool_execution_duration_seconds_count[5m]))",
  "sum(mcp_tool_executions_total) by (server_name)",
  "sum(increase(mcp_tool_executions_total[1h])) by (server_name)",
  "count(count by (server_name, tool_name)(mcp_tool_executions_total)) by (server_name)",
  'sum(mcp_tool_executions_total{method="tools/call"}) by (tool_name)',
  'sum(increase(mcp_tool_executions_total{method="tools/call"}[1h])) by (tool_name)',
  'topk(10, sum(mcp_tool_executions_total{method!="tools/call"}) by (method))',
  'topk(10, sum(mcp_tool_executions_total{method="tools/call"}) by (tool_name))',
  "topk(10, sum(mcp_tool_executions_total) by (client_name))",
  'sum(mcp_tool_executions_total{method="initialize"}) by (client_name)',
  'sum(mcp_tool_executions_total{method="tools/list"}) by (client_name)',
  'sum(mcp_tool_executions_total{method="tools/call"}) by (client_name)',
  "sum(mcp_auth_requests_total) by (method)",
  "topk(15, sum(rate(mcp_tool_executions_total[5m])) by (client_name))",
];

/**
 * The same queries as the newest upstream dashboards write them (docs/legacy-contract.md §8):
 * booleans in lowercase, as this service exports them (issue 20).
 */
const LOWERCASE_QUERIES = CONTRACT_QUERIES.map((q) =>
  q.replace('success="True"', 'success="true"').replace('success="False"', 'success="false"'),
);

/** Contract §5 p18: histogram_quantile over a counter, which has no `le`: empty whatever the exporter does. */
const BROKEN_BY_DESIGN = [0.5, 0.95, 0.99].map(
  (q) => `histogram_quantile(${q.toFixed(2)}, rate(mcp_tool_executions_total[5m]))`,
);

/**
 * A key of `service` allowed `perMinute` requests a minute, made as
 * `keys create --rate-limit` makes it and loaded into the running service.
 */
async function keyWithRateLimit(
  svc: TestService,
  service: string,
  perMinute: number,
): Promise<string> {
  const storage = await openStorage(loadConfig({ ...svc.storageEnv, LOG_LEVEL: "silent" }));
  let key: string;
  try {
    ({ key } = await createKeyAdmin(storage.keys).create({
      service,
      scope: "ingest",
      rateLimit: perMinute,
    }));
  } finally {
    await storage.close();
  }
  await svc.running.registry.reload();
  return key;
}

describe("the shipped dashboard and the contract's PromQL against a real Prometheus", () => {
  let svc: TestService;
  let prometheus: RealPrometheus;
  const query = (promql: string) => prometheus.query(promql);
  const scalar = (promql: string) => prometheus.scalar(promql);
  const until = async (promql: string, expected: number) => {
    if (!(await prometheus.eventually(`(${promql}) == ${expected}`))) {
      throw new Error(`${promql} never reached ${expected}`);
    }
  };

  /** The values a query variable lists, given the values of the variables before it. */
  const listed = async (variable: Variable, values: Readonly<Record<string, string>>) => {
    const read = labelValuesOf(variableQuery(variable));
    if (read === undefined) throw new Error(`$${variable.name} is no label_values() query`);
    const result = await query(`group by (${read.label}) (${substitute(read.selector, values)})`);
    return result
      .map((r) => r.metric[read.label] ?? "")
      .filter((v) => v !== "")
      .sort();
  };
  /**
   * The values Grafana gives the variables when the dashboard opens: All
   * (its allValue) where there is an All, the first listed value elsewhere;
   * `picked` where given (a value without regex characters: Grafana would
   * escape them).
   */
  const resolve = async (picked: Readonly<Record<string, string>> = {}) => {
    const values: Record<string, string> = {};
    for (const variable of DASHBOARD.templating.list) {
      if (variable.type !== "query") continue;
      values[variable.name] =
        picked[variable.name] ??
        (variable.includeAll
          ? (variable.allValue ?? ".*")
          : ((await listed(variable, values))[0] ?? ""));
    }
    return values;
  };
  const variable = (name: string) => {
    const found = DASHBOARD.templating.list.find((v) => v.name === name);
    if (found === undefined) throw new Error(`no variable $${name}`);
    return found;
  };

  beforeAll(async () => {
    const exporter = await exposition();
    svc = await startTestService({
      ...exporter.env,
      // OTLP to a port nobody listens on: the export-health panel has failures to show.
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await freePort()}`,
      OTEL_METRIC_EXPORT_INTERVAL: "500",
    });
    prometheus = await startPrometheus({
      targetPort: exporter.port,
      job: JOB,
      ruleFiles: [join(ROOT, "deploy/prometheus/alerts.yml")],
    });
    const gateway = await svc.keyFor("gateway");
    // Phase 1 over the legacy JSON API, phase 2 over gRPC, with scrapes between, so that rates are not zero.
    const json = dashboardTraffic();
    for (let i = 0; i < json.length; i += 50) {
      const metrics = json.slice(i, i + 50);
      const res = await postMetrics(svc.url, { service: "gateway", metrics }, { key: gateway });
      expect(res.json.accepted).toBe(metrics.length);
    }
    await until("sum(mcp_tool_executions_total)", 60);

    // A key allowed one request a minute: its first batch passes, the next ones are rate-limited.
    const limited = await keyWithRateLimit(svc, "limited-emitter", 1);
    const probe = { type: "custom", value: 1, dimensions: { metric_name: "probe" } };
    const limitedBatch = { service: "limited-emitter", metrics: [probe] };
    expect((await postMetrics(svc.url, limitedBatch, { key: limited })).status).toBe(200);
    /**
     * One request over the rate limit and one batch rejected, in each phase:
     * a counter's first value is no increase (Prometheus has nothing before
     * it), the second is.
     */
    const refusals = async () => {
      expect((await postMetrics(svc.url, limitedBatch, { key: limited })).status).toBe(429);
      const invalid = { type: "auth_request", value: 1, duration_ms: -5, dimensions: {} };
      const rejected = await postMetrics(
        svc.url,
        { service: "gateway", metrics: [invalid] },
        { key: gateway },
      );
      expect(rejected.json.accepted ?? 0).toBe(0);
    };
    await refusals();
    await until('sum(mcp_metrics_refused_requests_total{reason="rate_limited"})', 1);
    await new Promise((r) => setTimeout(r, 1500));

    // The same events through the typed API: type and fields carry over via the legacy keys.
    const grpc = ingestClient(GRPC, svc.url, gateway);
    const events = typedEvents(dashboardTraffic());
    for (let i = 0; i < events.length; i += 50) {
      const slice = events.slice(i, i + 50);
      expect((await grpc.ingest({ service: "gateway", events: slice })).accepted).toBe(
        slice.length,
      );
    }
    await refusals();
    await until("sum(mcp_tool_executions_total)", 120);
    await until('sum(mcp_metrics_refused_requests_total{reason="rate_limited"})', 2);
    // Waited for, not required: a missing series shows as a panel without data below.
    await prometheus.eventually("sum(mcp_metrics_export_failures_total) > 0");
  }, 60_000);

  afterAll(async () => {
    prometheus?.close();
    await svc?.close();
  });

  it("should return data for every query of the shipped dashboard, its variables as the dashboard opens (All)", async () => {
    const values = await resolve();
    expect(values.job).toBe(JOB);
    expect(QUERIES.length).toBeGreaterThanOrEqual(40);
    const empty: string[] = [];
    for (const { panel, refId, expr } of QUERIES) {
      const promql = substitute(expr, values);
      if ((await query(promql)).length === 0) empty.push(`${panel} (${refId}): ${promql}`);
    }
    expect(empty).toEqual([]);
  });

  it("should list values for every variable, each list following the variables before it", async () => {
    const values = await resolve();
    for (const v of DASHBOARD.templating.list.filter((v) => v.type === "query")) {
      expect(await listed(v, values), v.name).not.toEqual([]);
    }
    expect(await listed(variable("service"), values)).toEqual(["gateway", "limited-emitter"]);
    expect(await listed(variable("auth_server"), values)).toEqual(["currenttime", "github"]);
    expect(await listed(variable("tool_server"), values)).toEqual(["currenttime", "weather"]);
    expect(await listed(variable("client"), { ...values, tool_server: "weather" })).toEqual([
      "claude-desktop",
      "cursor",
    ]);
    expect(await listed(variable("method"), { ...values, client: "cursor" })).toEqual([
      "initialize",
      "tools/call",
      "tools/list",
    ]);
  });

  it("should export every family the dashboard reads, each variable's label on the families the variables table names and no other", async () => {
    const families = async (selector: string) =>
      new Set(
        (await query(`group by (__name__) (${selector})`))
          .map((r) => familyOf(r.metric.__name__ ?? ""))
          .filter((f): f is string => f !== undefined),
      );
    const exported = await families(`{job="${JOB}"}`);
    expect(Object.keys(FAMILIES).filter((f) => !exported.has(f))).toEqual([]);
    for (const entry of VARIABLE_LABELS) {
      if (entry.families === "all") continue;
      const carrying = await families(`{job="${JOB}", ${entry.label}!=""}`);
      const listed = entry.families;
      expect(
        listed.filter((f) => !carrying.has(f)),
        `$${entry.variable}: not carrying`,
      ).toEqual([]);
      expect(
        [...carrying].filter((f) => !listed.includes(f) && !(f in (entry.otherMeaning ?? {}))),
        `$${entry.variable}: carrying, not in the table`,
      ).toEqual([]);
    }
  });

  it("should leave the panels a variable does not apply to as they were when one value is picked, and filter the others", async () => {
    const all = await resolve();
    const before = new Map<string, number>();
    for (const q of QUERIES) before.set(q.expr, (await query(substitute(q.expr, all))).length);
    for (const entry of VARIABLE_LABELS) {
      if (entry.variable === "job") continue; // one job, picked already
      const value = (await listed(variable(entry.variable), all))[0] as string;
      const picked = await resolve({ [entry.variable]: value });
      for (const q of QUERIES) {
        const result = await query(substitute(q.expr, picked));
        const where = `${q.panel} (${q.refId}) with $${entry.variable}=${value}`;
        const applies = selectorsOf(q.expr).some((s) => appliesTo(entry, familyOf(s.name)));
        if (!applies) {
          expect(result.length, where).toBe(before.get(q.expr));
          continue;
        }
        for (const r of result) {
          if (r.metric[entry.label] !== undefined) expect(r.metric[entry.label], where).toBe(value);
        }
      }
    }
    // The example of issue 22: one $server for both emptied the tool panels or the auth panels.
    const topClients = QUERIES.find((q) => q.panel.startsWith("Top clients"))?.expr ?? "";
    const cursor = await query(substitute(topClients, await resolve({ client: "cursor" })));
    expect(cursor.map((r) => r.metric.client_name)).toEqual(["cursor"]);
  });

  it("should return data for every query of the contract's dashboard, its booleans in lowercase (p18 stays empty: it is broken by design)", async () => {
    for (const promql of LOWERCASE_QUERIES) {
      expect((await query(promql)).length, promql).toBeGreaterThan(0);
    }
    for (const promql of BROKEN_BY_DESIGN) expect(await query(promql), promql).toEqual([]);
  });

  it("should export no capitalised boolean any more: the Python spelling finds nothing", async () => {
    for (const promql of CONTRACT_QUERIES.filter((q) => /success="(True|False)"/.test(q))) {
      expect(await query(promql), promql).toEqual([]);
    }
    expect(
      await query('count by (success) (mcp_tool_executions_total{success!~"true|false"})'),
    ).toEqual([]);
  });

  it("should count exactly what was sent and put the P95s in the right buckets", async () => {
    expect(await scalar("sum(mcp_auth_requests_total)")).toBe(80);
    expect(
      await scalar(
        'sum(mcp_auth_requests_total{success="true"}) / sum(mcp_auth_requests_total) * 100',
      ),
    ).toBeCloseTo(85, 6);
    const byMethod = Object.fromEntries(
      (await query("sum by (method) (mcp_tool_executions_total)")).map((r) => [
        r.metric.method,
        Number(r.value[1]),
      ]),
    );
    expect(byMethod).toEqual({ initialize: 20, "tools/list": 40, "tools/call": 60 });
    expect(await scalar('sum(mcp_tool_executions_total{success="false"})')).toBe(12);
    expect(
      await scalar('sum(mcp_tool_executions_total{method="tools/call", tool_name="now"})'),
    ).toBe(20);
    const toolP95 = await scalar(
      "histogram_quantile(0.95, sum by (le) (rate(mcp_tool_execution_duration_seconds_bucket[5m])))",
    );
    expect(toolP95).toBeGreaterThan(0.1);
    expect(toolP95).toBeLessThanOrEqual(0.25);
    const authP95 = await scalar(
      "histogram_quantile(0.95, sum by (le) (rate(mcp_auth_request_duration_seconds_bucket[5m])))",
    );
    expect(authP95).toBeGreaterThan(0.05);
    expect(authP95).toBeLessThanOrEqual(0.1);
    expect(
      await scalar('sum(mcp_protocol_latency_seconds_count{flow_step="tools_list_to_tools_call"})'),
    ).toBe(2);
    expect(await scalar("sum(mcp_tool_discovery_total)")).toBe(20);
    expect(await scalar('sum(mcp_tool_discovery_total{results_count="0"})')).toBe(6);
    expect(await scalar("sum(mcp_tool_discovery_embedding_duration_seconds_count)")).toBe(20);
    expect(await scalar("sum(mcp_tool_discovery_search_duration_seconds_count)")).toBe(20);
    expect(await scalar('sum(mcp_health_checks_total{healthy="false"})')).toBe(4);
    expect(await scalar('sum(mcp_registry_operations_total{success="false"})')).toBe(2);
    expect(await scalar('sum(mcp_custom_events_total{service="gateway"})')).toBe(8);
    expect(await scalar('sum(mcp_metrics_rate_limited_total{service="limited-emitter"})')).toBe(2);
    // The refusal panels: the second refusal of each kind is an increase.
    const refused = QUERIES.find((q) => q.panel.startsWith("Refused requests in the time range"));
    const totals = await query(substitute(refused?.expr ?? "", await resolve()));
    expect(
      Object.fromEntries(
        totals.map((r) => [`${r.metric.service} ${r.metric.reason}`, Number(r.value[1]) > 0]),
      ),
    ).toEqual({ "gateway invalid_batch": true, "limited-emitter rate_limited": true });
    // The zero-result panel: 3 searches in 10 found nothing, in each phase.
    const zero = QUERIES.find((q) => q.panel === "Zero-result rate")?.expr ?? "";
    expect(await scalar(substitute(zero, await resolve()))).toBeCloseTo(30, -1);
  });

  it("should load the shipped alert rules", async () => {
    const res = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string }[] }[] };
    };
    expect(res.data.groups.flatMap((g) => g.rules.map((r) => r.name)).sort()).toEqual([
      "AuthFailureSpike",
      "DatabaseGrowth",
      "EventsRejected",
      "MetricsServiceDown",
      "RateLimitExhaustion",
      "RequestsRefused",
      "StorageErrors",
      "UnauthenticatedRequests",
    ]);
  });
});
