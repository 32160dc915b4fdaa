import type { Database } from "better-sqlite3";
import type { SqliteBatchLedger } from "./batch-ledger.js";
import {
  type AppendResult,
  createGroupCommit,
  type EventStore,
  type EventStoreOptions,
  type QueuedAppend,
} from "./group-commit.js";
import { type EventRow, type EventTable, INSERT_COLUMNS, rowValues } from "./rows.js";

export type { AppendResult, CommitStats, EventStore, EventStoreOptions } from "./group-commit.js";

/** Options of the SQLite {@link createEventStore}. */
export interface SqliteEventStoreOptions extends EventStoreOptions {
  /** Where batch ids are claimed, in each batch's transaction; without it, appends may not carry one. */
  readonly ledger?: SqliteBatchLedger;
}

/**
 * Creates the event store over an open database. Statements are prepared once;
 * each group is written in one `BEGIN IMMEDIATE` transaction (STACK.md trap 10).
 */
export function createEventStore(db: Database, options: SqliteEventStoreOptions): EventStore {
  const insert = (table: EventTable) => {
    const names = INSERT_COLUMNS[table].map(([name]) => name);
    return db.prepare(
      `INSERT INTO ${table} (${names.join(", ")}) VALUES (${names.map(() => "?").join(", ")})`,
    );
  };
  const insertMetric = insert("metrics");
  const specialized = {
    auth_metrics: insert("auth_metrics"),
    tool_metrics: insert("tool_metrics"),
    discovery_metrics: insert("discovery_metrics"),
  };
  const writeRow = (requestId: string, r: EventRow): void => {
    const values = rowValues(requestId, r);
    insertMetric.run(...values.metrics);
    if (values.specialized) specialized[values.specialized.table].run(...values.specialized.values);
  };

  const ledger = options.ledger;
  /** Writes a group's rows; an append whose batch id is already taken writes nothing. */
  const writeGroup = db.transaction((group: readonly QueuedAppend[]): AppendResult[] => {
    const now = Date.now();
    return group.map((p) => {
      if (p.batch && ledger && !ledger.claim(p.batch, p.requestId, now)) return "duplicate";
      for (const row of p.rows) writeRow(p.requestId, row);
      return "stored";
    });
  });
  return createGroupCommit(
    {
      write: (group) => writeGroup.immediate(group),
      claimsBatchIds: ledger !== undefined,
      // A failed SQLite transaction is rolled back, whatever failed: never ambiguous.
      retryAlone: () => true,
      maxConcurrentCommits: 1,
    },
    options,
  );
}
