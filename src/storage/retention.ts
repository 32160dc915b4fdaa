import { statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { Database, Statement } from "better-sqlite3";
import type { Logger } from "../log.js";
import { RETAINED_TABLES } from "./database.js";
import { StorageError } from "./storage-error.js";
import { storedTimeOfMillis } from "./stored-time.js";

/** A table's retention policy (contract §3), persisted in `retention_policies`. */
export interface RetentionPolicy {
  readonly tableName: string;
  readonly retentionDays: number;
  readonly isActive: boolean;
  /** The column ages are measured on: the event's own (indexed) timestamp, not the ingest time. */
  readonly timestampColumn: "timestamp";
}

/** What a cleanup would remove from one table. */
export interface TablePreview {
  readonly retentionDays: number;
  readonly recordsToDelete: number;
  readonly totalRecords: number;
  readonly oldestRecordToDelete: string | null;
  readonly newestRecordToDelete: string | null;
  /** Rows with a timestamp before this (UTC, the stored format) are expired. */
  readonly cutoffDate: string;
  readonly percentageToDelete: number;
}

/** The outcome for one table, in the contract's shapes (§3 `cleanup_table`). */
export type CleanupResult =
  | { readonly table: string; readonly status: "skipped"; readonly reason: "policy_inactive" }
  | {
      readonly table: string;
      readonly status: "completed";
      readonly recordsDeleted: 0;
      readonly reason: "no_records_to_delete";
    }
  | { readonly table: string; readonly status: "dry_run"; readonly recordsWouldDelete: number }
  | {
      readonly table: string;
      readonly status: "completed";
      readonly recordsDeleted: number;
      readonly durationSeconds: number;
      readonly retentionDays: number;
    };

/** Rows a result counts: deleted, or for a dry run the rows that would be. */
export function recordsProcessed(result: CleanupResult): number {
  if (result.status === "dry_run") return result.recordsWouldDelete;
  return result.status === "completed" ? result.recordsDeleted : 0;
}

/** A cleanup of every active policy (contract §3 `cleanup_all_tables`). */
export interface CleanupSummary {
  readonly operation: "cleanup" | "dry_run";
  /** Rows deleted, or for a dry run the rows that would be. */
  readonly totalRecordsProcessed: number;
  readonly tablesProcessed: number;
  readonly durationSeconds: number;
  readonly startedAt: string;
  readonly completedAt: string;
  readonly tableResults: Readonly<Record<string, CleanupResult>>;
}

/** Rows and age range of one table. */
export interface TableStats {
  readonly recordCount: number;
  readonly oldestRecord: string | null;
  readonly newestRecord: string | null;
  readonly hasRetentionPolicy: boolean;
  readonly retentionDays: number | null;
  readonly policyActive: boolean | null;
}

/** The database files and pages (contract §1 `/admin/database/size`). */
export interface DatabaseSize {
  readonly mainDbBytes: number;
  readonly walBytes: number;
  readonly shmBytes: number;
  readonly pageCount: number;
  readonly pageSize: number;
  readonly freePages: number;
}

/** A table name outside the retention allow-list; nothing was run. */
export class UnknownTableError extends Error {
  constructor(readonly table: string) {
    super(`No retention policy for table '${table}'; tables: ${RETAINED_TABLES.join(", ")}`);
    this.name = "UnknownTableError";
  }
}

/** A `retention_days` outside the allowed range; nothing was changed. */
export class RetentionOutOfRangeError extends Error {
  constructor(retentionDays: number, minDays: number, maxDays: number) {
    super(
      retentionDays < minDays
        ? `retention_days must be at least ${minDays}, got ${retentionDays}`
        : `retention_days must be at most ${maxDays}, got ${retentionDays}`,
    );
    this.name = "RetentionOutOfRangeError";
  }
}

/** Options of {@link createRetention}. */
export interface RetentionOptions {
  readonly db: Database;
  /** The database file, for its size (`:memory:` has none). */
  readonly dbPath: string;
  readonly log: Logger;
  /** The shortest retention a policy may be given, in days (one call cannot wipe a table). */
  readonly minDays: number;
  /** The longest retention a policy may be given, in days. */
  readonly maxDays?: number;
  /** Rows deleted per transaction. */
  readonly batchRows: number;
  /** Epoch milliseconds; injectable for tests. */
  readonly now?: () => number;
}

/**
 * Retention of the event tables: policies persisted in SQLite (inactive ones
 * stay inactive across restarts, W12), ages from each event's own indexed
 * timestamp, and cleanup in bounded transactions that yield to ingestion
 * between batches, with space handed back by incremental vacuum, never a
 * full VACUUM (W18). Operations run one at a time.
 */
export interface Retention {
  policies(): RetentionPolicy[];
  /** Persists the policy, then applies it. Throws for a table off the allow-list or days below the floor. */
  updatePolicy(table: string, retentionDays: number, isActive: boolean): RetentionPolicy;
  /** Previews the active policies, or one table's (an inactive one previews nothing). */
  preview(table?: string): Promise<Record<string, TablePreview>>;
  cleanupTable(table: string, dryRun: boolean): Promise<CleanupResult>;
  cleanupAll(dryRun: boolean): Promise<CleanupSummary>;
  tableStats(): Promise<Record<string, TableStats>>;
  databaseSize(): DatabaseSize;
  /**
   * Refuses new operations and waits for the running one, which stops after
   * its current batch and fails as `closed` (the caller answers "shutting
   * down", never a short count as if complete).
   */
  close(): Promise<void>;
}

interface TableStatements {
  readonly count: Statement<[string], { n: number }>;
  readonly range: Statement<[string], { oldest: string | null; newest: string | null }>;
  readonly total: Statement<[], { n: number }>;
  readonly deleteBatch: Statement<[string, number]>;
}

const DAY_MILLIS = 86_400_000;
/** Pages handed back per incremental-vacuum transaction (2 MiB of 4 KiB pages). */
const VACUUM_PAGES = 512;
/** Tables reported by the database stats besides the retained ones, with their age column. */
const OTHER_TABLES: readonly [string, string][] = [
  ["api_keys", "created_at"],
  ["retention_policies", "updated_at"],
];

/** Creates the retention manager and loads the persisted policies. */
export function createRetention(options: RetentionOptions): Retention {
  const { db, log } = options;
  const now = options.now ?? Date.now;
  // Table names come only from this allow-list, never from a request: the
  // statements are prepared once per known table (W11).
  const statements = new Map<string, TableStatements>(
    RETAINED_TABLES.map((table) => [
      table,
      {
        count: db.prepare(`SELECT count(*) AS n FROM ${table} WHERE timestamp < ?`),
        range: db.prepare(
          `SELECT min(timestamp) AS oldest, max(timestamp) AS newest FROM ${table} WHERE timestamp < ?`,
        ),
        total: db.prepare(`SELECT count(*) AS n FROM ${table}`),
        // Oldest first through the timestamp index, by primary key: each batch
        // touches a contiguous run of pages.
        deleteBatch: db.prepare(
          `DELETE FROM ${table} WHERE id IN
             (SELECT id FROM ${table} WHERE timestamp < ? ORDER BY timestamp LIMIT ?)`,
        ),
      },
    ]),
  );
  const upsert = db.prepare(
    `INSERT INTO retention_policies
       (table_name, retention_days, is_active, timestamp_column, origin, updated_at)
     VALUES (?, ?, ?, 'timestamp', 'admin', datetime('now'))
     ON CONFLICT (table_name) DO UPDATE SET
       retention_days = excluded.retention_days, is_active = excluded.is_active,
       origin = 'admin', updated_at = excluded.updated_at`,
  );
  const policies = new Map<string, RetentionPolicy>();
  const load = () => {
    const rows = db
      .prepare("SELECT table_name, retention_days, is_active FROM retention_policies")
      .all() as { table_name: string; retention_days: number; is_active: number }[];
    for (const row of rows) {
      if (!statements.has(row.table_name)) continue;
      policies.set(row.table_name, {
        tableName: row.table_name,
        retentionDays: row.retention_days,
        isActive: row.is_active !== 0,
        timestampColumn: "timestamp",
      });
    }
  };
  load();

  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;
  const closedError = () =>
    new StorageError("closed", "retention stopped: the service is shutting down", {
      cause: undefined,
    });
  /** Runs write operations one at a time: two sweeps never interleave their batches. */
  const exclusive = <T>(operation: () => Promise<T>): Promise<T> => {
    if (closed) return Promise.reject(closedError());
    const run = queue.then(operation, operation);
    queue = run.catch(() => undefined);
    return run;
  };

  const policyOf = (table: string): RetentionPolicy => {
    const policy = policies.get(table);
    if (policy === undefined) throw new UnknownTableError(table);
    return policy;
  };
  const statementsOf = (table: string) => statements.get(table) as TableStatements;
  const cutoffOf = (policy: RetentionPolicy) =>
    storedTimeOfMillis(now() - policy.retentionDays * DAY_MILLIS);

  /** Runs one write transaction, retrying while another process holds the lock. */
  const write = async <T>(work: () => T): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return db.transaction(work).immediate();
      } catch (error) {
        const failure = StorageError.from(error);
        // The lock is another process's: wait for it on a timer, not in SQLite's busy loop.
        if (!failure.busy || attempt >= 100) throw failure;
        await sleep(50);
        if (closed) throw closedError();
      }
    }
  };

  /**
   * Deletes the table's expired rows, a batch per transaction, oldest first.
   * The policy is read again before each batch: a retention lengthened or a
   * policy deactivated during a sweep takes effect at once.
   */
  const deleteExpired = async (table: string, firstCutoff: string): Promise<number> => {
    const { deleteBatch } = statementsOf(table);
    let cutoff = firstCutoff;
    let deleted = 0;
    for (;;) {
      if (closed) throw closedError();
      const policy = policyOf(table);
      if (!policy.isActive) break;
      const current = cutoffOf(policy);
      if (current < cutoff) cutoff = current;
      const started = performance.now();
      const changes = await write(() => deleteBatch.run(cutoff, options.batchRows).changes);
      deleted += changes;
      if (changes < options.batchRows) break;
      // Give ingestion three times the batch's time: its commits wait at most
      // one batch, and a quarter of the time at most is spent deleting.
      await sleep(Math.max(1, 3 * (performance.now() - started)));
    }
    return deleted;
  };

  /**
   * Hands free pages back to the file system, a bounded chunk per transaction.
   * Only a database created with auto_vacuum=INCREMENTAL can; and it stops as
   * soon as a step frees nothing.
   */
  const reclaim = async (): Promise<void> => {
    if ((db.pragma("auto_vacuum", { simple: true }) as number) !== 2) return;
    let free = db.pragma("freelist_count", { simple: true }) as number;
    while (!closed && free > 0) {
      const started = performance.now();
      await write(() => db.pragma(`incremental_vacuum(${VACUUM_PAGES})`));
      const left = db.pragma("freelist_count", { simple: true }) as number;
      if (left >= free) break;
      free = left;
      await sleep(Math.max(1, 3 * (performance.now() - started)));
    }
  };

  const cleanupOne = async (table: string, dryRun: boolean): Promise<CleanupResult> => {
    const policy = policyOf(table);
    if (!policy.isActive) return { table, status: "skipped", reason: "policy_inactive" };
    const cutoff = cutoffOf(policy);
    if (dryRun) {
      const expired = statementsOf(table).count.get(cutoff)?.n ?? 0;
      return expired === 0
        ? { table, status: "completed", recordsDeleted: 0, reason: "no_records_to_delete" }
        : { table, status: "dry_run", recordsWouldDelete: expired };
    }
    // No count first: counting a million index entries would stall ingestion
    // for as long as a whole batch schedule is meant to avoid.
    const started = performance.now();
    const recordsDeleted = await deleteExpired(table, cutoff);
    if (recordsDeleted === 0) {
      return { table, status: "completed", recordsDeleted: 0, reason: "no_records_to_delete" };
    }
    const durationSeconds = (performance.now() - started) / 1000;
    log.info({ table, recordsDeleted, durationSeconds, cutoff }, "retention cleanup");
    return {
      table,
      status: "completed",
      recordsDeleted,
      durationSeconds,
      retentionDays: policy.retentionDays,
    };
  };

  return {
    policies: () => [...policies.values()],

    updatePolicy(table, retentionDays, isActive) {
      policyOf(table);
      const maxDays = options.maxDays ?? 36_500;
      if (retentionDays < options.minDays || retentionDays > maxDays) {
        throw new RetentionOutOfRangeError(retentionDays, options.minDays, maxDays);
      }
      // The database first, then memory: a failed write changes nothing (W12).
      try {
        upsert.run(table, retentionDays, isActive ? 1 : 0);
      } catch (error) {
        throw StorageError.from(error);
      }
      const policy: RetentionPolicy = {
        tableName: table,
        retentionDays,
        isActive,
        timestampColumn: "timestamp",
      };
      policies.set(table, policy);
      log.info({ table, retentionDays, isActive }, "retention policy updated");
      return policy;
    },

    preview(table) {
      if (table !== undefined) policyOf(table);
      // Reads only, and synchronous: they never interleave with a batch, so
      // they need not wait for a sweep to end.
      return (async () => {
        const previews: Record<string, TablePreview> = {};
        for (const policy of policies.values()) {
          if (!policy.isActive || (table !== undefined && policy.tableName !== table)) continue;
          const s = statementsOf(policy.tableName);
          const cutoff = cutoffOf(policy);
          const recordsToDelete = s.count.get(cutoff)?.n ?? 0;
          const range = s.range.get(cutoff);
          const totalRecords = s.total.get()?.n ?? 0;
          previews[policy.tableName] = {
            retentionDays: policy.retentionDays,
            recordsToDelete,
            totalRecords,
            oldestRecordToDelete: range?.oldest ?? null,
            newestRecordToDelete: range?.newest ?? null,
            cutoffDate: cutoff,
            percentageToDelete: totalRecords > 0 ? (recordsToDelete / totalRecords) * 100 : 0,
          };
        }
        return previews;
      })();
    },

    cleanupTable(table, dryRun) {
      policyOf(table);
      return exclusive(async () => {
        const result = await cleanupOne(table, dryRun);
        if (result.status === "completed" && result.recordsDeleted > 0) await reclaim();
        return result;
      });
    },

    cleanupAll(dryRun) {
      return exclusive(async () => {
        const startedAt = now();
        const started = performance.now();
        const tableResults: Record<string, CleanupResult> = {};
        let total = 0;
        let tablesProcessed = 0;
        for (const policy of [...policies.values()]) {
          if (!policy.isActive) continue;
          const result = await cleanupOne(policy.tableName, dryRun);
          tableResults[policy.tableName] = result;
          total += recordsProcessed(result);
          if (result.status === "completed" || result.status === "dry_run") tablesProcessed++;
        }
        if (!dryRun && total > 0) await reclaim();
        return {
          operation: dryRun ? "dry_run" : "cleanup",
          totalRecordsProcessed: total,
          tablesProcessed,
          durationSeconds: (performance.now() - started) / 1000,
          startedAt: storedTimeOfMillis(startedAt),
          completedAt: storedTimeOfMillis(now()),
          tableResults,
        };
      });
    },

    tableStats() {
      return (async () => {
        const stats: Record<string, TableStats> = {};
        const columns: [string, string][] = [
          ...RETAINED_TABLES.map((t): [string, string] => [t, "timestamp"]),
          ...OTHER_TABLES,
        ];
        for (const [table, column] of columns) {
          const row = db
            .prepare(
              `SELECT count(*) AS n, min(${column}) AS oldest, max(${column}) AS newest FROM ${table}`,
            )
            .get() as { n: number; oldest: string | null; newest: string | null };
          const policy = policies.get(table);
          stats[table] = {
            recordCount: row.n,
            oldestRecord: row.oldest,
            newestRecord: row.newest,
            hasRetentionPolicy: policy !== undefined,
            retentionDays: policy?.retentionDays ?? null,
            policyActive: policy?.isActive ?? null,
          };
        }
        return stats;
      })();
    },

    databaseSize() {
      const size = (path: string) => {
        try {
          return statSync(path).size;
        } catch {
          return 0; // no WAL or shared-memory file right now
        }
      };
      const file = options.dbPath === ":memory:" ? undefined : options.dbPath;
      return {
        mainDbBytes: file ? size(file) : 0,
        walBytes: file ? size(`${file}-wal`) : 0,
        shmBytes: file ? size(`${file}-shm`) : 0,
        pageCount: db.pragma("page_count", { simple: true }) as number,
        pageSize: db.pragma("page_size", { simple: true }) as number,
        freePages: db.pragma("freelist_count", { simple: true }) as number,
      };
    },

    async close() {
      closed = true;
      await queue;
    },
  };
}
