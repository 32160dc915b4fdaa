import { setTimeout as sleep } from "node:timers/promises";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import { holdWriteLock, numberedPlaceholders, onPostgres } from "./database.js";
import type { TestService } from "./service.js";

/*
 * "Answered only once committed" (docs/legacy-contract.md W1), proven at the moment the answer
 * arrives. Reading the database after an answer proves little: a service that
 * answered first and committed a moment later (on the next turn of its event
 * loop) would have committed by the time the test reads. So another
 * connection holds the write lock while the request is sent: nothing can
 * commit until it is released. An answer that arrives while the lock is held
 * was sent before its rows were committed; once the lock is released, the
 * rows must be readable from another connection the moment the answer
 * arrives, before the test's own event loop lets anything else run.
 */

/** How long the write lock is held while the request waits for its commit. */
export const HOLD_MILLIS = 300;

/** What {@link sendWhileCommitsAreHeld} saw. */
export interface HeldAnswer<T> {
  readonly answer: T;
  /** Whether the answer arrived while no commit could happen (a broken promise). */
  readonly answeredWhileHeld: boolean;
  /** Rows per table for the answer's request id, read from another connection as the answer arrived. */
  readonly storedOnArrival: Readonly<Record<string, number>>;
}

/**
 * A reader on another connection. On SQLite it reads synchronously, so that
 * what it sees is the database at the instant the answer was handed over.
 */
function readerOf(svc: TestService): {
  count(tables: readonly string[], requestId: string): Promise<Record<string, number>>;
  close(): Promise<void>;
} {
  if (!onPostgres) {
    const db = new BetterSqlite3(svc.dbPath, { readonly: true });
    return {
      count(tables, requestId) {
        const counts: Record<string, number> = {};
        for (const table of tables) {
          counts[table] = (
            db
              .prepare(`SELECT count(*) AS n FROM ${table} WHERE request_id = ?`)
              .get(requestId) as { n: number }
          ).n;
        }
        return Promise.resolve(counts);
      },
      async close() {
        db.close();
      },
    };
  }
  const client = new pg.Client({ connectionString: svc.storageEnv.DATABASE_URL });
  const connected = client.connect();
  return {
    async count(tables, requestId) {
      await connected;
      const counts: Record<string, number> = {};
      for (const table of tables) {
        const { rows } = await client.query<{ n: string }>(
          numberedPlaceholders(`SELECT count(*) AS n FROM ${table} WHERE request_id = ?`),
          [requestId],
        );
        counts[table] = Number(rows[0]?.n ?? 0);
      }
      return counts;
    },
    async close() {
      await connected;
      await client.end();
    },
  };
}

/**
 * Sends a request while another connection holds the write lock for
 * {@link HOLD_MILLIS}, then releases it; records whether the answer came
 * while the lock was still held, and counts the rows of `tables` carrying the
 * answer's request id the moment it arrived.
 */
export async function sendWhileCommitsAreHeld<T>(
  svc: TestService,
  send: () => Promise<T>,
  requestIdOf: (answer: T) => string,
  tables: readonly string[],
): Promise<HeldAnswer<T>> {
  const reader = readerOf(svc);
  const release = await holdWriteLock(svc.storageEnv);
  let held = true;
  let answeredWhileHeld = false;
  let arrived = false;
  try {
    const answered = send().then(async (answer) => {
      arrived = true;
      answeredWhileHeld = held;
      // Started before any other callback of this process runs.
      const storedOnArrival = await reader.count(tables, requestIdOf(answer));
      return { answer, storedOnArrival };
    });
    // Settles the race below without leaving a rejection unhandled.
    answered.catch(() => undefined);
    for (let waited = 0; waited < HOLD_MILLIS && !arrived; waited += 10) await sleep(10);
    held = false;
    await release();
    const { answer, storedOnArrival } = await answered;
    return { answer, answeredWhileHeld, storedOnArrival };
  } finally {
    if (held) await release().catch(() => undefined);
    await reader.close();
  }
}
