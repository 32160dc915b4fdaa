import { statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { Database, Statement } from "better-sqlite3";
import {
  closedError,
  type DatabaseSize,
  deleteExpiredSql,
  RETAINED,
  type RetentionStore,
} from "../retention.js";
import { sqliteStorageError } from "./errors.js";

interface TableStatements {
  readonly count: Statement<[string], { n: number }>;
  readonly range: Statement<[string], { oldest: string | null; newest: string | null }>;
  readonly total: Statement<[], { n: number }>;
  readonly deleteBatch: Statement<[string, number]>;
}

/** Pages handed back per incremental-vacuum transaction. */
const VACUUM_PAGES = 512;

/**
 * Retention's statements on SQLite: prepared once per allow-listed table,
 * deletions oldest first through the timestamp index, space handed back by
 * incremental vacuum, never a full VACUUM (docs/legacy-contract.md W18).
 */
export function sqliteRetentionStore(db: Database, dbPath: string): RetentionStore {
  const statements = new Map<string, TableStatements>(
    RETAINED.map(({ name: table, ...spec }) => [
      table,
      {
        count: db.prepare(`SELECT count(*) AS n FROM ${table} WHERE timestamp < ?`),
        range: db.prepare(
          `SELECT min(timestamp) AS oldest, max(timestamp) AS newest FROM ${table} WHERE timestamp < ?`,
        ),
        total: db.prepare(`SELECT count(*) AS n FROM ${table}`),
        // Oldest first through the timestamp index, by primary key: each batch
        // touches a contiguous run of pages.
        deleteBatch: db.prepare(deleteExpiredSql({ name: table, ...spec }, () => "?")),
      },
    ]),
  );
  const of = (table: string) => statements.get(table) as TableStatements;
  const upsert = db.prepare(
    `INSERT INTO retention_policies
       (table_name, retention_days, is_active, timestamp_column, origin, updated_at)
     VALUES (?, ?, ?, 'timestamp', 'admin', datetime('now'))
     ON CONFLICT (table_name) DO UPDATE SET
       retention_days = excluded.retention_days, is_active = excluded.is_active,
       origin = 'admin', updated_at = excluded.updated_at`,
  );

  /** Runs one write transaction, retrying on a timer while another process holds the lock. */
  const write = async <T>(work: () => T, stopped: () => boolean): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return db.transaction(work).immediate();
      } catch (error) {
        const failure = sqliteStorageError(error);
        if (!failure.busy || attempt >= 100) throw failure;
        await sleep(50);
        if (stopped()) throw closedError();
      }
    }
  };
  const pragma = (name: string) => db.pragma(name, { simple: true }) as number;

  return {
    async loadPolicies() {
      const rows = db
        .prepare("SELECT table_name, retention_days, is_active FROM retention_policies")
        .all() as { table_name: string; retention_days: number; is_active: number }[];
      return rows.map((r) => ({
        tableName: r.table_name,
        retentionDays: r.retention_days,
        isActive: r.is_active !== 0,
      }));
    },
    async upsertPolicy(table, retentionDays, isActive) {
      upsert.run(table, retentionDays, isActive ? 1 : 0);
    },
    async countExpired(table, cutoff) {
      return of(table).count.get(cutoff)?.n ?? 0;
    },
    async expiredRange(table, cutoff) {
      return of(table).range.get(cutoff) ?? { oldest: null, newest: null };
    },
    async countAll(table) {
      return of(table).total.get()?.n ?? 0;
    },
    deleteExpired(table, cutoff, limit, stopped) {
      return write(() => of(table).deleteBatch.run(cutoff, limit).changes, stopped);
    },
    /**
     * Only a database created with auto_vacuum=INCREMENTAL can hand pages
     * back; a bounded chunk per transaction, stopping as soon as a step frees
     * nothing.
     */
    async reclaim(stopped) {
      if (pragma("auto_vacuum") !== 2) return;
      let free = pragma("freelist_count");
      while (!stopped() && free > 0) {
        const started = performance.now();
        await write(() => db.pragma(`incremental_vacuum(${VACUUM_PAGES})`), stopped);
        const left = pragma("freelist_count");
        if (left >= free) break;
        free = left;
        await sleep(Math.max(1, 3 * (performance.now() - started)));
      }
    },
    async tableStats(table, column) {
      return db
        .prepare(
          `SELECT count(*) AS n, min(${column}) AS oldest, max(${column}) AS newest FROM ${table}`,
        )
        .get() as { n: number; oldest: string | null; newest: string | null };
    },
    async databaseSize(): Promise<DatabaseSize> {
      const size = (path: string) => {
        try {
          return statSync(path).size;
        } catch {
          return 0; // no WAL or shared-memory file right now
        }
      };
      const file = dbPath === ":memory:" ? undefined : dbPath;
      return {
        mainDbBytes: file ? size(file) : 0,
        walBytes: file ? size(`${file}-wal`) : 0,
        shmBytes: file ? size(`${file}-shm`) : 0,
        pageCount: pragma("page_count"),
        pageSize: pragma("page_size"),
        freePages: pragma("freelist_count"),
      };
    },
  };
}
