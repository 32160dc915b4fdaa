import type { Logger } from "../log.js";
import type { RollupRow } from "./rollups.js";

/** A raw event as `metrics` stores it, for rolling it up after the fact. */
export interface StoredEventRow {
  readonly id: number;
  readonly service: string;
  readonly metricType: string;
  readonly timestamp: string;
  readonly value: number;
  readonly durationMs: number | null;
  /** The stored JSON texts. */
  readonly dimensions: string | null;
  readonly metadata: string | null;
}

/** What one step of the backfill did. */
export interface BackfillProgress {
  /** Events rolled up by this step. */
  readonly events: number;
  /** The next id to roll up, and the last: done once `next > end`. */
  readonly next: number;
  readonly end: number;
}

/**
 * The backfill of a database that held events before the rollups existed
 * (schema version 8): the ids up to `rollup_backfill.end_id`, rolled up from
 * `next_id` on, a batch per transaction that also moves `next_id`, so a
 * killed backfill resumes where it stopped and no event is counted twice.
 * The transaction holds the write lock (SQLite) or the progress row's lock
 * (PostgreSQL), so replicas starting together take turns.
 */
export interface RollupBackfill {
  /** Rolls up the next `limit` events; undefined once there are none left. */
  step(
    limit: number,
    rollupOf: (row: StoredEventRow) => RollupRow,
  ): Promise<BackfillProgress | undefined>;
}

/** Events per backfill transaction. */
const BATCH = 10_000;

/**
 * Rolls up every event stored before the rollups existed, logging its
 * progress at each tenth; a no-op once done (or on a database created with them).
 */
export async function backfillRollups(
  backfill: RollupBackfill,
  rollupOf: (row: StoredEventRow) => RollupRow,
  log: Logger,
): Promise<void> {
  const started = performance.now();
  let done = 0;
  let total: number | undefined;
  let nextReport = 0;
  for (;;) {
    const progress = await backfill.step(BATCH, rollupOf);
    if (progress === undefined) break;
    if (total === undefined) {
      total = progress.end - progress.next + progress.events + 1;
      log.info(
        { events: `up to ${total}` },
        "rolling up the events stored before the rollups existed",
      );
      nextReport = total / 10;
    }
    done += progress.events;
    if (done >= nextReport || progress.next > progress.end) {
      log.info(
        { rolledUp: done, seconds: Math.round((performance.now() - started) / 100) / 10 },
        `rollup backfill: ${Math.min(100, Math.round((done / total) * 100))}%`,
      );
      nextReport += total / 10;
    }
    if (progress.next > progress.end) break;
  }
}
