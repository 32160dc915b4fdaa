/**
 * The page's panels: each asks QueryService its questions and draws the
 * answer, or says why there is none (a raw-only question past raw
 * retention, a refused request).
 */
import { type Timestamp, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type {
  Answered,
  SeriesResponse,
  TopRow,
  TypeSummary,
} from "../gen/mcp/metrics/v1/query_pb.js";
import { messageOf, type Query } from "./api.js";
import { forecastChart, formatNumber, lineChart } from "./charts.js";
import { RANGES, STEP_SECONDS, type Step, type View } from "./state.js";

/** What every panel is asked with. */
export interface Ask {
  readonly query: Query;
  readonly view: View;
  readonly start: Timestamp;
  readonly end: Timestamp;
  readonly step: Step;
  readonly rangeSeconds: number;
  /** The per-type summary, asked once: its table and the per-type charts' types. */
  readonly summary: Promise<Summaries>;
}

interface Summaries {
  readonly types: TypeSummary[];
  readonly answered: Answered | undefined;
}

/** The questions' common part for a view, at `nowMs`. */
export function askOf(query: Query, view: View, nowMs: number): Ask {
  const range = RANGES[view.range];
  const common = {
    query,
    view,
    start: timestampFromMs(nowMs - range.ms),
    end: timestampFromMs(nowMs),
    step: range.step,
    rangeSeconds: range.ms / 1000,
  };
  return { ...common, summary: summaries(common) };
}

/** The dimension the server filter names in each type that has one. */
const SERVER_DIMENSION: Readonly<Record<string, string>> = {
  auth_request: "server",
  tool_execution: "server_name",
  protocol_latency: "server_name",
};

/** The filters of the view that apply to a type: the service always, server and tool where the type has them. */
export function filtersFor(view: View, eventType: string): Record<string, string> {
  const filters: Record<string, string> = {};
  if (view.service !== "") filters.service = view.service;
  const server = SERVER_DIMENSION[eventType];
  if (view.server !== "" && server !== undefined) filters[server] = view.server;
  if (view.tool !== "" && eventType === "tool_execution") filters.tool_name = view.tool;
  return filters;
}

/** A panel: a titled section of the page, filled by `fill`. */
export interface Panel {
  readonly id: string;
  readonly title: string;
  /** Wide panels span the page's width on a wide screen. */
  readonly wide?: boolean;
  fill(ask: Ask, body: HTMLElement): Promise<Answered | undefined>;
}

const el = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
};

/** A note in a panel in place of its figures. */
export function note(
  body: HTMLElement,
  text: string,
  kind: "empty" | "error" = "empty",
): undefined {
  body.replaceChildren(el("p", { class: `note ${kind}`, "data-testid": `note-${kind}` }, text));
  return undefined;
}

/**
 * "answered from day and hour rollups" / "from the raw events", and since
 * when, where the answer starts later than the range asked (a raw-only
 * question past raw retention).
 */
export function sourcesText(answered: Answered | undefined, asked: Timestamp): string {
  const grains = [...new Set((answered?.sources ?? []).map((s) => s.grain))];
  if (answered === undefined || grains.length === 0) return "";
  const rollups = grains.filter((g) => g !== "raw");
  const parts = [
    ...(rollups.length > 0 ? [`${rollups.join(" and ")} rollups`] : []),
    ...(grains.includes("raw") ? ["the raw events"] : []),
  ];
  const start = answered.start ? timestampDate(answered.start) : undefined;
  const later =
    grains.includes("raw") &&
    start !== undefined &&
    start.getTime() > timestampDate(asked).getTime()
      ? `, since ${start.toISOString().slice(0, 16).replace("T", " ")} UTC: the raw events are kept no longer`
      : "";
  return `answered from ${parts.join(" and ")}${later}`;
}

const ms = (v: number | undefined) => (v === undefined ? "–" : `${formatNumber(v)} ms`);
const percent = (v: number) => `${formatNumber(v * 100)}%`;

/** A table whose cells carry their column's name, for reading back. */
function table(
  head: readonly string[],
  rows: readonly (readonly string[])[],
  testid: string,
): HTMLTableElement {
  return el(
    "table",
    { "data-testid": testid },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el(
      "tbody",
      {},
      ...rows.map((r) =>
        el("tr", {}, ...r.map((c, i) => el("td", { "data-col": head[i] as string }, c))),
      ),
    ),
  );
}

/** The times of a range at its step (seconds), for charts that share an axis. */
function stepTimes(ask: Ask): number[] {
  const stepS = STEP_SECONDS[ask.step];
  const first = Math.floor(Number(ask.start.seconds) / stepS) * stepS;
  const out: number[] = [];
  for (let t = first; t < Number(ask.end.seconds); t += stepS) out.push(t);
  return out;
}

/** A series' groups as chart lines on `times`, each value mapped by `scale`. */
function linesOf(
  answer: SeriesResponse,
  times: readonly number[],
  label: (group: string) => string,
  scale: (v: number) => number = (v) => v,
) {
  return answer.groups.map((g) => {
    const byTime = new Map(g.points.map((p) => [Number(p.time?.seconds), scale(p.value)]));
    return { label: label(g.group), values: times.map((t) => byTime.get(t) ?? null) };
  });
}

/** Dimensions only the raw events hold (docs/history.md, "Which source answers"). */
const RAW_DIMENSIONS = new Set(["user_hash", "query"]);

/**
 * Whether only the raw events answer a question by `dimension` (a Top's, a
 * group_by) with `filters`, as docs/history.md says the service decides: a
 * raw-only dimension, or two dimensions at once (the rollups count each on
 * its own; the service is no dimension there).
 */
export function rawOnly(dimension: string | undefined, filters: Record<string, string>): boolean {
  const labelFilters = Object.keys(filters).filter((name) => name !== "service");
  if (labelFilters.length > 1) return true;
  const [filter] = labelFilters;
  if (dimension !== undefined && filter !== undefined && filter !== dimension) return true;
  const asked = dimension ?? filter;
  return asked !== undefined && RAW_DIMENSIONS.has(asked);
}

/**
 * Where a question can start: the range's start, or for a raw-only question
 * where the raw events are kept from (`kept`, with a minute's margin: that
 * horizon moves on with the clock), whichever is later. The panel's source
 * line says so ({@link sourcesText}).
 */
function startFor(
  ask: Pick<Ask, "start">,
  kept: Timestamp | undefined,
  dimension: string | undefined,
  filters: Record<string, string>,
): Timestamp {
  if (kept === undefined || !rawOnly(dimension, filters)) return ask.start;
  const keptMs = timestampDate(kept).getTime() + 60_000;
  return keptMs > timestampDate(ask.start).getTime() ? timestampFromMs(keptMs) : ask.start;
}

/** Where the raw events are kept from, as the summary's answer said. */
const keptOf = async (ask: Ask) => (await ask.summary).answered?.rawKeptSince;

/** Summary per type; the server and tool filters are applied to the types that have them. */
async function summaries(ask: Omit<Ask, "summary">): Promise<Summaries> {
  const base = await ask.query.summary({
    start: ask.start,
    end: ask.end,
    filters: filtersFor(ask.view, ""),
  });
  const types = await Promise.all(
    base.types.map(async (t) => {
      const filters = filtersFor(ask.view, t.eventType);
      if (Object.keys(filters).length === Object.keys(filtersFor(ask.view, "")).length) return t;
      const one = await ask.query.summary({
        eventType: t.eventType,
        start: startFor(ask, base.answered?.rawKeptSince, undefined, filters),
        end: ask.end,
        filters,
      });
      return one.types[0];
    }),
  );
  return { types: types.filter((t): t is TypeSummary => t !== undefined), answered: base.answered };
}

/** One line per type with events: `measure` of each, over time. */
function perTypeChart(
  measure: "count" | "error_rate" | "p95",
  unit: string,
  scale?: (ask: Ask) => (v: number) => number,
): Panel["fill"] {
  return async (ask, body) => {
    const types = (await ask.summary).types.filter((t) => measure !== "p95" || t.timedEvents > 0n);
    if (types.length === 0) return note(body, "No events in this range.");
    const times = stepTimes(ask);
    const label = (group: string) => group;
    const order = (lines: ReturnType<typeof linesOf>) =>
      types.flatMap((t) => lines.filter((l) => l.label === t.eventType));
    // Without a server or tool filter, every type in one call, split by type.
    if (ask.view.server === "" && ask.view.tool === "") {
      const answer = await ask.query.series({
        measure,
        step: ask.step,
        start: ask.start,
        end: ask.end,
        groupBy: "event_type",
        limit: 100,
        filters: filtersFor(ask.view, ""),
      });
      lineChart(body, times, order(linesOf(answer, times, label, scale?.(ask))), unit);
      return answer.answered;
    }
    const kept = await keptOf(ask);
    const answers = await Promise.all(
      types.map((t) => {
        const filters = filtersFor(ask.view, t.eventType);
        return ask.query.series({
          eventType: t.eventType,
          measure,
          step: ask.step,
          start: startFor(ask, kept, undefined, filters),
          end: ask.end,
          filters,
        });
      }),
    );
    const lines = answers.flatMap((a, i) =>
      linesOf(a, times, () => (types[i] as TypeSummary).eventType, scale?.(ask)),
    );
    lineChart(body, times, lines, unit);
    return answers[0]?.answered;
  };
}

/** A Top table of one type's dimension. */
function topTable(
  eventType: string,
  dimension: string,
  options: {
    order?: string;
    filters?: Record<string, string>;
    columns?: "errors";
  } = {},
): Panel["fill"] {
  return async (ask, body) => {
    const filters = { ...filtersFor(ask.view, eventType), ...options.filters };
    const answer = await ask.query.top({
      eventType,
      dimension,
      start: startFor(ask, await keptOf(ask), dimension, filters),
      end: ask.end,
      limit: 10,
      order: options.order ?? "count",
      filters,
    });
    if (answer.rows.length === 0) {
      note(body, "None in this range.");
      return answer.answered;
    }
    const head =
      options.columns === "errors"
        ? [dimension, "failures", "of", "p95"]
        : [dimension, "events", "errors", "p95"];
    const row = (r: TopRow) =>
      options.columns === "errors"
        ? [r.value, formatNumber(Number(r.errors)), formatNumber(Number(r.count)), ms(r.p95Ms)]
        : [r.value, formatNumber(Number(r.count)), formatNumber(Number(r.errors)), ms(r.p95Ms)];
    body.replaceChildren(table(head, answer.rows.map(row), `top-${eventType}-${dimension}`));
    return answer.answered;
  };
}

export const PANELS: readonly Panel[] = [
  {
    id: "summary",
    title: "Events, errors and latency per type",
    wide: true,
    async fill(ask, body) {
      const { types, answered } = await ask.summary;
      if (types.length === 0) {
        note(body, "No events in this range.");
        return answered;
      }
      body.replaceChildren(
        table(
          ["type", "events", "events/s", "errors", "error rate", "p50", "p95", "p99"],
          types.map((t) => [
            t.eventType,
            formatNumber(Number(t.events)),
            formatNumber(Number(t.events) / ask.rangeSeconds),
            formatNumber(Number(t.errors)),
            percent(t.errorRate),
            ms(t.p50Ms),
            ms(t.p95Ms),
            ms(t.p99Ms),
          ]),
          "summary",
        ),
      );
      return answered;
    },
  },
  {
    id: "rate",
    title: "Events per second, per type",
    fill: perTypeChart("count", "/s", (ask) => (v) => v / STEP_SECONDS[ask.step]),
  },
  {
    id: "errors",
    title: "Error rate, per type",
    fill: perTypeChart("error_rate", "", () => (v) => v * 100),
  },
  { id: "latency", title: "p95 latency, per type (ms)", fill: perTypeChart("p95", "ms") },
  { id: "tools", title: "Top tools", fill: topTable("tool_execution", "tool_name") },
  { id: "servers", title: "Top servers", fill: topTable("tool_execution", "server_name") },
  { id: "clients", title: "Top clients", fill: topTable("tool_execution", "client_name") },
  {
    id: "client-versions",
    title: "Top client versions",
    fill: topTable("tool_execution", "client_version"),
  },
  {
    id: "auth-methods",
    title: "Authentication failures by method",
    fill: topTable("auth_request", "method", { order: "errors", columns: "errors" }),
  },
  {
    id: "auth-users",
    title: "Authentication failures by hashed user",
    fill: topTable("auth_request", "user_hash", { filters: { success: "false" } }),
  },
  {
    id: "empty-searches",
    title: "Tool searches that found nothing",
    fill: topTable("tool_discovery", "query", { filters: { results_count: "0" } }),
  },
  {
    id: "flow",
    title: "Protocol-flow latency, p95 per step (ms)",
    async fill(ask, body) {
      const filters = filtersFor(ask.view, "protocol_latency");
      const answer = await ask.query.series({
        eventType: "protocol_latency",
        measure: "p95",
        step: ask.step,
        start: startFor(ask, await keptOf(ask), "flow_step", filters),
        end: ask.end,
        groupBy: "flow_step",
        filters,
      });
      if (answer.groups.length === 0) {
        note(body, "No protocol-flow events in this range.");
        return answer.answered;
      }
      const times = stepTimes(ask);
      lineChart(
        body,
        times,
        linesOf(answer, times, (g) => g),
        "ms",
      );
      return answer.answered;
    },
  },
  {
    id: "active-users",
    title: "Daily active hashed users",
    async fill(ask, body) {
      const kept = await keptOf(ask);
      const [auth, tools] = await Promise.all(
        ["auth_request", "tool_execution"].map((eventType) => {
          const filters = filtersFor(ask.view, eventType);
          return ask.query.series({
            eventType,
            measure: "active_users",
            step: "day",
            // Users are in the raw events only.
            start: startFor(ask, kept, "user_hash", filters),
            end: ask.end,
            filters,
          });
        }),
      );
      // Each line by its own points' times (a type without users has no group at all).
      const days = [
        ...new Set(
          [auth, tools].flatMap(
            (a) => a?.groups[0]?.points.map((p) => Number(p.time?.seconds)) ?? [],
          ),
        ),
      ].sort((a, b) => a - b);
      if (days.length === 0) {
        note(body, "No hashed users in this range.");
        return auth?.answered;
      }
      const values = (a: SeriesResponse | undefined) => {
        const byDay = new Map(a?.groups[0]?.points.map((p) => [Number(p.time?.seconds), p.value]));
        return days.map((d) => byDay.get(d) ?? 0);
      };
      lineChart(
        body,
        days,
        [
          { label: "authenticated", values: values(auth) },
          { label: "called tools", values: values(tools) },
        ],
        "users",
      );
      return auth?.answered;
    },
  },
  {
    id: "forecast",
    title: "Tool calls per day: trend and 30-day forecast",
    wide: true,
    async fill(ask, body) {
      const answer = await ask.query.forecast({
        eventType: "tool_execution",
        measure: "count",
        horizonDays: 30,
        historyDays: 90,
        filters: filtersFor(ask.view, "tool_execution"),
      });
      if (answer.unavailable !== "") {
        note(body, `No forecast: ${answer.unavailable}.`);
        return answer.answered;
      }
      const history = answer.history.map((p) => Number(p.time?.seconds));
      const future = answer.forecast.map((p) => Number(p.time?.seconds));
      const times = [...history, ...future];
      const pad = (n: number) => Array.from({ length: n }, () => null);
      const chart = el("div", { class: "chart" });
      const last = answer.forecast.at(-1);
      const description = el(
        "p",
        { class: "method", "data-testid": "forecast-method" },
        `${answer.method}. Trend ${formatNumber(answer.slopePerDay)} calls per day each day` +
          (last?.time
            ? `; ${timestampDate(last.time).toISOString().slice(0, 10)}: ${formatNumber(last.value)} (${formatNumber(last.lower)}–${formatNumber(last.upper)})`
            : "") +
          (answer.holdout
            ? `. On its last ${answer.holdout.days} days held out it was off by ${percent(answer.holdout.relativeError)}, ${percent(answer.holdout.coverage)} of them inside the band.`
            : "."),
      );
      body.replaceChildren(chart, description);
      forecastChart(chart, times, {
        history: [...answer.history.map((p) => p.value), ...pad(future.length)],
        trend: [...answer.fitted.map((p) => p.value), ...answer.forecast.map((p) => p.value)],
        lower: [...pad(history.length), ...answer.forecast.map((p) => p.lower)],
        upper: [...pad(history.length), ...answer.forecast.map((p) => p.upper)],
      });
      return answer.answered;
    },
  },
];

/** Fills one panel, its failure shown in it. */
export async function fillPanel(panel: Panel, ask: Ask, section: HTMLElement): Promise<void> {
  const body = section.querySelector<HTMLElement>(".body") as HTMLElement;
  const source = section.querySelector<HTMLElement>(".source") as HTMLElement;
  section.setAttribute("aria-busy", "true");
  try {
    source.textContent = sourcesText(await panel.fill(ask, body), ask.start);
  } catch (error) {
    note(body, messageOf(error), "error");
    source.textContent = "";
    throw error;
  } finally {
    section.setAttribute("aria-busy", "false");
  }
}

export function sectionOf(panel: Panel): HTMLElement {
  return el(
    "section",
    {
      class: panel.wide ? "panel wide" : "panel",
      id: panel.id,
      "data-testid": `panel-${panel.id}`,
    },
    el("h2", {}, panel.title),
    el("div", { class: "body" }),
    el("p", { class: "source" }),
  );
}
