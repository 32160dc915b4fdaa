import type { Database } from "better-sqlite3";
import {
  type AppendResult,
  createGroupCommit,
  type EventStore,
  type EventStoreOptions,
  type QueuedAppend,
} from "../group-commit.js";
import { EVENT_TABLES, type EventRow, insertColumns, rowValues } from "../rows.js";
import type { SqliteBatchLedger } from "./batch-ledger.js";
import { reclaimWal, walCheckpointFits } from "./database.js";
import { sqliteCode, sqliteOutOfSpace, sqliteStorageError } from "./errors.js";
import { sqliteRollupWriter } from "./rollups.js";

export type { AppendResult, CommitStats, EventStore, EventStoreOptions } from "../group-commit.js";

/**
 * Least time between attempts to give the WAL's space back after one failed
 * with an error, not for want of room that the volume shows (a quota, an I/O
 * error): each such attempt rewrites pages up to the failure.
 */
const RECLAIM_RETRY_MILLIS = 1000;

/** Options of the SQLite {@link createEventStore}. */
export interface SqliteEventStoreOptions extends EventStoreOptions {
  /** Where batch ids are claimed, in each batch's transaction; without it, appends may not carry one. */
  readonly ledger?: SqliteBatchLedger;
  /**
   * Whether commits add to the rollups (default: yes). Only the history
   * benchmark turns them off, to measure what they cost; the service never does.
   */
  readonly rollups?: boolean;
}

/**
 * Creates the event store over an open database. Statements are prepared once;
 * each group is written in one `BEGIN IMMEDIATE` transaction (docs/dependencies.md trap 10).
 */
export function createEventStore(db: Database, options: SqliteEventStoreOptions): EventStore {
  const inserts = new Map(
    EVENT_TABLES.map((table) => {
      const names = insertColumns(table).map(([name]) => name);
      const sql = `INSERT INTO ${table} (${names.join(", ")}) VALUES (${names.map(() => "?").join(", ")})`;
      return [table, db.prepare(sql)] as const;
    }),
  );
  const insertOf = (table: string) => {
    const statement = inserts.get(table);
    if (statement === undefined) throw new Error(`not an event table: ${table}`);
    return statement;
  };
  const insertMetric = insertOf("metrics");
  const writeRow = (requestId: string, r: EventRow): void => {
    const values = rowValues(requestId, r);
    insertMetric.run(...values.metrics);
    if (values.specialized) insertOf(values.specialized.table).run(...values.specialized.values);
  };

  const writeRollups = options.rollups === false ? () => {} : sqliteRollupWriter(db);

  const ledger = options.ledger;
  /**
   * Writes a group's rows and adds them to the rollups; an append whose batch
   * id is already taken writes nothing.
   */
  const writeGroup = db.transaction((group: readonly QueuedAppend[]): AppendResult[] => {
    const now = Date.now();
    const results = group.map((p): AppendResult => {
      if (p.batch && ledger && !ledger.claim(p.batch, p.requestId, now)) return "duplicate";
      for (const row of p.rows) writeRow(p.requestId, row);
      return "stored";
    });
    writeRollups(group.flatMap((p, i) => (results[i] === "stored" ? p.rows : [])));
    return results;
  });
  /**
   * A commit that failed for want of space is rolled back, and nothing of it
   * counts; but SQLite checkpoints only after a successful commit, so the WAL
   * kept its space, and every later commit failed the same way: on an 8 MiB
   * volume whose WAL a reader had let grow to 7.6 MiB, once the reader was
   * gone and 64 KiB were freed, 30 requests over 3 s were all 503. A
   * checkpoint that cuts the WAL to zero bytes gives that space back whenever
   * the database file has room to take the WAL's pages (there, at once):
   * right after the failure, and before each commit while the volume is
   * short, because a failing commit first writes its pages into whatever
   * room was freed, and the checkpoint would then find none left.
   */
  let outOfSpace = false;
  let reclaimFailedAt = Number.NEGATIVE_INFINITY;
  const reclaim = (): void => {
    if (performance.now() - reclaimFailedAt < RECLAIM_RETRY_MILLIS || !walCheckpointFits(db))
      return;
    // No wait for other connections: this runs on the event loop, per commit.
    if (reclaimWal(db, 0) === "failed") reclaimFailedAt = performance.now();
  };
  const write = (group: readonly QueuedAppend[]): AppendResult[] => {
    if (outOfSpace) reclaim();
    try {
      const results = writeGroup.immediate(group);
      if (outOfSpace) {
        outOfSpace = false;
        // Once more after the fault: the WAL back to zero bytes, not to journal_size_limit.
        reclaim();
      }
      return results;
    } catch (error) {
      if (sqliteOutOfSpace(sqliteCode(error))) {
        outOfSpace = true;
        reclaim();
      }
      throw sqliteStorageError(error);
    }
  };
  return createGroupCommit(
    {
      write,
      claimsBatchIds: ledger !== undefined,
      // A failed SQLite transaction is rolled back, whatever failed: never ambiguous.
      retryAlone: () => true,
      maxConcurrentCommits: 1,
    },
    options,
  );
}
