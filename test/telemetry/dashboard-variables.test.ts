// backends: sqlite only: the shipped dashboard's JSON; no service
import { describe, expect, it } from "vitest";
import {
  DASHBOARD,
  DATASOURCE_UID,
  type Dashboard,
  dashboardViolations,
  type Panel,
} from "./dashboard.js";
import { selectorsOf } from "./promql-selectors.js";

/*
 * Issue 22, part 4: the dashboard read as JSON, every panel and every query
 * checked against the variables table (test/telemetry/dashboard.ts). Its
 * queries are run against a real Prometheus in prometheus-dashboard.test.ts.
 */

const DS = { type: "prometheus", uid: DATASOURCE_UID };

/** The shipped dashboard with one more panel of one query. */
function withPanel(type: string, expr: string, unit: string | null = "reqps"): Dashboard {
  const panel: Panel = {
    id: 999,
    type,
    title: "added",
    datasource: DS,
    targets: [{ refId: "A", expr }],
    fieldConfig: unit === null ? { defaults: {} } : { defaults: { unit } },
  };
  return { ...DASHBOARD, panels: [...DASHBOARD.panels, panel] };
}

/** The violations of the added panel only. */
const violationsOf = (dashboard: Dashboard) =>
  dashboardViolations(dashboard).filter((v) => v.startsWith('panel "added"'));

const BASE = 'job="$job", instance=~"$instance"';
const TOOLS = `${BASE}, service=~"$service", server_name=~"$tool_server", client_name=~"$client"`;

describe("selectorsOf", () => {
  it("should find a histogram's selector, its matchers, its range and the functions around it", () => {
    expect(
      selectorsOf(
        'histogram_quantile(0.95, sum by (le) (rate(x_bucket{a="1", b=~"$b", c!~"x\\"y"}[$__rate_interval])))',
      ),
    ).toEqual([
      {
        name: "x_bucket",
        matchers: [
          { label: "a", op: "=", value: "1" },
          { label: "b", op: "=~", value: "$b" },
          { label: "c", op: "!~", value: 'x"y' },
        ],
        range: "$__rate_interval",
        enclosing: ["rate", "sum", "histogram_quantile"],
      },
    ]);
  });

  it("should read aggregations with trailing by clauses, binary operators and string arguments", () => {
    const found = selectorsOf(
      '(sum(rate(a_total{s="false"}[1m])) or sum(rate(a_total[1m])) * 0) / on () group_left sum(increase(b_total[1h])) by (x) * 100 + topk(5, label_replace(c, "ok", "$1", "s", "(.*)"))',
    );
    expect(found.map((s) => [s.name, s.range, s.enclosing.join(" < ")])).toEqual([
      ["a_total", "1m", "rate < sum"],
      ["a_total", "1m", "rate < sum"],
      ["b_total", "1h", "increase < sum"],
      ["c", undefined, "label_replace < topk"],
    ]);
  });

  it("should name a selector by its __name__ matcher, and refuse what it cannot read", () => {
    expect(selectorsOf('{__name__=~"mcp_.+", job="$job"}')[0]?.name).toBe("mcp_.+");
    expect(() => selectorsOf("sum(rate(x[5m])")).toThrow(/unclosed/);
    expect(() => selectorsOf('x{a="1" b}')).toThrow(/matchers/);
  });
});

describe("the shipped dashboard's variables and panels", () => {
  it("should have one variable per label an operator filters on, auth and tool servers apart", () => {
    expect(DASHBOARD.templating.list.map((v) => v.name)).toEqual([
      "datasource",
      "job",
      "instance",
      "service",
      "auth_server",
      "tool_server",
      "client",
      "method",
    ]);
  });

  it("should honour every variable in every query it applies to, read counters through rate or increase, and give every panel one unit", () => {
    expect(dashboardViolations(DASHBOARD)).toEqual([]);
  });

  it("should have a panel for discovery, health checks, registry operations, refusals, storage, scrape and export", () => {
    const titles = DASHBOARD.panels.map((p) => p.title).join("\n");
    for (const wanted of [
      /Zero-result rate/,
      /Embedding and vector search time/,
      /Health checks per second/,
      /Registry operations per second/,
      /Rate-limited requests per second by service/,
      /Refused requests per second by service/,
      /Storage errors/,
      /Commit latency/,
      /Queue depth/,
      /Scrape target up/,
      /Scrape duration/,
      /Export failures/,
    ]) {
      expect(titles).toMatch(wanted);
    }
  });
});

describe("the dashboard check", () => {
  // Each flaw issue 22 found in the old dashboard, added back as one panel.
  const flaws: [string, Dashboard, string[]][] = [
    [
      "an auth panel filtered on the auth server only",
      withPanel(
        "timeseries",
        'sum(rate(mcp_auth_requests_total{job="$job", instance=~"$instance", server=~"$auth_server"}[5m]))',
      ),
      [
        'panel "added": query A: mcp_auth_requests_total carries service, but is not filtered on $service',
      ],
    ],
    [
      "a panel that hard-codes tools/call",
      withPanel(
        "timeseries",
        `sum(rate(mcp_tool_executions_total{${TOOLS}, method="tools/call"}[5m]))`,
      ),
      [
        'panel "added": query A: mcp_tool_executions_total carries method, but is not filtered on $method',
      ],
    ],
    [
      "a panel that ignores every variable",
      withPanel("timeseries", "sum by (ingress, code) (rate(mcp_metrics_requests_total[5m]))"),
      [
        'panel "added": query A: mcp_metrics_requests_total carries job, but is not filtered on $job',
        'panel "added": query A: mcp_metrics_requests_total carries instance, but is not filtered on $instance',
      ],
    ],
    [
      "a tool panel filtered by the auth servers' variable",
      withPanel(
        "timeseries",
        `sum(rate(mcp_protocol_latency_seconds_count{${BASE}, service=~"$service", server_name=~"$auth_server", client_name=~"$client"}[5m]))`,
      ),
      [
        'panel "added": query A: mcp_protocol_latency_seconds_count carries server_name, but is not filtered on $tool_server',
      ],
    ],
    [
      "a variable that filters beside a hard-coded value",
      withPanel(
        "timeseries",
        `sum(rate(mcp_tool_executions_total{${TOOLS}, method=~"$method", method!="ping"}[5m]))`,
      ),
      [
        'panel "added": query A: mcp_tool_executions_total filters method on $method and on something else too',
      ],
    ],
    [
      "a pie chart of a raw counter, which resets on restart",
      withPanel(
        "piechart",
        `sum by (method) (mcp_auth_requests_total{${BASE}, service=~"$service", server=~"$auth_server"})`,
        "short",
      ),
      [
        'panel "added": query A: reads the counter mcp_auth_requests_total raw (it resets when the service restarts): use rate() or increase()',
      ],
    ],
    [
      "a bar gauge totalled over a fixed window instead of the time range",
      withPanel(
        "bargauge",
        `topk(10, sum by (client_name) (increase(mcp_tool_executions_total{${TOOLS}, method=~"$method"}[1h])))`,
        "short",
      ),
      [
        'panel "added": query A: shows a total of mcp_tool_executions_total over [1h]: a bargauge panel totals the time range, [$__range]',
      ],
    ],
    [
      "a rate of a gauge",
      withPanel("timeseries", `rate(mcp_metrics_queue_rows{${BASE}}[5m])`),
      ['panel "added": query A: reads the gauge mcp_metrics_queue_rows through rate'],
    ],
    [
      "a panel without a unit",
      withPanel("timeseries", `sum(mcp_metrics_queue_rows{${BASE}})`, null),
      ['panel "added": has no unit (fieldConfig.defaults.unit)'],
    ],
    [
      "a latency panel in requests per second",
      withPanel(
        "timeseries",
        `histogram_quantile(0.99, sum by (le) (rate(mcp_metrics_commit_duration_seconds_bucket{${BASE}}[5m])))`,
      ),
      ['panel "added": measures seconds, but its unit is reqps'],
    ],
    [
      "a metric the variables table does not know",
      withPanel("timeseries", `sum(rate(mcp_metrics_label_overflow_total{${BASE}}[5m]))`),
      [
        'panel "added": query A: reads mcp_metrics_label_overflow_total, which the variables table does not know: add it to FAMILIES and to the variables that apply',
      ],
    ],
    [
      "an undefined variable",
      withPanel(
        "timeseries",
        `sum(rate(mcp_metrics_requests_total{${BASE}, ingress=~"$ingress"}[5m]))`,
      ),
      ['panel "added": query A names $ingress, which is not defined'],
    ],
  ];

  it.each(flaws)("should find %s", (_what, dashboard, expected) => {
    expect(violationsOf(dashboard)).toEqual(expected);
  });

  it("should find a panel that plots seconds, bytes and rows on one axis (the old service-health panel)", () => {
    const panel = {
      id: 997,
      type: "timeseries",
      title: "added",
      datasource: DS,
      targets: [
        {
          refId: "A",
          expr: `histogram_quantile(0.99, sum by (le) (rate(mcp_metrics_commit_duration_seconds_bucket{${BASE}}[5m])))`,
        },
        { refId: "B", expr: `sum(mcp_metrics_database_bytes{${BASE}})` },
        { refId: "C", expr: `sum(mcp_metrics_queue_rows{${BASE}})` },
      ],
      fieldConfig: { defaults: { unit: "short" } },
    };
    expect(violationsOf({ ...DASHBOARD, panels: [...DASHBOARD.panels, panel] })).toEqual([
      'panel "added": plots seconds, bytes, rows on one axis: one panel per unit',
    ]);
  });

  it("should find a panel that overrides the unit of some series", () => {
    const panel = {
      id: 998,
      type: "timeseries",
      title: "added",
      datasource: DS,
      targets: [{ refId: "A", expr: `sum(mcp_metrics_database_bytes{${BASE}})` }],
      fieldConfig: { defaults: { unit: "bytes" }, overrides: [{ properties: [{ id: "unit" }] }] },
    };
    expect(violationsOf({ ...DASHBOARD, panels: [...DASHBOARD.panels, panel] })).toEqual([
      'panel "added": overrides the unit of some series: put different units in different panels',
    ]);
  });

  it("should find a variable whose values ignore the variables before it", () => {
    const list = DASHBOARD.templating.list.map((v) =>
      v.name === "client"
        ? { ...v, query: { query: "label_values(mcp_tool_executions_total, client_name)" } }
        : v,
    );
    expect(dashboardViolations({ ...DASHBOARD, templating: { list } })).toEqual([
      "variable $client: mcp_tool_executions_total carries job, but is not filtered on $job",
      "variable $client: mcp_tool_executions_total carries instance, but is not filtered on $instance",
      "variable $client: mcp_tool_executions_total carries service, but is not filtered on $service",
      "variable $client: mcp_tool_executions_total carries server_name, but is not filtered on $tool_server",
    ]);
  });
});
