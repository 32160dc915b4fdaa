import type { Database, Statement } from "better-sqlite3";
import type { HistoryReader, SqlValue } from "../backend.js";
import type { RollupBackfill, StoredEventRow } from "../rollup-backfill.js";
import {
  cellValues,
  GRAINS,
  type HistogramColumns,
  histogramColumnsOf,
  insertColumns,
  type RollupKind,
  type RollupRow,
  rollUp,
  rollupConflictClause,
  SQLITE_ROLLUPS,
  tablesOf,
} from "../rollups.js";

/** An upsert of one rollup table: a delta row added into the row of its key. */
function upsert(db: Database, table: string, kind: RollupKind, histogram: HistogramColumns) {
  const columns = insertColumns(kind, histogram);
  return db.prepare(
    `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})
     ${rollupConflictClause(SQLITE_ROLLUPS, table, kind, histogram)}`,
  );
}

/**
 * A rollup table's upserts, one per {@link HistogramColumns} a row may
 * need, each prepared when first used.
 */
function upserts(db: Database, table: string, kind: RollupKind) {
  const prepared = new Map<HistogramColumns, Statement>();
  return (histogram: HistogramColumns): Statement => {
    let statement = prepared.get(histogram);
    if (statement === undefined) {
      statement = upsert(db, table, kind, histogram);
      prepared.set(histogram, statement);
    }
    return statement;
  };
}

/**
 * Adds rows to the rollups, inside the caller's transaction (the one that
 * writes them): one upsert per cell of each grain's tables
 * (src/storage/rollups.ts), binding only the histogram columns the cell needs.
 */
export function sqliteRollupWriter(db: Database): (rows: readonly RollupRow[]) => void {
  const statements = GRAINS.map((g) =>
    tablesOf(g).map(({ name, kind }) => ({ kind, upsert: upserts(db, name, kind) })),
  );
  return (rows) => {
    if (rows.length === 0) return;
    rollUp(rows).forEach((cells, i) => {
      for (const { kind, upsert } of statements[i] ?? []) {
        for (const c of cells[kind]) {
          const histogram = histogramColumnsOf(c.cell);
          upsert(histogram).run(cellValues(kind, c, histogram));
        }
      }
    });
  };
}

/** The backfill on SQLite: each step one `BEGIN IMMEDIATE` transaction (see {@link RollupBackfill}). */
export function sqliteRollupBackfill(db: Database): RollupBackfill {
  const write = sqliteRollupWriter(db);
  const state = db.prepare<[], { next: number; end: number }>(
    "SELECT next_id AS next, end_id AS end FROM rollup_backfill WHERE id = 1",
  );
  const read = db.prepare<[number, number, number], StoredEventRow>(
    `SELECT id, service, metric_type AS metricType, timestamp, value, duration_ms AS durationMs,
            dimensions, metadata
     FROM metrics WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?`,
  );
  const advance = db.prepare<[number]>("UPDATE rollup_backfill SET next_id = ? WHERE id = 1");
  return {
    async step(limit, rollupOf) {
      return db
        .transaction(() => {
          const s = state.get();
          if (s === undefined || s.next > s.end) return undefined;
          const rows = read.all(s.next, s.end, limit);
          write(rows.map(rollupOf));
          const next = rows.length < limit ? s.end + 1 : (rows.at(-1)?.id ?? s.end) + 1;
          advance.run(next);
          return { events: rows.length, next, end: s.end };
        })
        .immediate();
    },
  };
}

/**
 * The history's reads on SQLite: on the service's connection (a read in WAL
 * mode never waits for the writer), each statement prepared once.
 */
export function sqliteHistoryReader(db: Database): HistoryReader {
  const prepared = new Map<string, Statement>();
  const arrays = new Map<string, Statement>();
  const statement = (cache: Map<string, Statement>, sql: string, raw: boolean) => {
    let found = cache.get(sql);
    if (found === undefined) {
      found = raw ? db.prepare(sql).raw(true) : db.prepare(sql);
      cache.set(sql, found);
    }
    return found;
  };
  // SQLite stores booleans as 1 and 0.
  const bound = (params: readonly SqlValue[]) =>
    params.map((p) => (typeof p === "boolean" ? Number(p) : p));
  return {
    async all<T>(sql: string, params: readonly SqlValue[]) {
      return statement(prepared, sql, false).all(...bound(params)) as T[];
    },
    async arrays(sql: string, params: readonly SqlValue[]) {
      return statement(arrays, sql, true).all(...bound(params)) as SqlValue[][];
    },
    jsonText: (column: string) => `json_quote(${column})`,
  };
}
