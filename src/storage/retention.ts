import { setTimeout as sleep } from "node:timers/promises";
import { RAW_TABLES } from "../catalog/catalog.js";
import type { Logger } from "../log.js";
import { type RetainedTable, ROLLUP_TABLES } from "./rollups.js";
import { StorageError } from "./storage-error.js";
import { storedTimeOfMillis } from "./stored-time.js";

/**
 * The tables retention sweeps: the raw ones (`metrics` and the specialized
 * tables), which follow `METRICS_RETENTION_DAYS`, then the rollups, kept
 * longer by their own defaults (docs/history.md).
 */
export const RETAINED: readonly RetainedTable[] = [
  ...RAW_TABLES.map((name) => ({ name, key: ["id"] })),
  ...ROLLUP_TABLES,
];

/** The names of {@link RETAINED}. */
export const RETAINED_TABLES: readonly string[] = RETAINED.map((t) => t.name);

/** A retained table by name, or a throw: table names are interpolated only from this list (docs/legacy-contract.md W11). */
export function retainedTable(name: string): RetainedTable {
  const table = RETAINED.find((t) => t.name === name);
  if (table === undefined) throw new Error(`not a retained table: ${name}`);
  return table;
}

/**
 * The statement deleting up to `$limit` of a table's rows older than
 * `$cutoff`, oldest first through its timestamp index, by its key
 * (`suffix`: PostgreSQL's row locking, say). Placeholders as `mark(1)`, `mark(2)`.
 */
export function deleteExpiredSql(
  table: RetainedTable,
  mark: (n: number) => string,
  suffix = "",
): string {
  const key = table.key.length === 1 ? (table.key[0] as string) : `(${table.key.join(", ")})`;
  return `DELETE FROM ${table.name} WHERE ${key} IN (
    SELECT ${table.key.join(", ")} FROM ${table.name} WHERE timestamp < ${mark(1)}
    ORDER BY timestamp LIMIT ${mark(2)}${suffix})`;
}

/** A table's retention policy (docs/legacy-contract.md §3), persisted in `retention_policies`. */
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

/** A cleanup of every active policy (docs/legacy-contract.md §3 `cleanup_all_tables`). */
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

/** The database files and pages (docs/legacy-contract.md §1 `/admin/database/size`). */
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

/**
 * What retention needs of a database: the backend's statements, on the
 * allow-listed tables only (docs/legacy-contract.md W11). Deletions run in bounded batches, each its
 * own transaction.
 */
export interface RetentionStore {
  loadPolicies(): Promise<{ tableName: string; retentionDays: number; isActive: boolean }[]>;
  /** Persists a policy set through the admin API (`origin = 'admin'`). */
  upsertPolicy(table: string, retentionDays: number, isActive: boolean): Promise<void>;
  countExpired(table: string, cutoff: string): Promise<number>;
  expiredRange(
    table: string,
    cutoff: string,
  ): Promise<{ oldest: string | null; newest: string | null }>;
  countAll(table: string): Promise<number>;
  /**
   * Deletes up to `limit` of the oldest rows older than `cutoff`, in one
   * transaction, and returns how many went. `stopped` says whether to give
   * up waiting for another process's lock (the retention is closing).
   */
  deleteExpired(
    table: string,
    cutoff: string,
    limit: number,
    stopped: () => boolean,
  ): Promise<number>;
  /** Hands freed space back, in bounded steps, where the backend needs it done (SQLite). */
  reclaim(stopped: () => boolean): Promise<void>;
  /** Rows and age range of a table, on the given column. */
  tableStats(
    table: string,
    column: string,
  ): Promise<{ n: number; oldest: string | null; newest: string | null }>;
  databaseSize(): Promise<DatabaseSize>;
}

/** Options of {@link createRetention}. */
export interface RetentionOptions {
  readonly store: RetentionStore;
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
 * Retention of the event tables: policies persisted in the database (inactive ones
 * stay inactive across restarts, docs/legacy-contract.md W12), ages from each event's own indexed
 * timestamp, and cleanup in bounded transactions that yield to ingestion
 * between batches, with space handed back as the backend needs (SQLite:
 * incremental vacuum, never a full VACUUM, docs/legacy-contract.md W18). Operations run one at a time.
 */
export interface Retention {
  policies(): RetentionPolicy[];
  /** Persists the policy, then applies it. Throws for a table off the allow-list or days below the floor. */
  updatePolicy(table: string, retentionDays: number, isActive: boolean): Promise<RetentionPolicy>;
  /** Previews the active policies, or one table's (an inactive one previews nothing). */
  preview(table?: string): Promise<Record<string, TablePreview>>;
  cleanupTable(table: string, dryRun: boolean): Promise<CleanupResult>;
  cleanupAll(dryRun: boolean): Promise<CleanupSummary>;
  tableStats(): Promise<Record<string, TableStats>>;
  databaseSize(): Promise<DatabaseSize>;
  /** Re-reads the persisted policies (another replica may have changed them). */
  reload(): Promise<void>;
  /**
   * Refuses new operations and waits for the running one, which stops after
   * its current batch and fails as `closed` (the caller answers "shutting
   * down", never a short count as if complete).
   */
  close(): Promise<void>;
}

/** What an operation stopped by a shutdown fails with. */
export const closedError = (): StorageError =>
  new StorageError("closed", "retention stopped: the service is shutting down", {
    cause: undefined,
  });

const DAY_MILLIS = 86_400_000;
/** Tables reported by the database stats besides the retained ones, with their age column. */
const OTHER_TABLES: readonly [string, string][] = [
  ["api_keys", "created_at"],
  ["retention_policies", "updated_at"],
];

/** Creates the retention manager and loads the persisted policies. */
export async function createRetention(options: RetentionOptions): Promise<Retention> {
  const { store, log } = options;
  const now = options.now ?? Date.now;
  const retained = new Set(RETAINED_TABLES);
  const policies = new Map<string, RetentionPolicy>();
  const load = async () => {
    for (const row of await store.loadPolicies()) {
      if (!retained.has(row.tableName)) continue;
      policies.set(row.tableName, {
        tableName: row.tableName,
        retentionDays: row.retentionDays,
        isActive: row.isActive,
        timestampColumn: "timestamp",
      });
    }
  };
  await load();

  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;
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
  const cutoffOf = (policy: RetentionPolicy) =>
    storedTimeOfMillis(now() - policy.retentionDays * DAY_MILLIS);

  /**
   * Deletes the table's expired rows, a batch per transaction, oldest first.
   * The policy is read again before each batch: a retention lengthened or a
   * policy deactivated during a sweep takes effect at once.
   */
  const deleteExpired = async (table: string, firstCutoff: string): Promise<number> => {
    let cutoff = firstCutoff;
    let deleted = 0;
    for (;;) {
      if (closed) throw closedError();
      const policy = policyOf(table);
      if (!policy.isActive) break;
      const current = cutoffOf(policy);
      if (current < cutoff) cutoff = current;
      const started = performance.now();
      const changes = await store.deleteExpired(table, cutoff, options.batchRows, () => closed);
      deleted += changes;
      if (changes < options.batchRows) break;
      // Give ingestion three times the batch's time: its commits wait at most
      // one batch, and a quarter of the time at most is spent deleting.
      await sleep(Math.max(1, 3 * (performance.now() - started)));
    }
    return deleted;
  };

  const cleanupOne = async (table: string, dryRun: boolean): Promise<CleanupResult> => {
    const policy = policyOf(table);
    if (!policy.isActive) return { table, status: "skipped", reason: "policy_inactive" };
    const cutoff = cutoffOf(policy);
    if (dryRun) {
      const expired = await store.countExpired(table, cutoff);
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

    async updatePolicy(table, retentionDays, isActive) {
      policyOf(table);
      const maxDays = options.maxDays ?? 36_500;
      if (retentionDays < options.minDays || retentionDays > maxDays) {
        throw new RetentionOutOfRangeError(retentionDays, options.minDays, maxDays);
      }
      // The database first, then memory: a failed write changes nothing (docs/legacy-contract.md W12).
      try {
        await store.upsertPolicy(table, retentionDays, isActive);
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
      // Reads only: they need not wait for a sweep to end.
      return (async () => {
        const previews: Record<string, TablePreview> = {};
        for (const policy of policies.values()) {
          if (!policy.isActive || (table !== undefined && policy.tableName !== table)) continue;
          const cutoff = cutoffOf(policy);
          const recordsToDelete = await store.countExpired(policy.tableName, cutoff);
          const range = await store.expiredRange(policy.tableName, cutoff);
          const totalRecords = await store.countAll(policy.tableName);
          previews[policy.tableName] = {
            retentionDays: policy.retentionDays,
            recordsToDelete,
            totalRecords,
            oldestRecordToDelete: range.oldest,
            newestRecordToDelete: range.newest,
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
        if (result.status === "completed" && result.recordsDeleted > 0)
          await store.reclaim(() => closed);
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
        if (!dryRun && total > 0) await store.reclaim(() => closed);
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
          const row = await store.tableStats(table, column);
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

    databaseSize: () => store.databaseSize(),

    reload: load,

    async close() {
      closed = true;
      await queue;
    },
  };
}
