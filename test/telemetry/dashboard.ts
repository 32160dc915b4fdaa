import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Selector, selectorsOf } from "./promql-selectors.js";

/** A query of a panel, as Grafana stores it. */
export interface Target {
  readonly refId: string;
  readonly expr: string;
  readonly legendFormat?: string;
  readonly instant?: boolean;
  readonly datasource?: { readonly type: string; readonly uid: string };
}

/** A panel, as Grafana stores it; a row holds its panels in `panels` when collapsed. */
export interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { readonly type: string; readonly uid: string };
  readonly targets?: readonly Target[];
  readonly fieldConfig?: {
    readonly defaults?: { readonly unit?: string };
    readonly overrides?: readonly { readonly properties?: readonly { readonly id: string }[] }[];
  };
  readonly panels?: readonly Panel[];
}

/** A template variable, as Grafana stores it. */
export interface Variable {
  readonly name: string;
  readonly type: string;
  readonly query?: string | { readonly query: string };
  readonly includeAll?: boolean;
  readonly allValue?: string;
  readonly multi?: boolean;
}

/** The parts of a dashboard the tests read. */
export interface Dashboard {
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly Variable[] };
}

/** The datasource of every panel and query: the dashboard's own `datasource` variable. */
export const DATASOURCE_UID = `\${datasource}`;

/** The shipped dashboard, deploy/grafana/dashboards/mcp-analytics.json. */
export const DASHBOARD = JSON.parse(
  readFileSync(
    join(import.meta.dirname, "..", "..", "deploy/grafana/dashboards/mcp-analytics.json"),
    "utf8",
  ),
) as Dashboard;

/** How a metric family is read: a counter (or a histogram's cumulative series) only through a rate. */
export type FamilyKind = "counter" | "histogram" | "gauge";

/**
 * Every metric family the dashboard reads (src/telemetry/instruments.ts and
 * telemetry.ts, and Prometheus's own series of a scrape). A query on a
 * family missing here fails the check until it is added, and added to each
 * variable below that applies to it.
 */
export const FAMILIES: Readonly<Record<string, FamilyKind>> = {
  mcp_auth_requests_total: "counter",
  mcp_auth_request_duration_seconds: "histogram",
  mcp_tool_executions_total: "counter",
  mcp_tool_execution_duration_seconds: "histogram",
  mcp_protocol_latency_seconds: "histogram",
  mcp_tool_discovery_total: "counter",
  mcp_tool_discovery_duration_seconds: "histogram",
  mcp_tool_discovery_embedding_duration_seconds: "histogram",
  mcp_tool_discovery_search_duration_seconds: "histogram",
  mcp_health_checks_total: "counter",
  mcp_health_check_duration_seconds: "histogram",
  mcp_registry_operations_total: "counter",
  mcp_registry_operation_duration_seconds: "histogram",
  mcp_custom_events_total: "counter",
  mcp_metrics_requests_total: "counter",
  mcp_metrics_events_total: "counter",
  mcp_metrics_rate_limited_total: "counter",
  mcp_metrics_refused_requests_total: "counter",
  mcp_metrics_storage_errors_total: "counter",
  mcp_metrics_commit_duration_seconds: "histogram",
  mcp_metrics_commit_rows: "histogram",
  mcp_metrics_queue_rows: "gauge",
  mcp_metrics_database_bytes: "gauge",
  mcp_metrics_export_failures_total: "counter",
  mcp_metrics_build_info: "gauge",
  up: "gauge",
  scrape_duration_seconds: "gauge",
  scrape_samples_scraped: "gauge",
};

/** The event instruments: every series has the `service` that reported the event. */
const EVENT_FAMILIES = Object.keys(FAMILIES).filter(
  (name) => name.startsWith("mcp_") && !name.startsWith("mcp_metrics_"),
);
const TOOL_CALLS = ["mcp_tool_executions_total", "mcp_tool_execution_duration_seconds"];

/** One variable of the dashboard: the label it stands for, and the families that carry that label. */
export interface VariableLabel {
  readonly variable: string;
  readonly label: string;
  /** Where the variable applies: every query on these families must filter on it. */
  readonly families: readonly string[] | "all";
  /** Families that carry the label with another meaning, and why the variable does not apply to them. */
  readonly otherMeaning?: Readonly<Record<string, string>>;
}

/** Variable -> label -> the families that carry it: what "honours every variable" means. */
export const VARIABLE_LABELS: readonly VariableLabel[] = [
  // Prometheus adds both to every series it scrapes.
  { variable: "job", label: "job", families: "all" },
  { variable: "instance", label: "instance", families: "all" },
  {
    variable: "service",
    label: "service",
    families: [
      ...EVENT_FAMILIES,
      // The service of the key that sent the refused request.
      "mcp_metrics_rate_limited_total",
      "mcp_metrics_refused_requests_total",
    ],
  },
  {
    variable: "auth_server",
    label: "server",
    families: ["mcp_auth_requests_total", "mcp_auth_request_duration_seconds"],
  },
  {
    variable: "tool_server",
    label: "server_name",
    families: [...TOOL_CALLS, "mcp_protocol_latency_seconds"],
  },
  {
    variable: "client",
    label: "client_name",
    families: [...TOOL_CALLS, "mcp_protocol_latency_seconds"],
  },
  {
    variable: "method",
    label: "method",
    families: TOOL_CALLS,
    otherMeaning: {
      mcp_auth_requests_total: "the authentication method (jwt, oauth, noauth), not an MCP method",
      mcp_auth_request_duration_seconds:
        "the authentication method (jwt, oauth, noauth), not an MCP method",
    },
  },
];

/** Panels that reduce a series to one number: a counter there is a total over the time range. */
const REDUCING_PANELS = new Set(["stat", "gauge", "bargauge", "barchart", "piechart", "table"]);
/** Functions that turn a cumulative counter into what happened within a range. */
const RATES = new Set(["rate", "irate", "increase"]);

/** The family a series name belongs to: a histogram's `_bucket`, `_sum` and `_count` are its own. */
export function familyOf(name: string): string | undefined {
  if (FAMILIES[name] !== undefined) return name;
  const histogram = name.replace(/_(bucket|sum|count)$/, "");
  return FAMILIES[histogram] === "histogram" ? histogram : undefined;
}

/** Whether queries on `family` must filter on the variable. */
export function appliesTo(entry: VariableLabel, family: string | undefined): boolean {
  if (entry.families === "all") return true;
  return family !== undefined && entry.families.includes(family);
}

/** Every panel, those inside collapsed rows included; rows themselves left out. */
export function panelsOf(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((p) =>
    p.type === "row" ? [...(p.panels ?? [])] : [p, ...(p.panels ?? [])],
  );
}

/** A variable's query text (`label_values(...)`), whichever way Grafana stored it. */
export function variableQuery(variable: Variable): string {
  const query = variable.query;
  return typeof query === "string" ? query : (query?.query ?? "");
}

/** `label_values(selector, label)` read into its selector and label. */
export function labelValuesOf(query: string): { selector: string; label: string } | undefined {
  const match = /^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$/s.exec(query.trim());
  return match ? { selector: match[1] as string, label: match[2] as string } : undefined;
}

/** Whether a selector filters `label` on `$variable`, and nothing else on that label. */
function filtersOn(selector: Selector, entry: VariableLabel): string | undefined {
  const onLabel = selector.matchers.filter((m) => m.label === entry.label);
  const byVariable = onLabel.filter(
    (m) =>
      (m.op === "=~" || m.op === "=") &&
      (m.value === `$${entry.variable}` || m.value === `\${${entry.variable}}`),
  );
  if (byVariable.length === 0) {
    return `${selector.name} carries ${entry.label}, but is not filtered on $${entry.variable}`;
  }
  if (onLabel.length > 1) {
    return `${selector.name} filters ${entry.label} on $${entry.variable} and on something else too`;
  }
  return undefined;
}

/** What is wrong with one selector of a panel's query; empty when nothing is. */
function selectorViolations(panel: Panel, selector: Selector): string[] {
  const family = familyOf(selector.name);
  if (family === undefined) {
    return [
      `reads ${selector.name}, which the variables table does not know: add it to FAMILIES and to the variables that apply`,
    ];
  }
  const violations: string[] = [];
  for (const entry of VARIABLE_LABELS) {
    if (!appliesTo(entry, family)) continue;
    const wrong = filtersOn(selector, entry);
    if (wrong) violations.push(wrong);
  }
  const rate = selector.enclosing[0];
  if (FAMILIES[family] === "gauge") {
    if (selector.range !== undefined && rate !== undefined && RATES.has(rate)) {
      violations.push(`reads the gauge ${selector.name} through ${rate}`);
    }
  } else if (selector.range === undefined || rate === undefined || !RATES.has(rate)) {
    violations.push(
      `reads the counter ${selector.name} raw (it resets when the service restarts): use rate() or increase()`,
    );
  } else if (REDUCING_PANELS.has(panel.type) && selector.range !== "$__range") {
    violations.push(
      `shows a total of ${selector.name} over [${selector.range}]: a ${panel.type} panel totals the time range, [$__range]`,
    );
  }
  return violations;
}

/** Units a panel may have for what it measures, where the measure has a unit of its own. */
const UNITS: Readonly<Record<string, readonly string[]>> = {
  seconds: ["s", "ms", "µs", "ns", "dtdurations"],
  bytes: ["bytes", "decbytes"],
};

/**
 * What a series measures, by Prometheus's naming (the unit is the name's
 * last word): `seconds`, `bytes`, `rows`...; a counter's or a histogram's
 * `_count` counts events.
 */
function measureOf(name: string, family: string): string {
  if (name.endsWith("_total") || (FAMILIES[family] === "histogram" && name.endsWith("_count"))) {
    return "events";
  }
  return family.split("_").at(-1) as string;
}

/** Variables a query names (`$service`, `${service}`), Grafana's own (`$__range`) left out. */
function variablesNamed(expr: string): string[] {
  return [...expr.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)]
    .map((m) => m[1] as string)
    .filter((name) => !name.startsWith("__"));
}

/**
 * Everything the dashboard does wrong, one line each, each naming its panel
 * or variable: a query on a family that carries a variable's label without
 * filtering on it; a counter read raw, or a reducing panel's counter not
 * totalled over `$__range`; a panel without a unit, with a second one, with
 * series of different units, or with a unit other than its series'; a
 * variable that is unknown, unused, or whose values ignore the variables
 * before it; a panel off the `${datasource}` variable.
 */
export function dashboardViolations(dashboard: Dashboard): string[] {
  const violations: string[] = [];
  const variables = dashboard.templating.list;
  const defined = new Set(variables.map((v) => v.name));
  const used = new Set<string>();
  const read = new Set<string>();

  for (const panel of panelsOf(dashboard)) {
    const at = (text: string) => violations.push(`panel "${panel.title}": ${text}`);
    if (panel.datasource?.uid !== DATASOURCE_UID) at(`does not use ${DATASOURCE_UID}`);
    const unit = panel.fieldConfig?.defaults?.unit;
    if (typeof unit !== "string" || unit.trim() === "")
      at("has no unit (fieldConfig.defaults.unit)");
    for (const override of panel.fieldConfig?.overrides ?? []) {
      if (override.properties?.some((p) => p.id === "unit")) {
        at("overrides the unit of some series: put different units in different panels");
      }
    }
    const targets = panel.targets ?? [];
    if (targets.length === 0) at("has no query");
    const measures = new Set<string>();
    for (const target of targets) {
      if (target.datasource !== undefined && target.datasource.uid !== DATASOURCE_UID) {
        at(`query ${target.refId} does not use ${DATASOURCE_UID}`);
      }
      for (const name of variablesNamed(target.expr)) {
        used.add(name);
        if (!defined.has(name)) at(`query ${target.refId} names $${name}, which is not defined`);
      }
      let selectors: Selector[];
      try {
        selectors = selectorsOf(target.expr);
      } catch (error) {
        at(`query ${target.refId} cannot be read: ${(error as Error).message}`);
        continue;
      }
      if (selectors.length === 0) at(`query ${target.refId} reads no metric`);
      for (const selector of selectors) {
        const family = familyOf(selector.name);
        if (family !== undefined) {
          read.add(family);
          measures.add(measureOf(selector.name, family));
        }
        for (const wrong of selectorViolations(panel, selector)) {
          at(`query ${target.refId}: ${wrong}`);
        }
      }
    }
    if (measures.size > 1) {
      at(`plots ${[...measures].join(", ")} on one axis: one panel per unit`);
    }
    for (const measure of measures) {
      const units = UNITS[measure];
      if (units !== undefined && measures.size === 1 && !units.includes(unit ?? "")) {
        at(`measures ${measure}, but its unit is ${unit}`);
      }
    }
  }

  // A variable's values follow the variables before it: a client list honours $service.
  for (const [index, variable] of variables.entries()) {
    if (variable.type !== "query") continue;
    const at = (text: string) => violations.push(`variable $${variable.name}: ${text}`);
    const query = labelValuesOf(variableQuery(variable));
    if (query === undefined) {
      at("is not a label_values(selector, label) query");
      continue;
    }
    const earlier = new Set(variables.slice(0, index).map((v) => v.name));
    for (const name of variablesNamed(query.selector)) {
      if (!earlier.has(name)) at(`names $${name}, which is not defined before it`);
    }
    for (const selector of selectorsOf(query.selector)) {
      const family = familyOf(selector.name);
      for (const entry of VARIABLE_LABELS) {
        if (!earlier.has(entry.variable) || !appliesTo(entry, family)) continue;
        const wrong = filtersOn(selector, entry);
        if (wrong) at(wrong);
      }
    }
  }

  for (const variable of variables) {
    if (variable.type === "query" && !used.has(variable.name)) {
      violations.push(`variable $${variable.name}: no panel uses it`);
    }
  }
  for (const entry of VARIABLE_LABELS) {
    if (!defined.has(entry.variable)) {
      violations.push(`variable $${entry.variable}: in the variables table, not in the dashboard`);
    }
  }
  for (const family of Object.keys(FAMILIES)) {
    if (!read.has(family)) violations.push(`family ${family}: in FAMILIES, but no panel reads it`);
  }
  return violations;
}
