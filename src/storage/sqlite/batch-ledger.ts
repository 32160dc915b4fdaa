import type { Database } from "better-sqlite3";
import type { BatchClaim, BatchLedger, BatchLedgerOptions } from "../batch-ledger.js";

/** The SQLite ledger, whose claims its event store makes inside each group's transaction. */
export interface SqliteBatchLedger extends BatchLedger {
  /**
   * Records a batch id; call inside the transaction that writes its rows.
   * False when a batch within the window already holds the id: the rows must
   * not be written. An id older than the window is taken over.
   */
  claim(claim: BatchClaim, requestId: string, nowMillis: number): boolean;
}

/** Creates the ledger over an open, migrated SQLite database. */
export function createBatchLedger(db: Database, options: BatchLedgerOptions): SqliteBatchLedger {
  const now = options.now ?? Date.now;
  const windowMillis = options.windowMillis;
  const select = db.prepare<
    [string, string, number],
    { request_id: string; events: number; digest: string }
  >(
    `SELECT request_id, events, digest FROM ingest_batches
     WHERE service = ? AND batch_id = ? AND committed_ms >= ?`,
  );
  const upsert = db.prepare(
    `INSERT INTO ingest_batches (service, batch_id, request_id, events, digest, committed_ms)
     VALUES (@service, @batchId, @requestId, @events, @digest, @now)
     ON CONFLICT (service, batch_id) DO UPDATE SET
       request_id = excluded.request_id, events = excluded.events, digest = excluded.digest,
       committed_ms = excluded.committed_ms
     WHERE committed_ms < @windowStart`,
  );
  const prune = db.prepare(
    `DELETE FROM ingest_batches WHERE (service, batch_id) IN (
       SELECT service, batch_id FROM ingest_batches WHERE committed_ms < ? ORDER BY committed_ms LIMIT ?)`,
  );
  return {
    windowMillis,
    async find(service, batchId) {
      const row = select.get(service, batchId, now() - windowMillis);
      return row && { requestId: row.request_id, events: row.events, digest: row.digest };
    },
    claim(claim, requestId, nowMillis) {
      const result = upsert.run({
        service: claim.service,
        batchId: claim.batchId,
        requestId,
        events: claim.events,
        digest: claim.digest,
        now: nowMillis,
        windowStart: nowMillis - windowMillis,
      });
      return result.changes > 0;
    },
    async prune(maxRows) {
      return prune.run(now() - windowMillis, maxRows).changes;
    },
  };
}
