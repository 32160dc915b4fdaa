/**
 * The history's questions (docs/history.md): Summary, Series and Top from
 * the rollups, Events and Export from the raw events, on either backend
 * through its {@link HistoryReader}. Requests arrive checked
 * (./query-rpc.ts); answers say which sources served them.
 */
import { EVENT_KINDS, type EventKind } from "../catalog/catalog.js";
import { rollupRowOfStored, storedDimensions } from "../ingest/normalize.js";
import type { HistoryReader, SqlValue } from "../storage/backend.js";
import type { StoredEventRow } from "../storage/rollup-backfill.js";
import {
  addEvent,
  type Cell,
  copyCell,
  emptyCell,
  GRAINS,
  type Grain,
  grainOf,
  HISTOGRAM_COLUMNS,
  histogramBucket,
  mergeCell,
  quantileOf,
  tablesOf,
} from "../storage/rollups.js";
import { storedTimeOfMillis } from "../storage/stored-time.js";
import { floorTo, type Piece, planPieces, type Span } from "./plan.js";
import { distinctPerStep, tableQuestion, topFromTable } from "./table-questions.js";

/** A history question's selection. */
export interface Selection extends Span {
  /** The kinds asked about (one, or every kind when no type was given). */
  readonly kinds: readonly EventKind[];
  /** Dimension equality, `service` among them. */
  readonly filters: ReadonlyMap<string, string>;
}

/** What served part of an answer. */
export interface SourceSpan extends Span {
  readonly grain: Grain | "raw";
}

/** The range an answer covers and its sources. */
export interface Answered extends Span {
  readonly sources: readonly SourceSpan[];
}

/** A question only the raw events can answer, over a range they no longer hold. */
export class BeyondRawRetentionError extends Error {
  constructor(
    readonly reason: string,
    readonly keptSinceMs: number,
  ) {
    super(
      `${reason}, and the raw events are kept only since ${storedTimeOfMillis(keptSinceMs)} (retention of the metrics table): ask for a range that starts after it`,
    );
    this.name = "BeyondRawRetentionError";
  }
}

/** Where each grain's rollups and the raw events start, by their retention (epoch ms). */
export interface Horizons {
  readonly rollups: Readonly<Record<Grain, number>>;
  readonly raw: number;
  /**
   * Each raw table's own (a specialized table may keep less than `metrics`):
   * a question answered from one (./table-questions.ts) is asked only within it.
   */
  readonly tables: Readonly<Record<string, number>>;
}

/** Options of {@link createHistory}. */
export interface HistoryOptions {
  readonly reader: HistoryReader;
  /** The retention horizons now. */
  readonly horizons: () => Horizons;
}

/** The answers. */
export interface History {
  summary(selection: Selection): Promise<{ types: TypeTotals[]; answered: Answered }>;
  series(
    selection: Selection & {
      readonly step: Grain;
      /** Only what it needs is read: the histograms for a percentile. */
      readonly measure: Measure;
      readonly groupBy?: string;
      readonly limit: number;
    },
  ): Promise<{ groups: SeriesGroup[]; answered: Answered }>;
  top(
    selection: Selection & {
      readonly dimension: string;
      readonly limit: number;
      readonly order: "count" | "errors" | "p95";
    },
  ): Promise<{ rows: TopRow[]; answered: Answered }>;
  /**
   * Distinct `user_hash` values per step (and group), from the raw events:
   * the rollups keep no user. Groups ranked by their distinct users over the
   * range; the rest are one `_other` group, its users each counted once.
   */
  activeUsers(
    selection: Selection & {
      readonly step: Grain;
      readonly groupBy?: string;
      readonly limit: number;
    },
  ): Promise<{ groups: ActiveUserGroup[]; answered: Answered }>;
  /** Raw events, newest first, after the `after` cursor. */
  events(selection: Selection, pageSize: number, after?: Cursor): Promise<EventsPage>;
  /** Where the raw events and each grain's rollups start now, by their retention. */
  horizons(): Horizons;
  /** Every matching raw event, oldest first, in chunks. */
  export(selection: Selection, chunkSize: number): AsyncGenerator<StoredEvent[]>;
  /**
   * The same as NDJSON ({@link ndjsonLine}), a chunk's lines in one string.
   * Without dimension filters the engine builds each line's text, which
   * roughly halved a row's cost on SQLite; with them the rows are read whole,
   * filtered and rendered here.
   */
  exportNdjson(selection: Selection, chunkSize: number): AsyncGenerator<string>;
}

/** One type's totals. */
export interface TypeTotals {
  readonly eventType: string;
  readonly cell: Cell;
}

/** A series: its group (empty: all) and each step's cell. */
export interface SeriesGroup {
  readonly group: string;
  /** Step start (epoch ms) to its cell. */
  readonly steps: ReadonlyMap<number, Cell>;
}

/** A series of distinct users: its group (empty: all) and each step's count. */
export interface ActiveUserGroup {
  readonly group: string;
  /** Step start (epoch ms) to the distinct users in it. */
  readonly steps: ReadonlyMap<number, number>;
}

/** The dimension {@link History.activeUsers} counts distinct values of. */
export const USER_DIMENSION = "user_hash";

/** One value of a dimension. */
export interface TopRow {
  readonly value: string;
  readonly cell: Cell;
}

/** A raw event as stored. */
export interface StoredEvent extends StoredEventRow {
  readonly serviceVersion: string | null;
  readonly instanceId: string | null;
  readonly requestId: string;
  readonly keyService: string | null;
}

/** Where a page of raw events ended. */
export interface Cursor {
  readonly timestamp: string;
  readonly id: number;
}

/** A page of raw events, and the cursor of the next one. */
export interface EventsPage {
  readonly events: StoredEvent[];
  readonly next?: Cursor;
}

/** The measures of a series. */
export const MEASURES = {
  count: (c: Cell) => c.count,
  errors: (c: Cell) => c.errors,
  error_rate: (c: Cell) => (c.count > 0 ? c.errors / c.count : undefined),
  p50: (c: Cell) => quantileOf(c, 0.5),
  p95: (c: Cell) => quantileOf(c, 0.95),
  p99: (c: Cell) => quantileOf(c, 0.99),
  mean_duration: (c: Cell) => (c.timed > 0 ? c.sumLatency / c.timed : undefined),
} as const satisfies Record<string, (c: Cell) => number | undefined>;

export type Measure = keyof typeof MEASURES;

/** Rows of raw events read per statement. */
const RAW_CHUNK = 5_000;

/** The sums a rollup query reads, as aliases of its columns, the histogram's aside. */
const TOTAL_COLUMNS = [
  "CAST(sum(count) AS BIGINT) AS count",
  "CAST(sum(errors) AS BIGINT) AS errors",
  "CAST(sum(duration_count) AS BIGINT) AS timed",
  "sum(sum_duration_ms) AS sum_latency",
  "min(min_duration_ms) AS min_latency",
  "max(max_duration_ms) AS max_latency",
].join(", ");

/**
 * The histogram's sums: 42 of the 48 a rollup query may compute, so read
 * only for a question about percentiles (summing them over 90 days of a
 * tool's daily rows was most of such a question's time).
 */
const HISTOGRAM_SUMS = HISTOGRAM_COLUMNS.map((h) => `CAST(sum(${h}) AS BIGINT) AS ${h}`).join(", ");

type CellRow = Record<string, string | number | null>;

/** A rollup query's row as a cell. */
function cellOf(row: CellRow): Cell {
  const cell = emptyCell();
  cell.count = Number(row.count);
  cell.errors = Number(row.errors);
  cell.timed = Number(row.timed);
  cell.sumLatency = Number(row.sum_latency ?? 0);
  cell.minLatency = row.min_latency === null ? null : Number(row.min_latency);
  cell.maxLatency = row.max_latency === null ? null : Number(row.max_latency);
  if (row.h00 !== undefined) {
    HISTOGRAM_COLUMNS.forEach((h, i) => {
      cell.histogram[i] = Number(row[h] ?? 0);
    });
  }
  return cell;
}

/** Adds `cell` into `map` under `key`. */
function addTo<K>(map: Map<K, Cell>, key: K, cell: Cell): void {
  const existing = map.get(key);
  if (existing === undefined) map.set(key, cell);
  else mergeCell(existing, cell);
}

/** Parses a stored timestamp (`2026-12-07T13:00:00.000000Z`) to epoch ms. */
export function millisOfStored(text: string): number {
  return Date.parse(`${text.slice(0, 23)}Z`);
}

/** The dimensions a kind's rollups count it by. */
const rolledUp = (kind: EventKind, dimension: string) => kind.labels.includes(dimension);

/**
 * How a selection (and a dimension to split by) is answered from the
 * rollups: the one label filter and the dimension must be the same, since
 * each dimension is counted on its own. Undefined: only raw events answer.
 */
function rollupPlan(
  selection: Selection,
  dimension: string | undefined,
): { dimension?: string; value?: string } | undefined {
  const labelFilters = [...selection.filters].filter(([name]) => name !== "service");
  if (labelFilters.length > 1) return undefined;
  const [filter] = labelFilters;
  if (dimension !== undefined && filter !== undefined && filter[0] !== dimension) return undefined;
  const asked = dimension ?? filter?.[0];
  if (asked === undefined) return {};
  if (!selection.kinds.some((k) => rolledUp(k, asked))) return undefined;
  return { dimension: asked, ...(filter ? { value: filter[1] } : {}) };
}

/** Why a question needs the raw events, for its error beyond raw retention. */
function rawReason(selection: Selection, dimension: string | undefined): string {
  const named = [...selection.filters.keys(), ...(dimension ? [dimension] : [])].filter(
    (d) => d !== "service",
  );
  const raw = named.filter((d) => !selection.kinds.some((k) => rolledUp(k, d)));
  return raw.length > 0
    ? `${raw.join(", ")} ${raw.length > 1 ? "are" : "is"} kept only in the raw events (the rollups count bounded dimensions only)`
    : `the rollups count each dimension on its own, so ${named.join(" and ")} together are answered from the raw events`;
}

/** Creates the history's answers over a backend's reader. */
export function createHistory(options: HistoryOptions): History {
  const { reader } = options;

  /**
   * Reads a rollup piece's cells, grouped by `groupBy` (columns), with their
   * histograms when `histogram` is true, and only the values `only` lists of
   * its column when it is given.
   */
  const readPiece = async (
    piece: Piece,
    selection: Selection,
    plan: { dimension?: string; value?: string },
    groupBy: readonly RollupColumn[],
    histogram: boolean,
    only?: { readonly column: RollupColumn; readonly values: readonly string[] },
  ): Promise<CellRow[]> => {
    const grain = grainOf(piece.grain);
    const where: string[] = ["timestamp >= ?", "timestamp < ?"];
    const params: SqlValue[] = [storedTimeOfMillis(piece.startMs), storedTimeOfMillis(piece.endMs)];
    const kinds = plan.dimension
      ? selection.kinds.filter((k) => rolledUp(k, plan.dimension as string))
      : selection.kinds;
    where.unshift(`metric_type IN (${kinds.map(() => "?").join(", ")})`);
    params.unshift(...kinds.map((k) => k.name));
    if (plan.dimension !== undefined) {
      where.push("dimension = ?");
      params.push(plan.dimension);
      if (plan.value !== undefined) {
        where.push("dimension_value = ?");
        params.push(plan.value);
      }
    }
    const service = selection.filters.get("service");
    if (service !== undefined) {
      where.push("service = ?");
      params.push(service);
    }
    if (only !== undefined) {
      where.push(`${only.column} IN (${only.values.map(() => "?").join(", ")})`);
      params.push(...only.values);
    }
    // Without a service to filter or split by, a dimension's days are read
    // from their rows across services (as many times fewer as there are services).
    const acrossServices =
      service === undefined && !groupBy.includes("service") ? grain.acrossServices : undefined;
    const table =
      plan.dimension === undefined
        ? grain.totals
        : (acrossServices ?? (grain.dimensions as string));
    const groups = groupBy.join(", ");
    const sums = histogram ? `${TOTAL_COLUMNS}, ${HISTOGRAM_SUMS}` : TOTAL_COLUMNS;
    const sql = `SELECT ${groups ? `${groups}, ` : ""}${sums} FROM ${table}
      WHERE ${where.join(" AND ")}${groups ? ` GROUP BY ${groups}` : ""}`;
    return reader.all<CellRow>(sql, params);
  };

  /**
   * Where each grain's rollups start for a plan: a grain without dimension
   * rows (minutes) is never kept for a question about a dimension, so its
   * parts widen to hours.
   */
  const keptFor = (plan: { dimension?: string }): Record<Grain, number> => {
    const kept = options.horizons().rollups;
    if (plan.dimension === undefined) return kept;
    return Object.fromEntries(
      GRAINS.map((g) => [g.name, g.dimensions ? kept[g.name] : Number.POSITIVE_INFINITY]),
    ) as Record<Grain, number>;
  };

  const answeredOf = (pieces: readonly SourceSpan[], fallback: Span): Answered => ({
    startMs: pieces[0]?.startMs ?? fallback.startMs,
    endMs: pieces.at(-1)?.endMs ?? fallback.endMs,
    sources: pieces,
  });

  /**
   * Raw rows of a selection in time order (oldest first, or newest first),
   * `columns` of each (the first two `id, timestamp`, which the next
   * statement's cursor is made of), in statements of a chunk each: keyset
   * pages along the timestamp indexes. Filters by `service` only; the
   * caller filters by the other dimensions.
   */
  async function* rawScan(
    selection: Selection,
    columns: string,
    chunk: number,
    descending = false,
    after?: Cursor,
  ): AsyncGenerator<SqlValue[][]> {
    const service = selection.filters.get("service");
    const types = selection.kinds.map((k) => k.name);
    // Each statement reads along one index in the order asked, so that its
    // LIMIT stops the scan: for one kind (metric_type, timestamp) or
    // (service, metric_type, timestamp); for every kind the timestamp index,
    // with no type condition (every stored type is a kind) and the service
    // compared as an expression that no index answers. A type list or a
    // service prefix there made the engine sort the whole rest of the range
    // for each chunk.
    const everyKind = selection.kinds.length === EVENT_KINDS.length;
    let cursor = after;
    for (;;) {
      const where = everyKind ? [] : [`metric_type IN (${types.map(() => "?").join(", ")})`];
      const params: SqlValue[] = everyKind ? [] : [...types];
      if (service !== undefined) {
        where.push(everyKind ? "service || '' = ?" : "service = ?");
        params.push(service);
      }
      // The cursor narrows the index range; ties on its timestamp go by id.
      const from = cursor && !descending ? cursor.timestamp : storedTimeOfMillis(selection.startMs);
      const to = cursor && descending ? cursor.timestamp : storedTimeOfMillis(selection.endMs);
      where.push(descending && cursor ? "timestamp <= ?" : "timestamp < ?", "timestamp >= ?");
      params.push(to, from);
      if (cursor) {
        where.push(`NOT (timestamp = ? AND id ${descending ? ">=" : "<="} ?)`);
        params.push(cursor.timestamp, cursor.id);
      }
      const direction = descending ? "DESC" : "ASC";
      const rows = await reader.arrays(
        `SELECT ${columns} FROM metrics WHERE ${where.join(" AND ")}
         ORDER BY timestamp ${direction}, id ${direction} LIMIT ?`,
        [...params, chunk],
      );
      yield rows;
      const last = rows.at(-1);
      if (last === undefined || rows.length < chunk) return;
      cursor = { timestamp: String(last[1]), id: Number(last[0]) };
      // SQLite reads synchronously: a long scan gives ingestion the event loop between chunks.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** The dimension filters a selection's rows are checked against here (`service` is the statement's). */
  const dimensionFiltersOf = (selection: Selection) =>
    [...selection.filters].filter(([name]) => name !== "service");

  /** Raw events of a selection (see {@link rawScan}), filtered by their dimensions as the rollups spell them. */
  async function* rawRows(
    selection: Selection,
    chunk: number,
    descending = false,
    after?: Cursor,
  ): AsyncGenerator<StoredEvent[]> {
    const dimensionFilters = dimensionFiltersOf(selection);
    for await (const rows of rawScan(selection, STORED_COLUMNS, chunk, descending, after)) {
      const events = rows.map(storedEventOf);
      yield dimensionFilters.length === 0
        ? events
        : events.filter((e) => {
            const dims = storedDimensions(e);
            return dimensionFilters.every(([name, value]) => dims.get(name) === value);
          });
    }
  }

  /**
   * The kind's own table's question, when it can answer (./table-questions.ts)
   * over the whole range: its retention may be shorter than the raw events'.
   */
  const tableFor = (selection: Selection, names: readonly string[]) => {
    const question = tableQuestion(selection, names);
    const kept =
      question && (options.horizons().tables[question.table] ?? Number.NEGATIVE_INFINITY);
    return question && selection.startMs >= (kept as number) ? question : undefined;
  };

  /** Refuses a raw-only question whose range starts before the raw events kept. */
  const requireRaw = (selection: Selection, dimension: string | undefined): void => {
    const horizon = options.horizons().raw;
    if (selection.startMs < horizon) {
      throw new BeyondRawRetentionError(rawReason(selection, dimension), horizon);
    }
  };

  /**
   * Raw events summed into cells by `keyOf` (undefined: left out); a range
   * that starts before the raw events kept is refused, not answered short.
   */
  const fromRaw = async <K>(
    selection: Selection,
    dimension: string | undefined,
    keyOf: (event: StoredEvent, dims: Map<string, string>) => K | undefined,
  ): Promise<{ cells: Map<K, Cell>; answered: Answered }> => {
    requireRaw(selection, dimension);
    const cells = new Map<K, Cell>();
    for await (const events of rawRows(selection, RAW_CHUNK)) {
      for (const event of events) {
        const key = keyOf(event, storedDimensions(event));
        if (key === undefined) continue;
        const { rollup, value } = rollupRowOfStored(event);
        const cell = emptyCell();
        const ms = rollup.latencyMs;
        addEvent(cell, rollup, value, ms === null ? 0 : histogramBucket(ms));
        addTo(cells, key, cell);
      }
    }
    return { cells, answered: answeredOf([{ grain: "raw", ...spanOf(selection) }], selection) };
  };

  return {
    async summary(selection) {
      const plan = rollupPlan(selection, undefined);
      const byType = new Map<string, Cell>();
      let answered: Answered;
      if (plan === undefined) {
        const raw = await fromRaw(selection, undefined, (e) => e.metricType);
        for (const [type, cell] of raw.cells) byType.set(type, cell);
        answered = raw.answered;
      } else {
        const pieces = planPieces(selection, keptFor(plan));
        for (const piece of pieces) {
          for (const row of await readPiece(piece, selection, plan, ["metric_type"], true))
            addTo(byType, String(row.metric_type), cellOf(row));
        }
        answered = answeredOf(pieces, selection);
      }
      const types = EVENT_KINDS.flatMap((k) => {
        const cell = byType.get(k.name);
        return cell && cell.count > 0 ? [{ eventType: k.name, cell }] : [];
      });
      return { types, answered };
    },

    async series(selection) {
      const { step, groupBy } = selection;
      const histogram = PERCENTILES.has(selection.measure);
      // Minutes have no dimension rows: a per-minute series of a dimension is the raw events'.
      // The service and the event type are columns of every rollup row, not dimensions.
      const rolled = rollupPlan(
        selection,
        groupBy === "service" || groupBy === BY_TYPE ? undefined : groupBy,
      );
      const plan =
        step === "minute" && rolled?.dimension !== undefined && !grainOf("minute").dimensions
          ? undefined
          : rolled;
      // Per group, per step start.
      const cells = new Map<string, Map<number, Cell>>();
      const add = (group: string, at: number, cell: Cell) => {
        let steps = cells.get(group);
        if (steps === undefined) {
          steps = new Map();
          cells.set(group, steps);
        }
        addTo(steps, at, cell);
      };
      let answered: Answered;
      if (plan === undefined) {
        // The event type is no dimension: a refusal names only the filters.
        const raw = await fromRaw(
          selection,
          groupBy === BY_TYPE ? undefined : groupBy,
          (e, dims) => {
            const group =
              groupBy === undefined ? "" : groupBy === BY_TYPE ? e.metricType : dims.get(groupBy);
            return group === undefined
              ? undefined
              : `${group}\u0000${floorTo(millisOfStored(e.timestamp), step)}`;
          },
        );
        for (const [key, cell] of raw.cells) {
          const at = key.lastIndexOf("\u0000");
          add(key.slice(0, at), Number(key.slice(at + 1)), cell);
        }
        answered = raw.answered;
      } else {
        const pieces = planPieces(selection, keptFor(plan), step);
        const columns =
          groupBy === undefined
            ? ["timestamp" as const]
            : (["timestamp", splitColumn(groupBy)] as const);
        for (const piece of pieces) {
          for (const row of await readPiece(piece, selection, plan, columns, histogram)) {
            // A piece coarser than the step (its finer rollups are gone) lands on its own bucket.
            const at = floorTo(millisOfStored(String(row.timestamp)), step);
            add(groupBy === undefined ? "" : String(row[splitColumn(groupBy)]), at, cellOf(row));
          }
        }
        answered = answeredOf(pieces, selection);
      }
      return { groups: topGroups(cells, selection.limit), answered };
    },

    async top(selection) {
      const { dimension } = selection;
      const plan = rollupPlan(selection, dimension === "service" ? undefined : dimension);
      let byValue: Map<string, Cell>;
      let answered: Answered;
      const table = plan === undefined ? tableFor(selection, [dimension]) : undefined;
      if (table !== undefined && selection.order !== "p95") {
        // Counted by the database on the kind's own table; histograms for the rows kept only.
        requireRaw(selection, dimension);
        let kept: TopRow[] = [];
        await topFromTable(reader, table, dimension, (cells) => {
          kept = ranked(cells, selection.order, selection.limit);
          return kept.map((r) => r.value);
        });
        return {
          rows: kept,
          answered: answeredOf([{ grain: "raw", ...spanOf(selection) }], selection),
        };
      }
      if (plan === undefined) {
        const raw = await fromRaw(selection, dimension, (_e, dims) => dims.get(dimension));
        byValue = raw.cells;
        answered = raw.answered;
      } else {
        byValue = new Map();
        const pieces = planPieces(selection, keptFor(plan));
        const column = splitColumn(dimension);
        // Ranked by count or errors, only the rows answered need their
        // histograms (for p95_ms): the totals first, then the histograms of
        // the values kept.
        const histogramFirst = selection.order === "p95";
        for (const piece of pieces) {
          for (const row of await readPiece(piece, selection, plan, [column], histogramFirst))
            addTo(byValue, String(row[column]), cellOf(row));
        }
        if (!histogramFirst) {
          const kept = ranked(byValue, selection.order, selection.limit);
          const only = { column, values: kept.map((r) => r.value) };
          for (const piece of only.values.length > 0 ? pieces : []) {
            for (const row of await readPiece(piece, selection, plan, [column], true, only)) {
              const into = (byValue.get(String(row[column])) as Cell).histogram as number[];
              cellOf(row).histogram.forEach((n, i) => {
                into[i] = (into[i] as number) + n;
              });
            }
          }
          return { rows: kept, answered: answeredOf(pieces, selection) };
        }
        answered = answeredOf(pieces, selection);
      }
      return { rows: ranked(byValue, selection.order, selection.limit), answered };
    },

    async activeUsers(selection) {
      const { step, groupBy } = selection;
      requireRaw(selection, USER_DIMENSION);
      const answered = answeredOf([{ grain: "raw", ...spanOf(selection) }], selection);
      const table = groupBy === undefined ? tableFor(selection, [USER_DIMENSION]) : undefined;
      if (table !== undefined) {
        const steps = await distinctPerStep(reader, table, USER_DIMENSION, step);
        return { groups: steps.size > 0 ? [{ group: "", steps }] : [], answered };
      }
      // Per group: per step start, the users seen; and all users seen.
      const seen = new Map<string, { steps: Map<number, Set<string>>; all: Set<string> }>();
      for await (const events of rawRows(selection, RAW_CHUNK)) {
        for (const event of events) {
          const dims = storedDimensions(event);
          const user = dims.get(USER_DIMENSION);
          const group = groupBy === undefined ? "" : dims.get(groupBy);
          if (user === undefined || group === undefined) continue;
          let entry = seen.get(group);
          if (entry === undefined) {
            entry = { steps: new Map(), all: new Set() };
            seen.set(group, entry);
          }
          const at = floorTo(millisOfStored(event.timestamp), step);
          let users = entry.steps.get(at);
          if (users === undefined) {
            users = new Set();
            entry.steps.set(at, users);
          }
          users.add(user);
          entry.all.add(user);
        }
      }
      const ordered = [...seen].sort(
        ([a, x], [b, y]) => y.all.size - x.all.size || (a < b ? -1 : 1),
      );
      const counted = (steps: Map<number, Set<string>>) =>
        new Map([...steps].map(([at, users]) => [at, users.size]));
      const groups: ActiveUserGroup[] = ordered
        .slice(0, selection.limit)
        .map(([group, { steps }]) => ({ group, steps: counted(steps) }));
      const rest = ordered.slice(selection.limit);
      if (rest.length > 0) {
        const other = new Map<number, Set<string>>();
        for (const [, { steps }] of rest) {
          for (const [at, users] of steps) {
            const into = other.get(at) ?? new Set<string>();
            for (const u of users) into.add(u);
            other.set(at, into);
          }
        }
        groups.push({ group: "_other", steps: counted(other) });
      }
      return { groups, answered };
    },

    async events(selection, pageSize, after) {
      const events: StoredEvent[] = [];
      let last: StoredEvent | undefined;
      // Pages of raw rows until one page of matching events is full.
      for await (const chunk of rawRows(selection, Math.max(pageSize, 100), true, after)) {
        for (const event of chunk) {
          if (events.length === pageSize) break;
          events.push(event);
          last = event;
        }
        if (events.length === pageSize) break;
      }
      return {
        events,
        ...(events.length === pageSize && last
          ? { next: { timestamp: last.timestamp, id: last.id } }
          : {}),
      };
    },

    horizons: options.horizons,

    export(selection, chunkSize) {
      return rawRows(selection, chunkSize);
    },

    async *exportNdjson(selection, chunkSize) {
      if (dimensionFiltersOf(selection).length > 0) {
        for await (const events of rawRows(selection, chunkSize)) {
          yield events.map(ndjsonLine).join("");
        }
        return;
      }
      const columns = ndjsonColumns(reader);
      for await (const rows of rawScan(selection, columns, chunkSize)) {
        let text = "";
        for (const r of rows) text += `${r[2]}${r[3]},"duration_ms":${r[4] ?? "null"}${r[5]}\n`;
        yield text;
      }
    },
  };
}

/** The measures read from the histogram. */
const PERCENTILES: ReadonlySet<Measure> = new Set(["p50", "p95", "p99"]);

/** The columns a rollup query groups by. */
type RollupColumn = "metric_type" | "timestamp" | "dimension_value" | "service";

/** The `limit` first values by `order`, then by count, then by value. */
function ranked(
  byValue: ReadonlyMap<string, Cell>,
  order: "count" | "errors" | "p95",
  limit: number,
): TopRow[] {
  const rank = {
    count: (c: Cell) => c.count,
    errors: (c: Cell) => c.errors,
    p95: (c: Cell) => quantileOf(c, 0.95) ?? -1,
  }[order];
  return [...byValue]
    .map(([value, cell]) => ({ value, cell }))
    .sort(
      (a, b) =>
        rank(b.cell) - rank(a.cell) || b.cell.count - a.cell.count || (a.value < b.value ? -1 : 1),
    )
    .slice(0, limit);
}

/** The group_by that splits a series by event type (every type asked, one series each). */
export const BY_TYPE = "event_type";

/** The rollup column a dimension's values are in: `service` and the type are columns of every rollup row. */
const splitColumn = (dimension: string) =>
  dimension === "service"
    ? ("service" as const)
    : dimension === BY_TYPE
      ? ("metric_type" as const)
      : ("dimension_value" as const);

/** A selection's span. */
const spanOf = (s: Span): Span => ({ startMs: s.startMs, endMs: s.endMs });

/** The `limit` largest groups by events, the rest summed into `_other`. */
function topGroups(cells: Map<string, Map<number, Cell>>, limit: number): SeriesGroup[] {
  const totals = [...cells].map(([group, steps]) => {
    let count = 0;
    for (const cell of steps.values()) count += cell.count;
    return { group, steps, count };
  });
  totals.sort((a, b) => b.count - a.count || (a.group < b.group ? -1 : 1));
  const kept: SeriesGroup[] = totals.slice(0, limit).map(({ group, steps }) => ({ group, steps }));
  const rest = totals.slice(limit);
  if (rest.length > 0) {
    const other = new Map<number, Cell>();
    for (const { steps } of rest) for (const [at, cell] of steps) addTo(other, at, copyCell(cell));
    kept.push({ group: "_other", steps: other });
  }
  return kept;
}

/** The raw columns read, in the order {@link storedEventOf} takes them (`id, timestamp` first, as {@link rawScan} asks). */
const STORED_COLUMNS =
  "id, timestamp, service, service_version, instance_id, metric_type, value, duration_ms, dimensions, metadata, request_id, key_service";

/** One event as an NDJSON line: its stored JSON texts embedded as they are. */
export function ndjsonLine(e: StoredEvent): string {
  return `{"event_type":${JSON.stringify(e.metricType)},"timestamp":${JSON.stringify(e.timestamp)},"service":${JSON.stringify(e.service)},"service_version":${JSON.stringify(e.serviceVersion)},"instance_id":${JSON.stringify(e.instanceId)},"value":${JSON.stringify(e.value)},"duration_ms":${JSON.stringify(e.durationMs)},"dimensions":${e.dimensions ?? "{}"},"metadata":${e.metadata ?? "{}"},"request_id":${JSON.stringify(e.requestId)},"key_service":${JSON.stringify(e.keyService)}}\n`;
}

/**
 * {@link ndjsonLine} as columns the engine computes: `id, timestamp`, the
 * line's text up to `"value":`, the value, the duration and the rest. The
 * numbers are rendered here, as `JSON.stringify` renders them (an engine's
 * float text differs from JavaScript's).
 */
function ndjsonColumns(reader: HistoryReader): string {
  const q = (column: string) => reader.jsonText(column);
  const head = [
    `'{"event_type":' || ${q("metric_type")}`,
    `',"timestamp":' || ${q("timestamp")}`,
    `',"service":' || ${q("service")}`,
    `',"service_version":' || ${q("service_version")}`,
    `',"instance_id":' || ${q("instance_id")}`,
    `',"value":'`,
  ].join(" || ");
  const tail = [
    `',"dimensions":' || coalesce(dimensions, '{}')`,
    `',"metadata":' || coalesce(metadata, '{}')`,
    `',"request_id":' || ${q("request_id")}`,
    `',"key_service":' || ${q("key_service")}`,
    `'}'`,
  ].join(" || ");
  return `id, timestamp, ${head}, value, duration_ms, ${tail}`;
}

/** A text column's value, or null. */
const textOrNull = (v: SqlValue | undefined) => (v === null || v === undefined ? null : String(v));

/** A raw row (its columns in {@link STORED_COLUMNS} order) as a stored event. */
function storedEventOf(r: readonly SqlValue[]): StoredEvent {
  return {
    id: Number(r[0]),
    timestamp: String(r[1]),
    service: String(r[2]),
    serviceVersion: textOrNull(r[3]),
    instanceId: textOrNull(r[4]),
    metricType: String(r[5]),
    value: Number(r[6]),
    durationMs: r[7] === null ? null : Number(r[7]),
    dimensions: textOrNull(r[8]),
    metadata: textOrNull(r[9]),
    requestId: String(r[10]),
    keyService: textOrNull(r[11]),
  };
}

const DAY = 86_400_000;

/**
 * Where each grain's rollups and the raw events start now, by their tables'
 * retention policies: a grain starts at the later of its two tables'
 * cut-offs; an inactive policy keeps everything.
 */
export function horizonsOf(
  policies: readonly {
    readonly tableName: string;
    readonly retentionDays: number;
    readonly isActive: boolean;
  }[],
  now: number,
): Horizons {
  const cutoff = (table: string) => {
    const p = policies.find((q) => q.tableName === table);
    return p?.isActive ? now - p.retentionDays * DAY : Number.NEGATIVE_INFINITY;
  };
  return {
    rollups: Object.fromEntries(
      GRAINS.map((g) => [g.name, Math.max(...tablesOf(g).map((t) => cutoff(t.name)))]),
    ) as Record<Grain, number>,
    raw: cutoff("metrics"),
    tables: Object.fromEntries(policies.map((p) => [p.tableName, cutoff(p.tableName)])),
  };
}
