import type { Database } from "better-sqlite3";
import type { SqliteBatchLedger } from "./batch-ledger.js";
import {
  type AppendResult,
  createGroupCommit,
  type EventStore,
  type EventStoreOptions,
  type QueuedAppend,
} from "./group-commit.js";
import { type EventRow, rowValues } from "./rows.js";

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
  const insertMetric = db.prepare(
    `INSERT INTO metrics (request_id, service, service_version, instance_id, metric_type,
       timestamp, value, duration_ms, dimensions, metadata)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertAuth = db.prepare(
    `INSERT INTO auth_metrics (request_id, timestamp, service, duration_ms,
       success, method, server, user_hash, error_code)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertTool = db.prepare(
    `INSERT INTO tool_metrics (request_id, timestamp, service, duration_ms, tool_name,
       server_path, server_name, success, client_name, client_version, method, user_hash,
       error_code, input_size_bytes, output_size_bytes)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertDiscovery = db.prepare(
    `INSERT INTO discovery_metrics (request_id, timestamp, service, duration_ms, query,
       results_count, top_k_services, top_n_tools, embedding_time_ms, faiss_search_time_ms)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );

  const specialized = {
    auth_metrics: insertAuth,
    tool_metrics: insertTool,
    discovery_metrics: insertDiscovery,
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
