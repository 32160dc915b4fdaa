/**
 * The history's rollups (docs/history.md): every committed event counted, in
 * the same transaction as its raw rows, per minute, hour and day, per service
 * and type (`metrics_minutely`, `metrics_hourly`, `metrics_daily`: the
 * legacy schema's aggregation tables, docs/legacy-contract.md §3) and per
 * value of each of its kind's dimensions (the `..._dimensions` tables: one
 * row per dimension and value, not per combination of values, so that a
 * gateway's rollups stay small whatever its labels' product). Each row keeps
 * the count, the errors, the value's and the latency's sums and bounds, and a
 * latency histogram from which percentiles are estimated.
 *
 * This module is the driver-free part: the grains and their tables, the
 * histogram, the aggregation of a commit's rows into cells, and the SQL both
 * backends run (their DDL and upserts differ only by {@link RollupDialect}).
 */
import type { EventRow } from "./rows.js";

/** A rollup's time grain, as the query API names its steps. */
export type Grain = "minute" | "hour" | "day";

/** One grain's tables. */
export interface GrainSpec {
  readonly name: Grain;
  /** Its length in ms. */
  readonly millis: number;
  /** Per service and type: the legacy aggregation table's shape. */
  readonly totals: string;
  /**
   * Per service, type, dimension and value; none for minutes, where a
   * gateway's events are too few per bucket for per-value rows to be fewer
   * than the events themselves (at the benchmark's 77 events a minute, about
   * seven rows per event).
   */
  readonly dimensions?: string;
  /**
   * Per type, dimension and value, summed over every service: what a
   * question about a dimension without a service filter reads, as many times
   * fewer rows than `dimensions` as there are services (days only: a range's
   * whole days are most of a long range's rows).
   */
  readonly acrossServices?: string;
  /** The legacy schema's name of the bucket column, a generated copy of `timestamp` (none for minutes). */
  readonly legacyBucketColumn?: { readonly name: string; readonly length: number };
  /** How long its rows are kept by default, in days (its retention policies). */
  readonly defaultRetentionDays: number;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** The grains, finest first. */
export const GRAINS: readonly GrainSpec[] = [
  {
    name: "minute",
    millis: MINUTE_MS,
    totals: "metrics_minutely",
    defaultRetentionDays: 30,
  },
  {
    name: "hour",
    millis: HOUR_MS,
    totals: "metrics_hourly",
    dimensions: "metrics_hourly_dimensions",
    legacyBucketColumn: { name: "hour_timestamp", length: 27 },
    defaultRetentionDays: 365,
  },
  {
    name: "day",
    millis: DAY_MS,
    totals: "metrics_daily",
    dimensions: "metrics_daily_dimensions",
    acrossServices: "metrics_daily_dimensions_all_services",
    legacyBucketColumn: { name: "date", length: 10 },
    defaultRetentionDays: 1095,
  },
];

/** A grain by name. */
export function grainOf(name: Grain): GrainSpec {
  return GRAINS.find((g) => g.name === name) as GrainSpec;
}

/** The primary key of a dimensions table, which is also what retention deletes by. */
export const DIMENSION_KEY = [
  "metric_type",
  "dimension",
  "timestamp",
  "service",
  "dimension_value",
] as const;

/** The primary key of an across-services table: a dimensions table's without `service`. */
export const ACROSS_KEY = ["metric_type", "dimension", "timestamp", "dimension_value"] as const;

/** The kinds of rollup table: per service and type, per dimension value, per value across services. */
export type RollupKind = "totals" | "dimensions" | "across";

/** The key columns of each kind of rollup table (their upserts' conflict target). */
export const ROLLUP_KEYS: Readonly<Record<RollupKind, readonly string[]>> = {
  totals: ["metric_type", "timestamp", "service"],
  dimensions: DIMENSION_KEY,
  across: ACROSS_KEY,
};

/** A grain's tables, totals first, with their kinds. */
export function tablesOf(g: GrainSpec): { readonly name: string; readonly kind: RollupKind }[] {
  return [
    { name: g.totals, kind: "totals" },
    ...(g.dimensions ? [{ name: g.dimensions, kind: "dimensions" as const }] : []),
    ...(g.acrossServices ? [{ name: g.acrossServices, kind: "across" as const }] : []),
  ];
}

/** A table retention sweeps: its rows age by `timestamp` and are deleted by `key`. */
export interface RetainedTable {
  readonly name: string;
  /** The columns that name a row (`id`, or a table's primary key). */
  readonly key: readonly string[];
  /** Its default retention in days; undefined: `METRICS_RETENTION_DAYS` (the raw tables). */
  readonly defaultDays?: number;
}

/** The rollup tables with their retention defaults, in grain order (totals, then dimensions). */
export const ROLLUP_TABLES: readonly RetainedTable[] = GRAINS.flatMap((g) =>
  tablesOf(g).map(({ name, kind }) => ({
    name,
    key: kind === "totals" ? ["id"] : ROLLUP_KEYS[kind],
    defaultDays: g.defaultRetentionDays,
  })),
);

/** The start of `timestamp`'s bucket of `grain`, in the stored format (fixed width, UTC). */
export function bucketOf(timestamp: string, grain: Grain): string {
  switch (grain) {
    case "minute":
      return `${timestamp.slice(0, 16)}:00.000000Z`;
    case "hour":
      return `${timestamp.slice(0, 13)}:00:00.000000Z`;
    case "day":
      return `${timestamp.slice(0, 10)}T00:00:00.000000Z`;
  }
}

/**
 * The latency histogram's upper bounds in ms: 0.1 ms times powers of √2, up
 * to about 105 s (41 bounds), and one bucket past the last. An estimate from
 * it is within a bucket's width, at most 41% and typically a few percent once
 * interpolated. The bounds are part of the schema: never change them (a new
 * histogram is a new set of columns, in a new migration).
 */
export const HISTOGRAM_BOUNDS_MS: readonly number[] = Array.from(
  { length: 41 },
  (_, i) => 0.1 * 2 ** (i / 2),
);

/** Buckets of the histogram: one per bound, and the one past the last. */
export const HISTOGRAM_BUCKETS = HISTOGRAM_BOUNDS_MS.length + 1;

/** The histogram's columns: `h00` counts latencies up to 0.1 ms, `h41` those past the last bound. */
export const HISTOGRAM_COLUMNS: readonly string[] = Array.from(
  { length: HISTOGRAM_BUCKETS },
  (_, i) => `h${String(i).padStart(2, "0")}`,
);

/** The bucket a latency falls in: the first whose bound it does not exceed. */
export function histogramBucket(ms: number): number {
  if (!(ms > 0.1)) return 0;
  const last = HISTOGRAM_BOUNDS_MS.length;
  if (!(ms <= (HISTOGRAM_BOUNDS_MS[last - 1] as number))) return last;
  let i = Math.min(last - 1, Math.ceil(2 * Math.log2(ms / 0.1) - 1e-9));
  // Floating point: step to the exact bucket.
  while (i > 0 && ms <= (HISTOGRAM_BOUNDS_MS[i - 1] as number)) i--;
  while (i < HISTOGRAM_BOUNDS_MS.length && ms > (HISTOGRAM_BOUNDS_MS[i] as number)) i++;
  return i;
}

/** What a rollup row sums: one event, or many. */
export interface Cell {
  count: number;
  errors: number;
  sumValue: number;
  minValue: number;
  maxValue: number;
  /** Events with a latency. */
  timed: number;
  sumLatency: number;
  minLatency: number | null;
  maxLatency: number | null;
  readonly histogram: number[];
}

/** An empty cell. */
export function emptyCell(): Cell {
  return {
    count: 0,
    errors: 0,
    sumValue: 0,
    minValue: Number.POSITIVE_INFINITY,
    maxValue: Number.NEGATIVE_INFINITY,
    timed: 0,
    sumLatency: 0,
    minLatency: null,
    maxLatency: null,
    histogram: new Array<number>(HISTOGRAM_BUCKETS).fill(0),
  };
}

/** Adds one event to a cell; `bucket` is its latency's histogram bucket. */
export function addEvent(cell: Cell, facts: RollupFacts, value: number, bucket: number): void {
  cell.count++;
  if (facts.failed) cell.errors++;
  cell.sumValue += value;
  if (value < cell.minValue) cell.minValue = value;
  if (value > cell.maxValue) cell.maxValue = value;
  const ms = facts.latencyMs;
  if (ms === null) return;
  cell.timed++;
  cell.sumLatency += ms;
  if (cell.minLatency === null || ms < cell.minLatency) cell.minLatency = ms;
  if (cell.maxLatency === null || ms > cell.maxLatency) cell.maxLatency = ms;
  (cell.histogram as number[])[bucket]++;
}

/** Adds `from` into `into`. */
export function mergeCell(into: Cell, from: Cell): void {
  into.count += from.count;
  into.errors += from.errors;
  into.sumValue += from.sumValue;
  into.minValue = Math.min(into.minValue, from.minValue);
  into.maxValue = Math.max(into.maxValue, from.maxValue);
  into.timed += from.timed;
  into.sumLatency += from.sumLatency;
  if (from.minLatency !== null && (into.minLatency === null || from.minLatency < into.minLatency))
    into.minLatency = from.minLatency;
  if (from.maxLatency !== null && (into.maxLatency === null || from.maxLatency > into.maxLatency))
    into.maxLatency = from.maxLatency;
  for (let i = 0; i < HISTOGRAM_BUCKETS; i++)
    (into.histogram as number[])[i] += from.histogram[i] as number;
}

/**
 * The latency below which a fraction `q` of a cell's timed events fall,
 * estimated from its histogram: interpolated within the bucket, whose range
 * is narrowed to the cell's observed minimum and maximum. Undefined without
 * timed events.
 */
export function quantileOf(cell: Cell, q: number): number | undefined {
  if (cell.timed === 0 || cell.minLatency === null || cell.maxLatency === null) return undefined;
  const rank = q * cell.timed;
  let below = 0;
  for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
    const n = cell.histogram[i] as number;
    if (n === 0 || below + n < rank) {
      below += n;
      continue;
    }
    const lower = Math.max(i === 0 ? 0 : (HISTOGRAM_BOUNDS_MS[i - 1] as number), cell.minLatency);
    const upper = Math.min(HISTOGRAM_BOUNDS_MS[i] ?? cell.maxLatency, cell.maxLatency);
    return lower + (upper - lower) * Math.min(1, Math.max(0, (rank - below) / n));
  }
  return cell.maxLatency;
}

/**
 * What the rollups need of one event, worked out where it is rendered
 * (src/ingest/normalize.ts) from its typed fields.
 */
export interface RollupFacts {
  /** Its kind's dimensions that it has, each with its value as text (`true`, an enum's legacy name). */
  readonly dimensions: readonly (readonly [name: string, value: string])[];
  /** Whether its outcome field is false. */
  readonly failed: boolean;
  /** Its latency in ms: its duration, or for a kind whose histogram is of the value, the value in seconds as ms. */
  readonly latencyMs: number | null;
}

/** A cell of one grain's totals table: its key and its sums. */
export interface TotalsCell {
  readonly timestamp: string;
  readonly service: string;
  readonly metricType: string;
  readonly cell: Cell;
}

/** A cell of one grain's dimensions table. */
export interface DimensionCell extends TotalsCell {
  readonly dimension: string;
  readonly value: string;
}

/**
 * One grain's cells of a commit, sorted by key (so that concurrent commits
 * lock rows in one order); `dimensions` is empty for a grain without its
 * dimensions table.
 */
export interface GrainCells {
  readonly grain: GrainSpec;
  readonly totals: readonly TotalsCell[];
  readonly dimensions: readonly DimensionCell[];
  /** Its dimensions' cells summed over the services (`service` empty); empty without its table. */
  readonly across: readonly DimensionCell[];
}

const SEP = "\u0000";

/** What {@link rollUp} reads of a row. */
export type RollupRow = Pick<EventRow, "timestamp" | "service" | "metricType" | "value" | "rollup">;

/** A minute's totals cell with its dimensions' cells, by dimension and value. */
interface MinuteCells {
  readonly total: TotalsCell;
  readonly dimensions: Map<string, Map<string, DimensionCell>>;
}

/** `map.get(key)`, made by `make` the first time. */
function getOrMake<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/**
 * Sums a commit's rows into the cells of every grain: each row into its
 * minute's totals and into each of its dimensions' values (nested maps keyed
 * by the rows' own strings, no key built per row), then the minutes' cells
 * into their hours and days.
 */
export function rollUp(rows: Iterable<RollupRow>): GrainCells[] {
  // type → minute → service → cells
  const byType = new Map<string, Map<string, Map<string, MinuteCells>>>();
  const minutes: MinuteCells[] = [];
  let lastPrefix = "";
  let minute = "";
  for (const row of rows) {
    const prefix = row.timestamp.slice(0, 16);
    if (prefix !== lastPrefix) {
      lastPrefix = prefix;
      minute = `${prefix}:00.000000Z`;
    }
    const byMinute = getOrMake(byType, row.metricType, () => new Map());
    const byService = getOrMake(byMinute, minute, () => new Map());
    const at = minute;
    const cells = getOrMake(byService, row.service, () => {
      const made: MinuteCells = {
        total: {
          timestamp: at,
          service: row.service,
          metricType: row.metricType,
          cell: emptyCell(),
        },
        dimensions: new Map(),
      };
      minutes.push(made);
      return made;
    });
    const facts = row.rollup;
    const bucket = facts.latencyMs === null ? 0 : histogramBucket(facts.latencyMs);
    addEvent(cells.total.cell, facts, row.value, bucket);
    for (const [dimension, value] of facts.dimensions) {
      const byValue = getOrMake(cells.dimensions, dimension, () => new Map());
      const cell = getOrMake(byValue, value, () => ({
        ...cells.total,
        dimension,
        value,
        cell: emptyCell(),
      }));
      addEvent(cell.cell, facts, row.value, bucket);
    }
  }
  const totals = minutes.map((m) => m.total);
  const dimensions = minutes.flatMap((m) =>
    [...m.dimensions.values()].flatMap((v) => [...v.values()]),
  );
  const minuteGrain = GRAINS[0] as GrainSpec;
  return GRAINS.map((grain) => {
    const own =
      grain === minuteGrain
        ? { totals, dimensions: grain.dimensions ? dimensions : [] }
        : { totals: coarsen(totals, grain.name), dimensions: coarsen(dimensions, grain.name) };
    const across = grain.acrossServices
      ? coarsen(
          own.dimensions.map((c) => ({ ...c, service: "" })),
          grain.name,
        )
      : [];
    return {
      grain,
      totals: sorted(own.totals),
      dimensions: sorted(own.dimensions),
      across: sorted(across),
    };
  });
}

/** Key order for the sort: type, dimension, bucket, service, value (the tables' key order). */
function keyOf(c: TotalsCell | DimensionCell): string {
  const d = "dimension" in c ? c : undefined;
  return `${c.metricType}${SEP}${d?.dimension ?? ""}${SEP}${c.timestamp}${SEP}${c.service}${SEP}${d?.value ?? ""}`;
}

/** Cells in key order, each key made once. */
function sorted<T extends TotalsCell>(cells: Iterable<T>): T[] {
  return [...cells]
    .map((cell) => ({ cell, key: keyOf(cell) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((k) => k.cell);
}

/**
 * Minute cells summed into the buckets of a coarser grain. A bucket of one
 * minute's cell shares that cell (a commit's events mostly fall in one
 * minute); it is copied only when a second one is added to it.
 */
function coarsen<T extends TotalsCell>(cells: Iterable<T>, grain: Grain): T[] {
  const out = new Map<string, { merged: T; owned: boolean }>();
  for (const c of cells) {
    const moved = { ...c, timestamp: bucketOf(c.timestamp, grain) };
    const key = keyOf(moved);
    const existing = out.get(key);
    if (existing === undefined) {
      out.set(key, { merged: moved, owned: false });
      continue;
    }
    if (!existing.owned) {
      existing.merged = { ...existing.merged, cell: copyCell(existing.merged.cell) };
      existing.owned = true;
    }
    mergeCell(existing.merged.cell, c.cell);
  }
  return [...out.values()].map((e) => e.merged);
}

/** A copy of a cell. */
export function copyCell(cell: Cell): Cell {
  const copy = emptyCell();
  mergeCell(copy, cell);
  return copy;
}

/** What differs in the rollups' SQL between the backends. */
export interface RollupDialect {
  readonly real: string;
  readonly integer: string;
  readonly idColumn: string;
  readonly now: string;
  /** A column computed from `timestamp`: SQLite's virtual, PostgreSQL's stored. */
  readonly generated: (expression: string) => string;
  /** After a dimensions table's definition: SQLite stores it in its key's order. */
  readonly clusteredByKey: string;
  /** The smaller of two values either of which may be NULL. */
  readonly least: (a: string, b: string) => string;
  readonly greatest: (a: string, b: string) => string;
}

/** The columns both kinds of rollup tables sum, after their keys. */
const SUM_COLUMNS = (d: RollupDialect): string[] => [
  `count ${d.integer} NOT NULL DEFAULT 0`,
  `errors ${d.integer} NOT NULL DEFAULT 0`,
];
const LATENCY_COLUMNS = (d: RollupDialect): string[] => [
  `duration_count ${d.integer} NOT NULL DEFAULT 0`,
  `sum_duration_ms ${d.real} NOT NULL DEFAULT 0`,
  `min_duration_ms ${d.real}`,
  `max_duration_ms ${d.real}`,
  ...HISTOGRAM_COLUMNS.map((h) => `${h} ${d.integer} NOT NULL DEFAULT 0`),
];

/** The rollups' tables and indexes, as the migration that adds them creates them. */
export function rollupSchemaSql(d: RollupDialect): string {
  return GRAINS.map((g) => {
    const legacy = g.legacyBucketColumn;
    const totals = [
      `id ${d.idColumn}`,
      "service TEXT NOT NULL",
      "metric_type TEXT NOT NULL",
      "timestamp TEXT NOT NULL",
      ...(legacy
        ? [
            `${legacy.name} TEXT ${d.generated(legacy.length === 27 ? "timestamp" : `substr(timestamp, 1, ${legacy.length})`)}`,
          ]
        : []),
      ...SUM_COLUMNS(d),
      `sum_value ${d.real} NOT NULL DEFAULT 0`,
      `avg_value ${d.real}`,
      `min_value ${d.real}`,
      `max_value ${d.real}`,
      `avg_duration_ms ${d.real}`,
      ...LATENCY_COLUMNS(d),
      `created_at TEXT NOT NULL DEFAULT (${d.now})`,
      `updated_at TEXT NOT NULL DEFAULT (${d.now})`,
      "UNIQUE (metric_type, timestamp, service)",
    ];
    const perValue = (key: readonly string[]) => [
      ...key.map((c) => `${c} TEXT NOT NULL`),
      ...SUM_COLUMNS(d),
      ...LATENCY_COLUMNS(d),
      `PRIMARY KEY (${key.join(", ")})`,
    ];
    const perValueTable = (name: string | undefined, key: readonly string[]) =>
      name
        ? `CREATE TABLE ${name} (
  ${perValue(key).join(",\n  ")}
)${d.clusteredByKey};
CREATE INDEX idx_${name}_timestamp ON ${name} (timestamp);
`
        : "";
    return `
CREATE TABLE ${g.totals} (
  ${totals.join(",\n  ")}
);
CREATE INDEX idx_${g.totals}_timestamp ON ${g.totals} (timestamp);
${perValueTable(g.dimensions, DIMENSION_KEY)}${perValueTable(g.acrossServices, ACROSS_KEY)}`;
  }).join("");
}

/** The values a totals row is inserted with, in {@link TOTALS_INSERT} order. */
const TOTALS_INSERT: readonly string[] = [
  "metric_type",
  "timestamp",
  "service",
  "count",
  "errors",
  "sum_value",
  "avg_value",
  "min_value",
  "max_value",
  "avg_duration_ms",
  "duration_count",
  "sum_duration_ms",
  "min_duration_ms",
  "max_duration_ms",
  ...HISTOGRAM_COLUMNS,
];

/** The values a dimensions row is inserted with. */
const DIMENSIONS_INSERT: readonly string[] = [
  ...DIMENSION_KEY,
  "count",
  "errors",
  "duration_count",
  "sum_duration_ms",
  "min_duration_ms",
  "max_duration_ms",
  ...HISTOGRAM_COLUMNS,
];

/**
 * Which histogram columns a row of a cell needs: all of them, or (`Bucket`)
 * only the one bucket its timed events fell in, or none (-1) when it has
 * none. Most cells of a commit hold an event or two, and a statement that
 * binds and adds one histogram column instead of 42 costs about half as much
 * (the other columns keep their value, or their default 0 in a new row).
 */
export type HistogramColumns = "all" | Bucket;

/** A histogram bucket's index, or -1 for none. */
export type Bucket = number;

/** The histogram columns `cell` needs (see {@link HistogramColumns}). */
export function histogramColumnsOf(cell: Cell): HistogramColumns {
  let only: Bucket = -1;
  for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
    if (cell.histogram[i] === 0) continue;
    if (only !== -1) return "all";
    only = i;
  }
  return only;
}

/** The histogram's columns of a row, as {@link HistogramColumns} says. */
function histogramColumns(columns: HistogramColumns): readonly string[] {
  if (columns === "all") return HISTOGRAM_COLUMNS;
  return columns === -1 ? [] : [HISTOGRAM_COLUMNS[columns] as string];
}

/** The columns a row of a `kind` table is inserted with, with `histogram`'s columns only. */
export function insertColumns(
  kind: RollupKind,
  histogram: HistogramColumns = "all",
): readonly string[] {
  const all =
    kind === "totals"
      ? TOTALS_INSERT
      : kind === "dimensions"
        ? DIMENSIONS_INSERT
        : DIMENSIONS_INSERT.filter((c) => c !== "service");
  return [...all.slice(0, -HISTOGRAM_BUCKETS), ...histogramColumns(histogram)];
}

/** A cell's values for a row of a `kind` table, in {@link insertColumns} order. */
export function cellValues(
  kind: RollupKind,
  c: TotalsCell | DimensionCell,
  histogram: HistogramColumns = "all",
): (string | number | null)[] {
  if (kind === "totals") return totalsValues(c, histogram);
  const d = c as DimensionCell;
  // In ROLLUP_KEYS[kind] order: the across-services key has no service.
  const key =
    kind === "dimensions"
      ? [d.metricType, d.dimension, d.timestamp, d.service, d.value]
      : [d.metricType, d.dimension, d.timestamp, d.value];
  return [...key, ...sums(d.cell), ...latency(d.cell, histogram)];
}

/** A cell's sums, as its row's columns after the key. */
function sums(cell: Cell): (number | null)[] {
  return [cell.count, cell.errors];
}
function latency(cell: Cell, histogram: HistogramColumns): (number | null)[] {
  const head = [cell.timed, cell.sumLatency, cell.minLatency, cell.maxLatency];
  if (histogram === "all") return [...head, ...cell.histogram];
  return histogram === -1 ? head : [...head, cell.histogram[histogram] as number];
}

/** A totals cell's values, in {@link insertColumns} order. */
function totalsValues(
  c: TotalsCell,
  histogram: HistogramColumns = "all",
): (string | number | null)[] {
  const { cell } = c;
  return [
    c.metricType,
    c.timestamp,
    c.service,
    ...sums(cell),
    cell.sumValue,
    cell.sumValue / cell.count,
    cell.minValue,
    cell.maxValue,
    cell.timed > 0 ? cell.sumLatency / cell.timed : null,
    ...latency(cell, histogram),
  ];
}

/** How a conflicting row takes a delta, column by column (`t` is the table, `x` the delta). */
function mergeAssignments(
  d: RollupDialect,
  t: string,
  x: string,
  totals: boolean,
  histogram: HistogramColumns,
): string[] {
  const add = (c: string) => `${c} = ${t}.${c} + ${x}.${c}`;
  return [
    add("count"),
    add("errors"),
    ...(totals
      ? [
          add("sum_value"),
          `avg_value = (${t}.sum_value + ${x}.sum_value) / (${t}.count + ${x}.count)`,
          `min_value = ${d.least(`${t}.min_value`, `${x}.min_value`)}`,
          `max_value = ${d.greatest(`${t}.max_value`, `${x}.max_value`)}`,
          `avg_duration_ms = CASE WHEN ${t}.duration_count + ${x}.duration_count > 0 THEN (${t}.sum_duration_ms + ${x}.sum_duration_ms) / (${t}.duration_count + ${x}.duration_count) END`,
          `updated_at = ${d.now}`,
        ]
      : []),
    add("duration_count"),
    add("sum_duration_ms"),
    `min_duration_ms = ${d.least(`${t}.min_duration_ms`, `${x}.min_duration_ms`)}`,
    `max_duration_ms = ${d.greatest(`${t}.max_duration_ms`, `${x}.max_duration_ms`)}`,
    ...histogramColumns(histogram).map(add),
  ];
}

/**
 * The `ON CONFLICT` clause that adds a delta row into an existing one, for a
 * table of `kind`, with `histogram`'s columns.
 */
export function rollupConflictClause(
  d: RollupDialect,
  table: string,
  kind: RollupKind,
  histogram: HistogramColumns = "all",
): string {
  const assignments = mergeAssignments(d, table, "excluded", kind === "totals", histogram);
  return `ON CONFLICT (${ROLLUP_KEYS[kind].join(", ")}) DO UPDATE SET ${assignments.join(", ")}`;
}

/** The rollups' SQL on SQLite. */
export const SQLITE_ROLLUPS: RollupDialect = {
  real: "REAL",
  integer: "INTEGER",
  idColumn: "INTEGER PRIMARY KEY AUTOINCREMENT",
  now: "datetime('now')",
  generated: (expression) => `GENERATED ALWAYS AS (${expression}) VIRTUAL`,
  clusteredByKey: " WITHOUT ROWID",
  least: (a, b) => `min(coalesce(${a}, ${b}), coalesce(${b}, ${a}))`,
  greatest: (a, b) => `max(coalesce(${a}, ${b}), coalesce(${b}, ${a}))`,
};

/** The rollups' SQL on PostgreSQL (`now` as the other tables' text defaults). */
export const PG_ROLLUPS: RollupDialect = {
  real: "DOUBLE PRECISION",
  integer: "BIGINT",
  idColumn: "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
  now: "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')",
  generated: (expression) => `GENERATED ALWAYS AS (${expression}) STORED`,
  clusteredByKey: "",
  least: (a, b) => `LEAST(${a}, ${b})`,
  greatest: (a, b) => `GREATEST(${a}, ${b})`,
};
