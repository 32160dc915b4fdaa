import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import BetterSqlite3, { type Database } from "better-sqlite3";
import type { ReadinessProbe } from "../admin/readiness.js";
import { migrate } from "./migrations.js";

export type { Database };

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** `synchronous` pragma: FULL fsyncs every commit, NORMAL only at checkpoints. */
  readonly synchronous: "FULL" | "NORMAL";
  /**
   * How long statements wait on another connection's lock, in ms: migrations
   * and the caller's start-up writes (see {@link useStatementBusyWait}).
   */
  readonly busyTimeoutMillis: number;
}

/** Page size of a new database file; an existing file keeps its own. */
const PAGE_SIZE = 16_384;

/**
 * How long a statement waits on another connection's lock at run time. The
 * wait is synchronous (better-sqlite3 blocks the event loop), so it is kept
 * short; the event store retries a busy commit on a timer instead.
 */
export const STATEMENT_BUSY_WAIT_MILLIS = 10;

/**
 * Shortens the connection's synchronous lock wait to
 * {@link STATEMENT_BUSY_WAIT_MILLIS}, once start-up's writes are done: from then
 * on the event store retries a busy commit on a timer instead of blocking.
 */
export function useStatementBusyWait(db: Database): void {
  db.pragma(`busy_timeout = ${STATEMENT_BUSY_WAIT_MILLIS}`);
}

/** The write that asks whether the database takes writes (one row, overwritten). */
export const PROBE_WRITE_SQL =
  "INSERT INTO readiness_probe (id, probed_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at";

/** Readiness's questions to a SQLite database: the probe row, and `user_version`. */
export function sqliteReadinessProbe(db: Database): ReadinessProbe {
  const probe = db.prepare(PROBE_WRITE_SQL);
  const writeProbe = db.transaction((at: number) => probe.run(at));
  return {
    async write() {
      writeProbe.immediate(Date.now());
    },
    async schemaVersion() {
      return db.pragma("user_version", { simple: true }) as number;
    },
  };
}

/** The tables whose rows age out, with the default retention seeded for each. */
export const RETAINED_TABLES = ["metrics", "auth_metrics", "discovery_metrics", "tool_metrics"];

/**
 * Opens (creating if needed) the SQLite database, sets its pragmas and runs
 * the migrations. `:memory:` is allowed for tests.
 */
export function openDatabase(path: string, options: OpenDatabaseOptions): Database {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new BetterSqlite3(path);
  try {
    // auto_vacuum only takes effect before the first table exists: set it while
    // the file is new so that retention can reclaim space incrementally later.
    if ((db.pragma("user_version", { simple: true }) as number) === 0) {
      // 16 KiB pages: rows carry their dimensions and metadata as JSON text,
      // and larger pages cut the b-tree work per insert by about 17% (bench).
      db.pragma(`page_size = ${PAGE_SIZE}`);
      db.pragma("auto_vacuum = INCREMENTAL");
    }
    db.pragma("journal_mode = WAL");
    // Set explicitly: the connection that switched to WAL still reports FULL (STACK.md trap 10).
    db.pragma(`synchronous = ${options.synchronous}`);
    db.pragma(`busy_timeout = ${options.busyTimeoutMillis}`);
    db.pragma("foreign_keys = ON");
    db.pragma("temp_store = MEMORY");
    db.pragma("cache_size = -16000");
    migrate(db);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Seeds a retention policy for every retained table that has none yet, and
 * brings the policies nobody changed through the admin API to the configured
 * default (`METRICS_RETENTION_DAYS` applies when it changes, not only once).
 */
export function seedRetentionPolicies(db: Database, retentionDays: number): void {
  const insert = db.prepare(
    "INSERT OR IGNORE INTO retention_policies (table_name, retention_days) VALUES (?, ?)",
  );
  const follow = db.prepare(
    `UPDATE retention_policies SET retention_days = ?, updated_at = datetime('now')
     WHERE origin = 'default' AND retention_days <> ?`,
  );
  db.transaction(() => {
    for (const table of RETAINED_TABLES) insert.run(table, retentionDays);
    follow.run(retentionDays, retentionDays);
  })();
}
