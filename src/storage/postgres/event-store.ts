import type pg from "pg";
import {
  type BatchClaim,
  type BatchLedger,
  type BatchLedgerOptions,
  batchKey,
} from "../batch-ledger.js";
import {
  type AppendResult,
  createGroupCommit,
  type EventStore,
  type EventStoreOptions,
  type QueuedAppend,
} from "../group-commit.js";
import { EVENT_TABLES, type EventRow, insertColumns, rowValues } from "../rows.js";
import { StorageError } from "../storage-error.js";
import { pgStorageError } from "./errors.js";
import { query } from "./pool.js";
import { rollupCtes, rollupParameters } from "./rollups.js";

/** The claims' columns ($1-$6) and the window's start ($7), before the tables' arrays. */
const CLAIM_PARAMETERS = 7;

/** One table's data-modifying CTE, its arrays numbered from `$first`. */
function insertCte(table: string, first: number): string {
  const names = insertColumns(table)
    .map(([name]) => name)
    .join(", ");
  const arrays = ["text", ...insertColumns(table).map(([, type]) => type)]
    .map((type, i) => `$${first + i}::${type}[]`)
    .join(", ");
  return `${table}_rows AS (
  INSERT INTO ${table} (${names})
  SELECT ${names}
  FROM unnest(${arrays}) AS r(k, ${names})
  WHERE r.k IS NULL OR r.k IN (SELECT k FROM claimed)
)`;
}

/**
 * Each table's CTE, numbered after the claims, in {@link EVENT_TABLES} order,
 * then the rollups' (./rollups.ts).
 */
function tableCtes(): string[] {
  let next = CLAIM_PARAMETERS + 1;
  const tables = EVENT_TABLES.map((table) => {
    const cte = insertCte(table, next);
    next += insertColumns(table).length + 1;
    return cte;
  });
  return [...tables, ...rollupCtes(next).ctes];
}

/**
 * A whole group commit in one statement, so one round trip: PostgreSQL runs a
 * single statement as its own transaction, and its data-modifying CTEs all
 * see the claims' `RETURNING`. Batch ids are claimed first: a row older than
 * the window is taken over, one within it is left alone and not returned. A
 * concurrent claim of the same id by another replica waits for that
 * transaction; when it commits, this claim finds the row and fails, when it
 * rolls back, this one succeeds. Each table's rows come as one array per
 * column, expanded by `unnest` (no 65,535-parameter limit, one plan whatever
 * the rows), with `k`, the row's batch key (NULL without a batch id): a row
 * is written only if its batch's claim succeeded.
 */
const COMMIT_GROUP = `
WITH claimed AS (
  INSERT INTO ingest_batches (service, batch_id, request_id, events, digest, committed_ms)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::int8[])
  ON CONFLICT (service, batch_id) DO UPDATE SET
    request_id = excluded.request_id, events = excluded.events, digest = excluded.digest,
    committed_ms = excluded.committed_ms
  WHERE ingest_batches.committed_ms < $7
  RETURNING service || E'\\n' || batch_id AS k -- batchKey()
), ${tableCtes().join(", ")}
SELECT k FROM claimed`;

/** Column arrays of one table, filled row by row. */
function columns(count: number): unknown[][] {
  return Array.from({ length: count }, () => []);
}
function push(target: unknown[][], values: readonly unknown[]): void {
  // A value short or over would shift every later column: fail the commit instead.
  if (values.length !== target.length) {
    throw new Error(`${values.length} values for ${target.length} columns`);
  }
  for (let i = 0; i < values.length; i++) (target[i] as unknown[]).push(values[i]);
}

/** The parameters of {@link COMMIT_GROUP}: claims, then each table's columns, each row led by its batch key. */
class GroupParameters {
  readonly claims = columns(CLAIM_PARAMETERS - 1);
  /** Per table of {@link EVENT_TABLES}, one array per column after the batch key's. */
  readonly tables: ReadonlyMap<string, unknown[][]> = new Map(
    EVENT_TABLES.map((table) => [table, columns(insertColumns(table).length + 1)]),
  );

  private table(name: string): unknown[][] {
    const table = this.tables.get(name);
    if (table === undefined) throw new Error(`not an event table: ${name}`);
    return table;
  }

  claim(batch: BatchClaim, requestId: string, now: number): void {
    push(this.claims, [batch.service, batch.batchId, requestId, batch.events, batch.digest, now]);
  }

  row(key: string | null, requestId: string, r: EventRow): void {
    const values = rowValues(requestId, r);
    push(this.table("metrics"), [key, ...values.metrics]);
    const batch = this.batches.get(key);
    if (batch === undefined) this.batches.set(key, [r]);
    else batch.push(r);
    if (values.specialized)
      push(this.table(values.specialized.table), [key, ...values.specialized.values]);
  }

  /** Rows by batch key, for the rollups. */
  readonly batches = new Map<string | null, EventRow[]>();

  values(windowStart: number): unknown[] {
    return [
      ...this.claims,
      windowStart,
      ...EVENT_TABLES.flatMap((table) => this.table(table)),
      ...rollupParameters(this.batches),
    ];
  }
}

/**
 * Commits a group in one statement and returns each append's result. Claims
 * go in key order, so that two replicas claiming overlapping ids lock them in
 * the same order; an id twice in one group is claimed once, the later append
 * being its duplicate (nothing of it sent).
 */
async function commitGroup(
  pool: pg.Pool,
  group: readonly QueuedAppend[],
  windowMillis: number | undefined,
): Promise<AppendResult[]> {
  const results: AppendResult[] = group.map(() => "stored");
  const keys: (string | null)[] = group.map(() => null);
  const first = new Map<string, number>();
  group.forEach((p, i) => {
    if (p.batch === undefined || windowMillis === undefined) return;
    const key = batchKey(p.batch);
    if (first.has(key)) results[i] = "duplicate";
    else first.set(key, i);
    keys[i] = key;
  });
  const now = Date.now();
  const params = new GroupParameters();
  const claims = [...first.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [, i] of claims) {
    const p = group[i] as QueuedAppend;
    params.claim(p.batch as BatchClaim, p.requestId, now);
  }
  group.forEach((p, i) => {
    if (results[i] === "duplicate") return;
    for (const row of p.rows) params.row(keys[i] ?? null, p.requestId, row);
  });
  const claimed = await pool.query<{ k: string }>({
    name: "mcp-metrics-commit-group",
    text: COMMIT_GROUP,
    values: params.values(now - (windowMillis ?? 0)),
  });
  const won = new Set(claimed.rows.map((r) => r.k));
  for (const [key, i] of first) if (!won.has(key)) results[i] = "duplicate";
  return results;
}

/**
 * A commit that failed without PostgreSQL's answer (a lost or silent
 * connection, a timeout: no SQLSTATE of its own) may have committed: its
 * error says so, and the client is told to retry with the same batch id.
 */
function answerLost(cause: unknown): StorageError {
  const error = pgStorageError(cause);
  // PostgreSQL's own answers (pg's DatabaseError) carry a severity; a socket's error does not.
  const fromServer = (error.cause as { severity?: unknown } | undefined)?.severity !== undefined;
  const answered = fromServer && !error.code.startsWith("08");
  if (error.failure !== "unavailable" || answered || error.uncertain) return error;
  return new StorageError(error.failure, error.message, {
    cause: error.cause ?? cause,
    code: error.code,
    problem: error.problem,
    uncertain: true,
  });
}

/** Options of {@link createPgEventStore}. */
export interface PgEventStoreOptions extends EventStoreOptions {
  /** The idempotency window, when batch ids are claimed. */
  readonly ledger?: BatchLedger;
  /** Most commits at once on the pool. */
  readonly maxConcurrentCommits: number;
}

/**
 * The event store on PostgreSQL: group commit as on SQLite (a commit takes
 * whole requests up to the row bound and acknowledges them only once
 * committed), with a few commits overlapping on the pool, each one statement
 * ({@link COMMIT_GROUP}): claims and every table's rows in one round trip.
 */
export function createPgEventStore(pool: pg.Pool, options: PgEventStoreOptions): EventStore {
  const windowMillis = options.ledger?.windowMillis;
  return createGroupCommit(
    {
      write: async (group) => {
        try {
          return await commitGroup(pool, group, windowMillis);
        } catch (cause) {
          throw answerLost(cause);
        }
      },
      claimsBatchIds: windowMillis !== undefined,
      // Only a refusal of the data itself (a SQLSTATE PostgreSQL answered, not a lost
      // connection, after which the group may be committed) is worth a retry per request.
      retryAlone: (error) => error.failure === "internal" && /^[0-9A-Z]{5}$/.test(error.code),
      maxConcurrentCommits: options.maxConcurrentCommits,
    },
    options,
  );
}

/** The batch-id ledger on PostgreSQL (`ingest_batches`); claims are made by the event store. */
export function createPgBatchLedger(pool: pg.Pool, options: BatchLedgerOptions): BatchLedger {
  const now = options.now ?? Date.now;
  const { windowMillis } = options;
  return {
    windowMillis,
    async find(service, batchId) {
      const result = await query<{ request_id: string; events: number; digest: string }>(
        pool,
        `SELECT request_id, events, digest FROM ingest_batches
         WHERE service = $1 AND batch_id = $2 AND committed_ms >= $3`,
        [service, batchId, now() - windowMillis],
      );
      const row = result.rows[0];
      return row && { requestId: row.request_id, events: row.events, digest: row.digest };
    },
    async prune(maxRows) {
      const result = await query(
        pool,
        `DELETE FROM ingest_batches WHERE (service, batch_id) IN (
           SELECT service, batch_id FROM ingest_batches WHERE committed_ms < $1
           ORDER BY committed_ms LIMIT $2 FOR UPDATE SKIP LOCKED)`,
        [now() - windowMillis, maxRows],
      );
      return result.rowCount ?? 0;
    },
  };
}
