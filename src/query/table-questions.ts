/**
 * Raw questions answered in SQL by one kind's own table (docs/history.md,
 * "Which source answers"): when every dimension a question names is a column
 * of its kind's specialized table (`auth_metrics.user_hash`,
 * `discovery_metrics.query`, ...), the database groups and counts the rows
 * along their timestamp index, where reading each event and lifting its
 * dimensions here cost about 10 µs an event. The answers are the raw path's,
 * value for value (test/history/query-api.test.ts compares them).
 */
import type { EventKind, TypedField } from "../catalog/catalog.js";
import type { HistoryReader, SqlValue } from "../storage/backend.js";
import { type Cell, emptyCell, type Grain, HISTOGRAM_BOUNDS_MS } from "../storage/rollups.js";
import { storedTimeOfMillis } from "../storage/stored-time.js";
import type { Selection } from "./history.js";

/** A question one kind's table answers: its table, conditions and how its columns read as dimensions. */
export interface TableQuestion {
  readonly table: string;
  /** The range and each filter on its column, `?` placeholders. */
  readonly where: string;
  readonly params: readonly SqlValue[];
  /** The outcome's failed condition, when the kind has an outcome. */
  readonly failed?: string;
  /** A column by dimension name. */
  column(name: string): Column;
}

interface Column {
  readonly name: string;
  /** A stored value as the raw events' dimension text. */
  text(value: SqlValue): string;
}

/** `service` is a column of every specialized table. */
const SERVICE: Column = { name: "service", text: String };

function columnOf(field: TypedField & { readonly column: { readonly name: string } }): Column {
  return {
    name: field.column.name,
    text: (value) =>
      field.type === "bool"
        ? String(value === true || value === 1 || value === "1")
        : String(value),
  };
}

/**
 * A filter's text as its column's value, as the raw path compares them (the
 * dimension's text equal to the filter's): undefined when no stored value
 * renders as that text.
 */
function parameterOf(field: TypedField, text: string): SqlValue | undefined {
  switch (field.type) {
    case "string":
      return text;
    case "bool":
      // 1 and 0: better-sqlite3 binds no boolean, and PostgreSQL reads '1' as true.
      return text === "true" ? 1 : text === "false" ? 0 : undefined;
    case "int":
    case "double": {
      const n = Number(text);
      return text !== "" && String(n) === text ? n : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * The table question of a selection naming `names` (its filters' and the
 * dimensions asked), or undefined when the table cannot answer it: more than
 * one kind, a kind without a table or whose latency is not its duration, a
 * name that is no column of it.
 */
export function tableQuestion(
  selection: Selection,
  names: readonly string[],
): TableQuestion | undefined {
  const [kind, ...others] = selection.kinds;
  if (kind === undefined || others.length > 0 || kind.table === undefined) return undefined;
  if (kind.histogram !== undefined && kind.histogram.source !== "duration_ms") return undefined;
  const fields = new Map(kind.table.fields.map((f) => [f.name, f]));
  const columns = new Map<string, Column>([["service", SERVICE]]);
  for (const name of [...names, ...selection.filters.keys()]) {
    if (columns.has(name)) continue;
    const field = fields.get(name);
    if (field === undefined || field.type === "enum") return undefined;
    columns.set(name, columnOf(field));
  }
  const where = ["timestamp >= ?", "timestamp < ?"];
  const params: SqlValue[] = [
    storedTimeOfMillis(selection.startMs),
    storedTimeOfMillis(selection.endMs),
  ];
  for (const [name, text] of selection.filters) {
    const field = fields.get(name);
    const value = field === undefined ? text : parameterOf(field, text);
    if (value === undefined) {
      where.push("1 = 0");
      continue;
    }
    where.push(`${(columns.get(name) as Column).name} = ?`);
    params.push(value);
  }
  const outcome = outcomeColumn(kind);
  return {
    table: kind.table.name,
    where: where.join(" AND "),
    params,
    ...(outcome === undefined ? {} : { failed: `NOT ${outcome}` }),
    column: (name) => columns.get(name) as Column,
  };
}

function outcomeColumn(kind: EventKind): string | undefined {
  const outcome = kind.outcome;
  if (outcome === undefined) return undefined;
  return kind.table?.fields.find((f) => f.name === outcome.name)?.column.name;
}

type CountRow = { value: SqlValue; count: string | number; errors: string | number | null };

/**
 * Each value of `dimension` with its events and errors, and the latency
 * histograms of the values `histogramsOf` keeps (a Top's answered rows).
 */
export async function topFromTable(
  reader: HistoryReader,
  q: TableQuestion,
  dimension: string,
  keep: (cells: ReadonlyMap<string, Cell>) => readonly string[],
): Promise<Map<string, Cell>> {
  const column = q.column(dimension);
  const errors = q.failed === undefined ? "0" : `sum(CASE WHEN ${q.failed} THEN 1 ELSE 0 END)`;
  const rows = await reader.all<CountRow>(
    `SELECT ${column.name} AS value, count(*) AS count, ${errors} AS errors FROM ${q.table}
     WHERE ${q.where} AND ${column.name} IS NOT NULL GROUP BY ${column.name}`,
    q.params,
  );
  const cells = new Map<string, Cell>();
  for (const row of rows) {
    const cell = emptyCell();
    cell.count = Number(row.count);
    cell.errors = Number(row.errors ?? 0);
    cells.set(column.text(row.value), cell);
  }
  const kept = keep(cells);
  if (kept.length === 0) return cells;
  // The kept values' latency histograms, bucketed and summed by the database.
  const stored = new Map(rows.map((r) => [column.text(r.value), r.value]));
  const values = kept.map((v) => stored.get(v) as SqlValue);
  const buckets = await reader.arrays(
    `SELECT ${column.name}, ${BUCKET_SQL} AS bucket, count(*), sum(duration_ms), min(duration_ms), max(duration_ms)
     FROM ${q.table}
     WHERE ${q.where} AND ${column.name} IN (${values.map(() => "?").join(", ")}) AND duration_ms IS NOT NULL
     GROUP BY ${column.name}, ${BUCKET_SQL}`,
    [...q.params, ...values],
  );
  for (const [value, bucket, n, sum, min, max] of buckets) {
    const cell = cells.get(column.text(value as SqlValue)) as Cell;
    cell.timed += Number(n);
    cell.sumLatency += Number(sum);
    cell.minLatency = Math.min(cell.minLatency ?? Number.POSITIVE_INFINITY, Number(min));
    cell.maxLatency = Math.max(cell.maxLatency ?? Number.NEGATIVE_INFINITY, Number(max));
    (cell.histogram as number[])[Number(bucket)] += Number(n);
  }
  return cells;
}

/**
 * The histogram bucket of `duration_ms` in SQL, as {@link histogramBucket}
 * computes it: the first bound it does not exceed, past the last the last
 * bucket. Each bound is written as JavaScript prints it, which both engines
 * read back as the same double.
 */
const BUCKET_SQL = `CASE ${HISTOGRAM_BOUNDS_MS.map((b, i) => `WHEN duration_ms <= ${b} THEN ${i}`).join(" ")} ELSE ${HISTOGRAM_BOUNDS_MS.length} END`;

/** Characters of a stored timestamp that name its minute, hour or day. */
const STEP_PREFIX: Readonly<Record<Grain, number>> = { minute: 16, hour: 13, day: 10 };
/** What completes each prefix to a time Date.parse reads. */
const STEP_SUFFIX: Readonly<Record<Grain, string>> = {
  minute: ":00Z",
  hour: ":00:00Z",
  day: "T00:00:00Z",
};

/** Distinct values of `dimension` per step start (epoch ms). */
export async function distinctPerStep(
  reader: HistoryReader,
  q: TableQuestion,
  dimension: string,
  step: Grain,
): Promise<Map<number, number>> {
  const column = q.column(dimension).name;
  const rows = await reader.all<{ at: string; users: string | number }>(
    `SELECT substr(timestamp, 1, ${STEP_PREFIX[step]}) AS at, count(DISTINCT ${column}) AS users
     FROM ${q.table} WHERE ${q.where} AND ${column} IS NOT NULL
     GROUP BY substr(timestamp, 1, ${STEP_PREFIX[step]})`,
    q.params,
  );
  return new Map(rows.map((r) => [Date.parse(`${r.at}${STEP_SUFFIX[step]}`), Number(r.users)]));
}
