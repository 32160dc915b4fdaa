import type { Config } from "../config.js";

/** A batch id to record with a batch's rows. */
export interface BatchClaim {
  /** The batch's service, in the legacy spelling the key check compares (`serviceNameFromSuffix`). */
  readonly service: string;
  readonly batchId: string;
  /** How many events the batch has. */
  readonly events: number;
  /** What identifies the batch's content: a retry has the same, another batch under the same id not. */
  readonly digest: string;
}

/** A claim's key: its service and batch id, joined by a newline (which neither may hold). */
export const batchKey = (claim: BatchClaim): string => `${claim.service}\n${claim.batchId}`;

/** What the ledger knows of a committed batch. */
export interface CommittedBatch {
  /** The request id its rows were stored with. */
  readonly requestId: string;
  readonly events: number;
  readonly digest: string;
}

/**
 * The batch ids committed within the idempotency window (`ingest_batches`).
 * A batch's id is claimed in the same transaction as its rows, so a batch
 * whose id is found here is stored, and one whose claim fails is not.
 */
export interface BatchLedger {
  /** How long a batch id is remembered, in ms. */
  readonly windowMillis: number;
  /** The batch committed under this id within the window, if any. */
  find(service: string, batchId: string): Promise<CommittedBatch | undefined>;
  /** Deletes up to `maxRows` ids older than the window; returns how many went. */
  prune(maxRows: number): Promise<number>;
}

/** Options of a ledger: its window, and a clock for tests. */
export interface BatchLedgerOptions {
  readonly windowMillis: number;
  readonly now?: () => number;
}

/** The ledger's window in ms, or undefined when batch ids are not claimed (METRICS_IDEMPOTENCY_WINDOW_SECONDS=0). */
export function ledgerWindowMillis(config: Config): number | undefined {
  return config.idempotencyWindowSeconds > 0 ? config.idempotencyWindowSeconds * 1000 : undefined;
}
