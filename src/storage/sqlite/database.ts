import { mkdirSync, statfsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import BetterSqlite3, { type Database } from "better-sqlite3";
import type { ReadinessProbe } from "../backend.js";
import { RETAINED } from "../retention.js";
import { classifying } from "../storage-error.js";
import { sqliteStorageError } from "./errors.js";
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
 * How much WAL accumulates before a commit checkpoints it, whatever the page
 * size. SQLite's `wal_autocheckpoint` counts pages (1,000 by default): with
 * 16 KiB pages that was 16 MiB of WAL before the first checkpoint, more than
 * an 8 MiB volume holds, so the WAL alone filled it (after 49 single-event
 * commits of 8 pages, 128 KiB, each) and was never checkpointed. 1 MiB is
 * 64 pages of 16 KiB, 256 of 4 KiB; the WAL file then stays near 1.1 MiB.
 * The cost (docs/reliability.md, Storage faults): more frequent checkpoints, each with
 * its fsyncs, took 6% of the events/s of 100-event batches and 12% of
 * single-event commits in process on this machine's disk (medians of 15
 * paired rounds, noisy); on tmpfs, where an fsync is free, the small WAL was
 * faster.
 */
export const WAL_CHECKPOINT_BYTES = 1024 * 1024;

/**
 * `journal_size_limit`: what a WAL file is cut back to when it restarts after
 * a checkpoint. Above the WAL's usual high-water mark (the checkpoint cadence
 * plus one commit), so steady ingest never truncates and regrows it; it
 * gives space back after a burst, or after a reader held checkpoints off.
 */
export const WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024;

/**
 * How many bytes the start-up proof writes: twice what a commit of one event
 * appends to the WAL (8 pages of 16 KiB, measured), about a 100-event batch
 * (16 to 30 pages), so that a volume with room for a one-row write (one
 * page) but not for a commit is not called writable. The pages go to the
 * free list afterwards, and rows reuse them.
 */
export const STARTUP_PROOF_BYTES = 256 * 1024;

/** `wal_autocheckpoint`, in pages of `pageSize` bytes, for a checkpoint every {@link WAL_CHECKPOINT_BYTES}. */
export function walAutocheckpointPages(pageSize: number): number {
  return Math.max(1, Math.ceil(WAL_CHECKPOINT_BYTES / pageSize));
}

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

/** How a {@link reclaimWal} went: the WAL emptied, held by another connection, or failed (no room, I/O). */
export type WalReclaim = "emptied" | "busy" | "failed";

/**
 * Gives the WAL's space back when it can, best effort: a `TRUNCATE`
 * checkpoint copies the WAL into the database and cuts the WAL file to zero
 * bytes. It waits for other connections at most `busyWaitMillis` (a reader
 * elsewhere leaves it `busy`: partial, the WAL kept), and its errors are not
 * thrown: without room for the database file to grow it `failed`, and the
 * WAL stays valid as it was.
 */
export function reclaimWal(db: Database, busyWaitMillis = STATEMENT_BUSY_WAIT_MILLIS): WalReclaim {
  const busyTimeout = db.pragma("busy_timeout", { simple: true }) as number;
  try {
    db.pragma(`busy_timeout = ${busyWaitMillis}`);
    const [result] = db.pragma("wal_checkpoint(TRUNCATE)") as { busy: number; log: number }[];
    return result?.busy === 0 && result.log <= 0 ? "emptied" : "busy";
  } catch {
    return "failed";
  } finally {
    try {
      db.pragma(`busy_timeout = ${busyTimeout}`);
    } catch {
      // The connection is closing or broken: nothing to restore.
    }
  }
}

/**
 * Whether the volume has room for a checkpoint now: the database file grows
 * by the pages the WAL added past its end, and a checkpoint without that room
 * fails. Two system calls and a pragma, so that a full volume is not asked
 * again with a checkpoint on every failed commit. True when it cannot tell.
 */
export function walCheckpointFits(db: Database): boolean {
  if (db.memory) return false;
  try {
    const pageSize = db.pragma("page_size", { simple: true }) as number;
    const pages = db.pragma("page_count", { simple: true }) as number;
    const growth = pages * pageSize - statSync(db.name).size;
    if (growth <= 0) return true;
    const { bavail, bsize } = statfsSync(dirname(db.name));
    return bavail * bsize >= growth;
  } catch {
    return true;
  }
}

/**
 * Proves the database writable, as start-up does before the service says
 * ready: the WAL's space is given back first (see {@link reclaimWal}), so that
 * the write needs fresh space and cannot land in the tail a failed commit left
 * in the WAL file, then the probe row is written with {@link STARTUP_PROOF_BYTES}
 * in it, and then put back to its timestamp. A one-row write alone passed on
 * a volume where every commit then failed. Throws what the driver threw.
 */
export function proveWritable(db: Database): void {
  reclaimWal(db);
  const probe = db.prepare(PROBE_WRITE_SQL);
  // The bytes ride in probed_at (a column without a type check), so the
  // proof needs no table of its own; two transactions, because pages freed
  // in the transaction that allocated them are never written.
  db.transaction(() => probe.run(Buffer.alloc(STARTUP_PROOF_BYTES))).immediate();
  db.transaction(() => probe.run(Date.now())).immediate();
}

/** Readiness's questions to a SQLite database: the probe row, and `user_version`. */
export function sqliteReadinessProbe(db: Database): ReadinessProbe {
  const probe = db.prepare(PROBE_WRITE_SQL);
  const writeProbe = db.transaction((at: number) => probe.run(at));
  return classifying(
    {
      async write() {
        writeProbe.immediate(Date.now());
      },
      async prove() {
        proveWritable(db);
      },
      async schemaVersion() {
        return db.pragma("user_version", { simple: true }) as number;
      },
    },
    sqliteStorageError,
  );
}

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
    // The WAL's bounds (docs/reliability.md, Storage faults): a checkpoint every ~1 MiB
    // whatever the page size (an existing file keeps its own), and a WAL file
    // cut back to 4 MiB when it restarts.
    const pageSize = db.pragma("page_size", { simple: true }) as number;
    db.pragma(`wal_autocheckpoint = ${walAutocheckpointPages(pageSize)}`);
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    // Set explicitly: the connection that switched to WAL still reports FULL (docs/dependencies.md trap 10).
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
     WHERE origin = 'default' AND retention_days <> ? AND table_name = ?`,
  );
  db.transaction(() => {
    for (const table of RETAINED) {
      insert.run(table.name, table.defaultDays ?? retentionDays);
      // Only the raw tables follow METRICS_RETENTION_DAYS; the rollups keep their own.
      if (table.defaultDays === undefined) follow.run(retentionDays, retentionDays, table.name);
    }
  })();
}
