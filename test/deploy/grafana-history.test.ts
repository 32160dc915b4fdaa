import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { EVENT_KINDS } from "../../src/catalog/catalog.js";
import { PG_TEST_URL } from "../support/database.js";
import { postMetrics } from "../support/legacy.js";
import { onPostgres, startTestService, type TestService } from "../support/service.js";

/**
 * The history dashboard (docs/history.md, "History in Grafana"): Grafana's
 * PostgreSQL data source reading the rollup tables. No Grafana runs here, so
 * each query is expanded as Grafana expands it (its template variables in the
 * browser, then its macros in the data source) and run on a real PostgreSQL,
 * as the read-only role the docs create, after events sent through the
 * service over several days. Every panel's numbers are checked against the
 * events sent; a panel without a check fails the suite.
 *
 * The files are checked in both vitest projects; the queries need PostgreSQL
 * and run in the `postgres` project (`onPostgres`, vitest.config.ts), skipped
 * in the `sqlite` one.
 */
const ROOT = join(import.meta.dirname, "..", "..");
const DEPLOY = join(ROOT, "deploy");
const DATASOURCE = { type: "grafana-postgresql-datasource", uid: "mcp-history" } as const;

interface SqlTarget {
  readonly refId: string;
  readonly datasource?: { readonly type: string; readonly uid: string };
  readonly rawQuery?: boolean;
  readonly format: "time_series" | "table";
  readonly rawSql: string;
}

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly interval?: string;
  readonly datasource?: { readonly type: string; readonly uid: string };
  readonly targets?: readonly SqlTarget[];
  /** A row's panels (when it is collapsed). */
  readonly panels?: readonly Panel[];
}

interface Variable {
  readonly name: string;
  readonly type: string;
  readonly datasource?: { readonly type: string; readonly uid: string };
  readonly query: string;
  readonly includeAll?: boolean;
  readonly multi?: boolean;
  readonly allValue?: string | null;
}

interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly timezone: string;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly Variable[] };
}

const DASHBOARD = JSON.parse(
  readFileSync(join(DEPLOY, "grafana", "history", "dashboards", "mcp-history.json"), "utf8"),
) as Dashboard;

/** Every panel, those inside rows included; rows themselves hold no query. */
function panelsOf(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => (p.type === "row" ? panelsOf(p.panels ?? []) : [p]));
}
const PANELS = panelsOf(DASHBOARD.panels);

// ---------------------------------------------------------------------------
// Grafana's expansion of a query, in its two steps.

/** What the dashboard's variables are set to: the values picked, or All. */
interface Selection {
  /** `$service`: the services picked, or "all" (every value of the variable's query). */
  readonly services: readonly string[] | "all";
  /** The time picker's range (whole seconds: Grafana's older releases format seconds only). */
  readonly from: Date;
  readonly to: Date;
  /** `$__interval`, as Grafana computes it from the range, the panel's width and its minimum. */
  readonly interval: string;
}

/** Grafana's template variable syntaxes: `$name`, `[[name]]`, `${name}`, `${name:format}`. */
const TEMPLATE_VARIABLE =
  /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\${(\w+)(?:\.([^:^}]+))?(?::([^}]+))?}/g;

/** A text value as the SQL data sources' `quoteLiteral` writes it. */
const quoteLiteral = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/**
 * Step one, in the browser: the template variables, as Grafana's SQL data
 * sources interpolate them: a value of a multi-value or
 * include-All variable quoted, several joined by commas; All without an
 * `allValue` is every value of the variable's query. A name that is no
 * variable is left as it is (the macros, for step two). A format
 * (`${service:csv}`) is refused: this expander does not implement any.
 */
function interpolateVariables(
  sql: string,
  selection: Selection,
  allServices: readonly string[],
): string {
  const service = DASHBOARD.templating.list.find((v) => v.name === "service");
  return sql.replace(
    TEMPLATE_VARIABLE,
    (
      match,
      plain?: string,
      bracket?: string,
      f1?: string,
      braced?: string,
      path?: string,
      f2?: string,
    ) => {
      const name = plain ?? bracket ?? braced;
      if (f1 !== undefined || f2 !== undefined || path !== undefined)
        throw new Error(`${match}: variable formats are not implemented by this test`);
      if (name === "__interval") return selection.interval;
      if (name !== "service" || service === undefined) return match;
      const picked = selection.services === "all" ? allServices : selection.services;
      if (selection.services === "all" && service.allValue) return service.allValue;
      if (service.multi || service.includeAll) return picked.map(quoteLiteral).join(",");
      return (picked[0] ?? "").replace(/'/g, "''");
    },
  );
}

/** Grafana's PostgreSQL macros: `$name(args)`, the arguments up to the first `)`. */
const MACRO = /\$([_a-zA-Z0-9]+)\(([^)]*)\)/g;

/** An interval (`1h`, `'5m'`) in seconds, of the units these panels use. */
function intervalSeconds(text: string): number {
  const m = /^(\d+)(s|m|h|d|w)$/.exec(text.replace(/^'|'$/g, ""));
  if (m === null) throw new Error(`interval ${text}: not implemented by this test`);
  const unit = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 }[m[2] as "s"];
  return Number(m[1]) * unit;
}

/** A time as Grafana writes it in a macro: RFC 3339 in UTC, the fraction without trailing zeros. */
function rfc3339Nano(date: Date): string {
  return date
    .toISOString()
    .replace(/\.(\d*?)0*Z$/, (_, digits: string) => (digits ? `.${digits}Z` : "Z"));
}

/**
 * Step two, in Grafana's PostgreSQL data source (without TimescaleDB): each
 * macro replaced by its SQL. A macro this expander does not know fails, as an
 * unknown one fails in Grafana.
 */
function expandMacros(sql: string, selection: Selection): string {
  const evaluate = (name: string, args: readonly string[]): string => {
    const column = args[0] ?? "";
    switch (name) {
      case "__time":
        return `${column} AS "time"`;
      case "__timeFilter":
        return `${column} BETWEEN '${rfc3339Nano(selection.from)}' AND '${rfc3339Nano(selection.to)}'`;
      case "__timeFrom":
        return `'${rfc3339Nano(selection.from)}'`;
      case "__timeTo":
        return `'${rfc3339Nano(selection.to)}'`;
      case "__timeGroup": {
        if (args.length !== 2)
          throw new Error(`$${name}: a fill mode is not implemented by this test`);
        const seconds = intervalSeconds(args[1] as string);
        return `floor(extract(epoch from ${column})/${seconds})*${seconds}`;
      }
      case "__timeGroupAlias":
        return `${evaluate("__timeGroup", args)} AS "time"`;
      default:
        throw new Error(`unknown macro "${name}"`);
    }
  };
  return sql.replace(MACRO, (whole: string, name: string, args: string, at: number) => {
    // Grafana's compatibility with releases before 5.3: `$__timeGroup(...)` directly followed by a comma is the alias.
    const macro =
      name === "__timeGroup" && sql[at + whole.length] === "," ? "__timeGroupAlias" : name;
    return evaluate(
      macro,
      args.split(",").map((a) => a.trim()),
    );
  });
}

/** A query as Grafana sends it to PostgreSQL. */
function expand(sql: string, selection: Selection, allServices: readonly string[]): string {
  const expanded = expandMacros(interpolateVariables(sql, selection, allServices), selection);
  if (expanded.includes("$")) throw new Error(`left unexpanded: ${expanded}`);
  return expanded;
}

// ---------------------------------------------------------------------------
// The events sent, and what each panel must show of them.

const DAY = 86_400_000;
const HOUR = 3_600_000;

/** One legacy JSON metric as sent, with what the checks read of it. */
interface Sent {
  readonly service: string;
  readonly type: string;
  readonly at: number;
  readonly value: number;
  readonly durationMs?: number;
  readonly dimensions: Readonly<Record<string, string | number | boolean>>;
}

/** Each type with an outcome, and its field (the event catalog's `outcome`). */
const OUTCOME: ReadonlyMap<string, string> = new Map(
  EVENT_KINDS.flatMap((k) => (k.outcome ? [[k.name, k.outcome.name] as const] : [])),
);
const failed = (e: Sent): boolean => {
  const field = OUTCOME.get(e.type);
  return field !== undefined && e.dimensions[field] === false;
};

/**
 * Events of every type the panels read, by two services, on five UTC days:
 * days 0 to 2 in the range the panels are asked about, days -2 and 4 outside
 * it (so the time filter must leave them out). Counts differ by day, so that
 * a panel that mixes the days up fails.
 */
function sentEvents(day0: number): Sent[] {
  const out: Sent[] = [];
  for (const [k, d] of [-2, 0, 1, 2, 4].entries()) {
    const at = (hour: number, i: number) => day0 + d * DAY + hour * HOUR + i * 1000;
    const a = "test-service";
    const b = "other-service";
    for (let i = 0; i < 5 + k; i++) {
      const tool = ["search", "fetch", "summarize"][i % 3] as string;
      out.push({
        service: a,
        type: "tool_execution",
        at: at(i % 2 ? 10 : 15, i),
        value: 1,
        durationMs: 100 + 10 * i,
        dimensions: {
          method: "tools/call",
          tool_name: tool,
          server_name: tool === "fetch" ? "web" : "docs",
          client_name: i % 2 ? "cursor" : "claude-desktop",
          client_version: i % 3 ? "2.1" : "1.0",
          success: i % 4 !== 3,
        },
      });
    }
    // A call without a tool name: in the totals and the other dimensions, not in the tools.
    out.push({
      service: a,
      type: "tool_execution",
      at: at(9, 0),
      value: 1,
      durationMs: 40,
      dimensions: {
        method: "tools/list",
        server_name: "docs",
        client_name: "cursor",
        client_version: "1.0",
        success: true,
      },
    });
    for (let i = 0; i < 2; i++) {
      out.push({
        service: b,
        type: "tool_execution",
        at: at(11, i),
        value: 1,
        durationMs: 300 + i,
        dimensions: {
          method: "tools/call",
          tool_name: "search",
          server_name: "web",
          client_name: "cursor",
          client_version: "2.1",
          success: !(k === 2 && i === 1),
        },
      });
    }
    const auth = [
      ["jwt", k % 2 === 1],
      ["jwt", false],
      ["jwt", false],
      ["oauth", false],
      ["oauth", k >= 2],
      ["noauth", false],
    ] as const;
    for (const [i, [method, fails]] of auth.entries()) {
      out.push({
        service: a,
        type: "auth_request",
        at: at(8 + (i % 3), i),
        value: 1,
        durationMs: 20 + i,
        dimensions: { method, success: !fails, server: "docs" },
      });
    }
    for (let i = 0; i < 2; i++) {
      out.push({
        service: b,
        type: "auth_request",
        at: at(12, i),
        value: 1,
        durationMs: 30,
        dimensions: { method: "jwt", success: i === 0 },
      });
    }
    for (const [i, [step, seconds]] of [
      ["initialize_to_tools_list", 0.1 * (k + 1)],
      ["initialize_to_tools_list", 0.3 * (k + 1)],
      ["tools_list_to_tools_call", 0.05],
    ].entries()) {
      out.push({
        service: a,
        type: "protocol_latency",
        at: at(10, 30 + i),
        value: seconds as number,
        dimensions: { flow_step: step as string, server_name: "docs" },
      });
    }
    out.push({
      service: b,
      type: "protocol_latency",
      at: at(11, 40),
      value: 0.2,
      dimensions: { flow_step: "initialize_to_tools_list", server_name: "web" },
    });
    for (let i = 0; i < 2; i++) {
      out.push({
        service: a,
        type: "health_check",
        at: at(6, i),
        value: 1,
        durationMs: 5,
        dimensions: {
          endpoint: "http://docs:8000/health",
          status_code: k === 3 && i === 1 ? 503 : 200,
          healthy: !(k === 3 && i === 1),
        },
      });
    }
    out.push({
      service: b,
      type: "registry_operation",
      at: at(13, 0),
      value: 1,
      durationMs: 15,
      dimensions: { operation: "create", resource_type: "server", success: k !== 1 },
    });
    out.push({
      service: a,
      type: "custom",
      at: at(14, 0),
      value: 10 * k,
      dimensions: { metric_name: "cache_hits" },
    });
  }
  return out;
}

/** A result row, its numbers as numbers. */
type Row = Record<string, string | number | null>;

/** The events a panel reads for a selection: the buckets (of `grain`) whose start is in the range, of the services picked. */
function selected(events: readonly Sent[], s: Selection, all: readonly string[], grain: number) {
  const services = s.services === "all" ? all : s.services;
  return events.filter((e) => {
    const bucket = Math.floor(e.at / grain) * grain;
    return services.includes(e.service) && bucket >= s.from.getTime() && bucket <= s.to.getTime();
  });
}

/** Rows of `events` grouped by `key`, each summed by `measure`. */
function grouped(
  events: readonly Sent[],
  key: (e: Sent) => Row | undefined,
  measure: (group: readonly Sent[]) => Row,
): Row[] {
  const groups = new Map<string, { key: Row; events: Sent[] }>();
  for (const e of events) {
    const k = key(e);
    if (k === undefined) continue;
    const id = JSON.stringify(k);
    const group = groups.get(id) ?? { key: k, events: [] };
    group.events.push(e);
    groups.set(id, group);
  }
  return [...groups.values()].map((g) => ({ ...g.key, ...measure(g.events) }));
}

const dayOf = (e: Sent): number => Math.floor(e.at / DAY) * (DAY / 1000);
const errorsOf = (group: readonly Sent[]): number => group.filter(failed).length;
const meanMs = (group: readonly Sent[], ms: (e: Sent) => number | undefined): number | null => {
  const timed = group.map(ms).filter((v): v is number => v !== undefined);
  return timed.length === 0 ? null : timed.reduce((a, b) => a + b, 0) / timed.length;
};

/** A table of tool calls by one dimension: calls, errors, error rate and mean latency per value. */
function perValue(label: string, dimension: string) {
  return (events: readonly Sent[]): Row[] =>
    grouped(
      events.filter((e) => e.type === "tool_execution"),
      (e) =>
        e.dimensions[dimension] === undefined
          ? undefined
          : { [label]: String(e.dimensions[dimension]) },
      (g) => ({
        calls: g.length,
        errors: errorsOf(g),
        "error rate": errorsOf(g) / g.length,
        "mean latency": meanMs(g, (e) => e.durationMs),
      }),
    );
}

/** What one panel must show: its rows for a selection, and the grain of the rollup it reads. */
interface Expectation {
  readonly grain: number;
  /** The expected rows, from the events of the selection. */
  readonly rows: (events: readonly Sent[], selection: Selection) => Row[];
  /** A table's order: the column it is sorted by, descending. */
  readonly descending?: string;
}

/** Every panel's expectation, by title. */
const EXPECTED: Readonly<Record<string, Expectation>> = {
  "Events per day by type": {
    grain: DAY,
    rows: (events) =>
      grouped(
        events,
        (e) => ({ time: dayOf(e), metric: e.type }),
        (g) => ({ events: g.length }),
      ),
  },
  "Error rate by type": {
    grain: HOUR,
    rows: (events, s) => {
      const step = intervalSeconds(s.interval);
      return grouped(
        events.filter((e) => OUTCOME.has(e.type)),
        (e) => ({
          time: Math.floor((Math.floor(e.at / HOUR) * 3600) / step) * step,
          metric: e.type,
        }),
        (g) => ({ "error rate": errorsOf(g) / g.length }),
      );
    },
  },
  "Tool calls per day by tool": {
    grain: DAY,
    rows: (events) =>
      grouped(
        events.filter((e) => e.type === "tool_execution"),
        (e) =>
          e.dimensions.tool_name === undefined
            ? undefined
            : { time: dayOf(e), metric: String(e.dimensions.tool_name) },
        (g) => ({ calls: g.length }),
      ),
  },
  "Authentication failures per day by method": {
    grain: DAY,
    rows: (events) =>
      grouped(
        events.filter((e) => e.type === "auth_request"),
        (e) => ({ time: dayOf(e), metric: String(e.dimensions.method) }),
        (g) => ({ failures: errorsOf(g) }),
      ),
  },
  "Protocol flow mean latency per day by step": {
    grain: DAY,
    rows: (events) =>
      grouped(
        events.filter((e) => e.type === "protocol_latency"),
        (e) => ({ time: dayOf(e), metric: String(e.dimensions.flow_step) }),
        (g) => ({ "mean latency": meanMs(g, (e) => e.value * 1000) }),
      ),
  },
  "Events by service": {
    grain: DAY,
    rows: (events) =>
      grouped(
        events,
        (e) => ({ service: e.service, type: e.type }),
        (g) => ({ events: g.length, errors: errorsOf(g) }),
      ),
  },
  "Top servers": { grain: DAY, rows: perValue("server", "server_name"), descending: "calls" },
  "Top clients": { grain: DAY, rows: perValue("client", "client_name"), descending: "calls" },
  "Client versions": {
    grain: DAY,
    rows: perValue("client version", "client_version"),
    descending: "calls",
  },
};

/** Panels that have no check, each with the reason. None so far. */
const UNCHECKED: Readonly<Record<string, string>> = {};

/** Numbers rounded to 1e-9, for comparing sums of floats added in another order. */
function normalized(row: Readonly<Record<string, unknown>>): Row {
  return Object.fromEntries(
    Object.entries(row).map(([k, v]) => [
      k,
      typeof v === "number" ? Math.round(v * 1e9) / 1e9 : (v as string | null),
    ]),
  );
}

/** PostgreSQL's numeric types (int2, int4, int8, float4, float8, numeric): node-postgres gives some as text. */
const NUMERIC_TYPES = new Set([21, 23, 20, 700, 701, 1700]);

/** Rows in a fixed order, for comparing sets of rows. */
const sortedRows = (rows: readonly Row[]): Row[] =>
  [...rows].sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1));

// ---------------------------------------------------------------------------

describe("the history dashboard and its data source, as files", () => {
  const datasources = parse(
    readFileSync(join(DEPLOY, "grafana", "history", "datasources", "history-postgres.yml"), "utf8"),
  ) as { datasources: Record<string, unknown>[] };
  const compose = parse(readFileSync(join(DEPLOY, "compose.replicas.yml"), "utf8"), {
    merge: true,
  }) as {
    services: Record<string, { environment?: Record<string, string>; volumes?: string[] }>;
  };
  const provider = parse(
    readFileSync(join(DEPLOY, "grafana", "history", "dashboards.yml"), "utf8"),
  ) as { providers: { options: { path: string } }[] };
  const sqliteCompose = parse(readFileSync(join(DEPLOY, "compose.yml"), "utf8"), {
    merge: true,
  }) as { services: Record<string, { volumes?: string[] }> };

  it("should provision Grafana's built-in PostgreSQL data source, uid mcp-history, from environment variables", () => {
    expect(datasources.datasources).toHaveLength(1);
    const ds = datasources.datasources[0] as Record<string, unknown>;
    expect(ds).toMatchObject({
      type: DATASOURCE.type,
      uid: DATASOURCE.uid,
      url: `\${METRICS_HISTORY_PG_HOST}`,
      user: `\${METRICS_HISTORY_PG_USER}`,
      secureJsonData: { password: `\${METRICS_HISTORY_PG_PASSWORD}` },
      jsonData: {
        database: `\${METRICS_HISTORY_PG_DATABASE}`,
        sslmode: "disable",
        postgresVersion: 1500,
        timescaledb: false,
      },
    });
    // Grafana's provisioning has no `${NAME:-default}`: it would look up a variable of that name.
    const values = JSON.stringify(ds).match(/\$\{[^}]*\}/g) ?? [];
    expect(values).toHaveLength(4);
    for (const value of values) expect(value).toMatch(/^\$\{METRICS_HISTORY_PG_[A-Z]+\}$/);
  });

  it("should set the data source's variables in the replicas' compose file to its PostgreSQL", () => {
    const grafana = compose.services.grafana;
    const postgres = compose.services.postgres?.environment ?? {};
    const env = grafana?.environment ?? {};
    // Compose's `${NAME:-default}`: the shell's value, or the compose PostgreSQL's.
    const fallback = (name: string) =>
      new RegExp(`^\\$\\{${name}:-(.*)\\}$`).exec(env[name] ?? "")?.[1];
    expect(fallback("METRICS_HISTORY_PG_HOST")).toBe("postgres:5432");
    expect(fallback("METRICS_HISTORY_PG_DATABASE")).toBe(postgres.POSTGRES_DB);
    expect(fallback("METRICS_HISTORY_PG_USER")).toBe(postgres.POSTGRES_USER);
    expect(fallback("METRICS_HISTORY_PG_PASSWORD")).toBe(postgres.POSTGRES_PASSWORD);
    // The history's folder is mounted where its dashboard provider loads every file from,
    // and its provisioning files beside compose.yml's, file by file.
    expect(grafana?.volumes).toEqual(
      expect.arrayContaining([
        `./grafana/history/dashboards:${provider.providers[0]?.options.path}:ro`,
        "./grafana/history/datasources/history-postgres.yml:/etc/grafana/provisioning/datasources/history-postgres.yml:ro",
        "./grafana/history/dashboards.yml:/etc/grafana/provisioning/dashboards/history.yml:ro",
        "./grafana/provisioning/datasources/prometheus.yml:/etc/grafana/provisioning/datasources/prometheus.yml:ro",
        "./grafana/provisioning/dashboards/mcp.yml:/etc/grafana/provisioning/dashboards/mcp.yml:ro",
        "./grafana/dashboards:/var/lib/grafana/dashboards:ro",
      ]),
    );
    // Every provisioning file of compose.yml's folder is mounted here too: none is forgotten.
    for (const kind of ["datasources", "dashboards"]) {
      for (const file of readdirSync(join(DEPLOY, "grafana", "provisioning", kind))) {
        expect(grafana?.volumes).toContain(
          `./grafana/provisioning/${kind}/${file}:/etc/grafana/provisioning/${kind}/${file}:ro`,
        );
      }
    }
  });

  it("should leave the SQLite deployment without the PostgreSQL data source and its dashboard", () => {
    const volumes = sqliteCompose.services.grafana?.volumes ?? [];
    expect(volumes.length).toBeGreaterThan(0);
    for (const volume of volumes) expect(volume).not.toMatch(/history/);
  });

  it("should query the mcp-history data source in every panel and the variable", () => {
    expect(DASHBOARD).toMatchObject({
      uid: "mcp-history",
      title: "MCP gateway history",
      timezone: "utc",
    });
    expect(PANELS.length).toBeGreaterThan(0);
    for (const panel of PANELS) {
      expect(panel.datasource, panel.title).toEqual(DATASOURCE);
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.datasource, panel.title).toEqual(DATASOURCE);
        expect(target.rawQuery, panel.title).toBe(true);
        expect(["time_series", "table"], panel.title).toContain(target.format);
      }
    }
    const ids = PANELS.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(DASHBOARD.templating.list).toEqual([
      expect.objectContaining({
        name: "service",
        type: "query",
        datasource: DATASOURCE,
        query: "SELECT DISTINCT service FROM metrics_daily ORDER BY 1",
        includeAll: true,
        multi: true,
      }),
    ]);
  });

  it("should group hourly rows by $__interval only with a minimum interval of an hour", () => {
    for (const panel of PANELS) {
      for (const target of panel.targets ?? []) {
        if (!target.rawSql.includes("$__interval")) continue;
        expect(target.rawSql, panel.title).toMatch(/FROM metrics_hourly\b/);
        expect(panel.interval, panel.title).toBe("1h");
      }
    }
  });

  it("should have a check for every panel, or a reason why not", () => {
    const titles = PANELS.map((p) => p.title);
    expect(new Set(titles).size).toBe(titles.length);
    for (const title of titles) {
      expect(
        Object.hasOwn(EXPECTED, title) || Object.hasOwn(UNCHECKED, title),
        `panel "${title}" has no check in EXPECTED (or reason in UNCHECKED)`,
      ).toBe(true);
    }
    for (const title of [...Object.keys(EXPECTED), ...Object.keys(UNCHECKED)])
      expect(titles, `a check for a panel that is gone: ${title}`).toContain(title);
  });

  it("should compute the error rate over exactly the types that have an outcome", () => {
    const sql = PANELS.find((p) => p.title === "Error rate by type")?.targets?.[0]?.rawSql ?? "";
    const listed = /metric_type IN \(([^)]*)\)/.exec(sql)?.[1] ?? "";
    const types = [...listed.matchAll(/'(\w+)'/g)].map((m) => m[1]);
    expect(types.sort()).toEqual([...OUTCOME.keys()].sort());
  });

  it("should expand macros and variables as Grafana writes them", () => {
    const s: Selection = {
      services: "all",
      from: new Date("2026-12-01T00:00:00Z"),
      to: new Date("2026-12-03T23:59:59.5Z"),
      interval: "2h",
    };
    expect(
      expand(
        "SELECT $__timeGroupAlias(timestamp::timestamptz, 1d), x WHERE $__timeFilter(timestamp::timestamptz) AND service IN ($service)",
        s,
        ["a", "o'b"],
      ),
    ).toBe(
      `SELECT floor(extract(epoch from timestamp::timestamptz)/86400)*86400 AS "time", x WHERE timestamp::timestamptz BETWEEN '2026-12-01T00:00:00Z' AND '2026-12-03T23:59:59.5Z' AND service IN ('a','o''b')`,
    );
    expect(expand("$__timeGroup(t, $__interval), $__timeGroup(t, '5m')", s, [])).toBe(
      `floor(extract(epoch from t)/7200)*7200 AS "time", floor(extract(epoch from t)/300)*300`,
    );
    expect(expand(`service IN (\${service})`, { ...s, services: ["b"] }, ["a", "b"])).toBe(
      "service IN ('b')",
    );
    expect(() => expand("$__unixEpochFilter(t)", s, [])).toThrow(/unknown macro/);
  });
});

describe.skipIf(!onPostgres)("the history dashboard's queries on PostgreSQL", () => {
  let service: TestService;
  let reader: pg.Client;
  const role = `grafana_reader_${randomBytes(4).toString("hex")}`;
  const day0 = Math.floor(Date.now() / DAY) * DAY - 6 * DAY;
  const events = sentEvents(day0);
  const services = ["other-service", "test-service"];
  // Days 0 to 2, to the last second of day 2.
  const range = { from: new Date(day0 - DAY), to: new Date(day0 + 3 * DAY - 1000) };
  const selections: Selection[] = [
    ...(["1h", "1d"] as const).flatMap((interval) =>
      [["test-service"], ["other-service"], "all" as const].map((picked) => ({
        ...range,
        interval,
        services: picked,
      })),
    ),
  ];

  beforeAll(async () => {
    service = await startTestService();
    for (const name of services) {
      const key = name === "test-service" ? service.key : await service.keyFor(name);
      const metrics = events
        .filter((e) => e.service === name)
        .map((e) => ({
          type: e.type,
          value: e.value,
          ...(e.durationMs === undefined ? {} : { duration_ms: e.durationMs }),
          timestamp: e.at / 1000,
          dimensions: e.dimensions,
        }));
      const posted = await postMetrics(service.url, { service: name, metrics }, { key });
      expect(posted.status, JSON.stringify(posted.json)).toBe(200);
    }
    const stored = await service.sql.get<{ n: number }>("SELECT count(*) AS n FROM metrics");
    expect(Number(stored?.n)).toBe(events.length);

    // The read-only role, made by the SQL of docs/history.md, as a role of this run's own name.
    const docs = readFileSync(join(ROOT, "docs", "history.md"), "utf8");
    const section = docs.slice(docs.indexOf("## History in Grafana"));
    const grants = /```sql\n(CREATE ROLE grafana_reader[\s\S]*?)```/.exec(section)?.[1];
    expect(grants, "docs/history.md: the read-only role's SQL").toBeDefined();
    const url = new URL(service.storageEnv.DATABASE_URL as string);
    const schema = /search_path=(\w+)/.exec(url.searchParams.get("options") ?? "")?.[1];
    const admin = new pg.Client({ connectionString: url.toString() });
    await admin.connect();
    try {
      await admin.query((grants as string).replaceAll("grafana_reader", role));
      // The tests' schema is not `public`: the docs say to grant its use too.
      await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
    } finally {
      await admin.end();
    }
    // Grafana's session time zone is the server's; the casts must not depend on it.
    url.username = role;
    url.password = "";
    url.searchParams.set("options", `-c search_path=${schema} -c TimeZone=Asia/Kolkata`);
    reader = new pg.Client({ connectionString: url.toString() });
    await reader.connect();
  });

  afterAll(async () => {
    await reader?.end();
    const admin = new pg.Client({
      connectionString: service?.storageEnv.DATABASE_URL ?? PG_TEST_URL,
    });
    await admin.connect();
    try {
      await admin.query(`DROP OWNED BY ${role}`).catch(() => undefined);
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
    } finally {
      await admin.end();
    }
    await service?.close();
  });

  /** Runs one query as Grafana would send it, as the read-only role. */
  async function run(sql: string, selection: Selection): Promise<Row[]> {
    const result = await reader.query<Record<string, unknown>>(expand(sql, selection, services));
    const numeric = result.fields.filter((f) => NUMERIC_TYPES.has(f.dataTypeID)).map((f) => f.name);
    return result.rows.map((row) => {
      for (const column of numeric) if (row[column] !== null) row[column] = Number(row[column]);
      return normalized(row);
    });
  }

  it("should list the services for $service", async () => {
    const variable = DASHBOARD.templating.list[0] as Variable;
    const rows = await run(variable.query, selections[0] as Selection);
    expect(rows.map((r) => Object.values(r)[0])).toEqual(services);
  });

  it("should let the read-only role read the rollups and nothing else", async () => {
    await expect(reader.query("SELECT count(*) FROM metrics")).rejects.toThrow(/permission denied/);
    await expect(reader.query("SELECT count(*) FROM api_keys")).rejects.toThrow(
      /permission denied/,
    );
    await expect(reader.query("DELETE FROM metrics_daily")).rejects.toThrow(/permission denied/);
  });

  for (const panel of PANELS) {
    const expectation = EXPECTED[panel.title];
    if (expectation === undefined) continue; // failed above, by the check for every panel
    it(`should show what was sent: ${panel.title}`, async () => {
      for (const selection of selections) {
        const what = `${panel.title}, ${JSON.stringify(selection.services)}, $__interval ${selection.interval}`;
        for (const target of panel.targets ?? []) {
          const rows = await run(target.rawSql, selection);
          const expected = expectation
            .rows(selected(events, selection, services, expectation.grain), selection)
            .map(normalized);
          expect(expected.length, `${what}: the events sent give it rows`).toBeGreaterThan(0);
          expect(sortedRows(rows), what).toEqual(sortedRows(expected));
          if (target.format === "time_series") {
            // Grafana needs a `time` column, ascending, and numbers in the value columns.
            const times = rows.map((r) => r.time);
            expect(
              times.every((t) => typeof t === "number"),
              what,
            ).toBe(true);
            expect(times, what).toEqual([...times].sort((x, y) => (x as number) - (y as number)));
            for (const row of rows) {
              for (const [column, value] of Object.entries(row)) {
                if (column !== "time" && column !== "metric")
                  expect(typeof value === "number" || value === null, `${what}: ${column}`).toBe(
                    true,
                  );
              }
            }
          }
          const descending = expectation.descending;
          if (descending !== undefined) {
            const column = rows.map((r) => r[descending] as number);
            expect(column, what).toEqual([...column].sort((x, y) => y - x));
          }
        }
      }
    });
  }

  it("should count what was sent on the days it was sent: events, tool calls, auth failures", async () => {
    // A few numbers written out, beside the checks computed from the events sent.
    const all = { ...range, interval: "1h", services: "all" as const };
    const panel = (title: string) =>
      PANELS.find((p) => p.title === title)?.targets?.[0]?.rawSql as string;
    const at = (d: number) => (day0 + d * DAY) / 1000;
    const tools = await run(panel("Tool calls per day by tool"), all);
    // Day 1 (k = 2): test-service's 7 calls (search 3, fetch 2, summarize 2), other-service's 2 searches.
    expect(tools.filter((r) => r.time === at(1))).toEqual([
      { time: at(1), metric: "fetch", calls: 2 },
      { time: at(1), metric: "search", calls: 5 },
      { time: at(1), metric: "summarize", calls: 2 },
    ]);
    const auth = await run(panel("Authentication failures per day by method"), all);
    // Day 0 (k = 1): jwt fails once for each service; day 2 (k = 3): jwt twice, oauth once.
    expect(auth.filter((r) => r.time === at(0))).toEqual([
      { time: at(0), metric: "jwt", failures: 2 },
      { time: at(0), metric: "noauth", failures: 0 },
      { time: at(0), metric: "oauth", failures: 0 },
    ]);
    expect(auth.filter((r) => r.time === at(2) && r.failures !== 0)).toEqual([
      { time: at(2), metric: "jwt", failures: 2 },
      { time: at(2), metric: "oauth", failures: 1 },
    ]);
    const perDay = await run(panel("Events per day by type"), {
      ...all,
      services: ["test-service"],
    });
    expect(perDay.filter((r) => r.metric === "tool_execution").map((r) => r.events)).toEqual([
      7, 8, 9,
    ]);
    expect(new Set(perDay.map((r) => r.time))).toEqual(new Set([at(0), at(1), at(2)]));
  });
});
