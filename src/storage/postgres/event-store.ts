import type pg from "pg";
import type { BatchClaim, BatchLedger, BatchLedgerOptions } from "../batch-ledger.js";
import {
  type AppendResult,
  createGroupCommit,
  type EventStore,
  type EventStoreOptions,
  type QueuedAppend,
} from "../group-commit.js";
import type { EventRow, SqlBool } from "../rows.js";
import { inTransaction } from "./pool.js";

/**
 * Each table's rows go in one statement whatever their number: one array
 * parameter per column, expanded by `unnest` (no 65,535-parameter limit, and
 * one statement to parse and plan per table and commit).
 */
const INSERT_METRICS = `INSERT INTO metrics (request_id, service, service_version, instance_id,
    metric_type, timestamp, value, duration_ms, dimensions, metadata)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::float8[], $8::float8[], $9::text[], $10::text[])`;
const INSERT_AUTH = `INSERT INTO auth_metrics (request_id, timestamp, service, duration_ms,
    success, method, server, user_hash, error_code)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::bool[], $6::text[],
    $7::text[], $8::text[], $9::text[])`;
const INSERT_TOOL = `INSERT INTO tool_metrics (request_id, timestamp, service, duration_ms,
    tool_name, server_path, server_name, success, client_name, client_version, method, user_hash,
    error_code, input_size_bytes, output_size_bytes)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::text[],
    $7::text[], $8::bool[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
    $14::int8[], $15::int8[])`;
const INSERT_DISCOVERY = `INSERT INTO discovery_metrics (request_id, timestamp, service,
    duration_ms, query, results_count, top_k_services, top_n_tools, embedding_time_ms,
    faiss_search_time_ms)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::int4[],
    $7::int4[], $8::int4[], $9::float8[], $10::float8[])`;

/**
 * Claims a group's batch ids at once. A row older than the window is taken
 * over; one within it is left alone and not returned. A concurrent claim of
 * the same id by another replica waits for that transaction: when it
 * commits, this claim finds the row and fails; when it rolls back, this one
 * succeeds.
 */
const CLAIM = `INSERT INTO ingest_batches (service, batch_id, request_id, events, digest, committed_ms)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::int8[])
  ON CONFLICT (service, batch_id) DO UPDATE SET
    request_id = excluded.request_id, events = excluded.events, digest = excluded.digest,
    committed_ms = excluded.committed_ms
  WHERE ingest_batches.committed_ms < $7
  RETURNING service, batch_id`;

const bool = (value: SqlBool): boolean | null => (value === null ? null : value === 1);

/** Column arrays of one table, filled row by row. */
function columns(count: number): unknown[][] {
  return Array.from({ length: count }, () => []);
}
function push(target: unknown[][], values: readonly unknown[]): void {
  for (let i = 0; i < values.length; i++) target[i]?.push(values[i]);
}

/** Writes rows of many requests with one statement per table. */
async function insertRows(client: pg.PoolClient, appends: readonly QueuedAppend[]): Promise<void> {
  const metrics = columns(10);
  const auth = columns(9);
  const tool = columns(15);
  const discovery = columns(10);
  for (const { requestId, rows } of appends) {
    for (const r of rows) writeColumns(requestId, r, metrics, auth, tool, discovery);
  }
  if (metrics[0]?.length) await client.query(INSERT_METRICS, metrics);
  if (auth[0]?.length) await client.query(INSERT_AUTH, auth);
  if (tool[0]?.length) await client.query(INSERT_TOOL, tool);
  if (discovery[0]?.length) await client.query(INSERT_DISCOVERY, discovery);
}

function writeColumns(
  requestId: string,
  r: EventRow,
  metrics: unknown[][],
  auth: unknown[][],
  tool: unknown[][],
  discovery: unknown[][],
): void {
  push(metrics, [
    requestId,
    r.service,
    r.serviceVersion,
    r.instanceId,
    r.metricType,
    r.timestamp,
    r.value,
    r.durationMs,
    r.dimensions,
    r.metadata,
  ]);
  const shared = [requestId, r.timestamp, r.service, r.durationMs];
  if (r.auth) {
    const a = r.auth;
    push(auth, [...shared, bool(a.success), a.method, a.server, a.userHash, a.errorCode]);
  } else if (r.tool) {
    const t = r.tool;
    push(tool, [
      ...shared,
      t.toolName,
      t.serverPath,
      t.serverName,
      bool(t.success),
      t.clientName,
      t.clientVersion,
      t.method,
      t.userHash,
      t.errorCode,
      t.inputSizeBytes,
      t.outputSizeBytes,
    ]);
  } else if (r.discovery) {
    const d = r.discovery;
    push(discovery, [
      ...shared,
      d.query,
      d.resultsCount,
      d.topKServices,
      d.topNTools,
      d.embeddingTimeMs,
      d.faissSearchTimeMs,
    ]);
  }
}

const keyOf = (claim: BatchClaim) => `${claim.service}\n${claim.batchId}`;

/**
 * Claims the group's batch ids and returns each append's result. Claims go in
 * key order, so that two replicas claiming overlapping ids lock them in the
 * same order; an id twice in one group is claimed once, the later append
 * being its duplicate.
 */
async function claimBatchIds(
  client: pg.PoolClient,
  group: readonly QueuedAppend[],
  windowMillis: number,
): Promise<AppendResult[]> {
  const results: AppendResult[] = group.map(() => "stored");
  const first = new Map<string, number>();
  group.forEach((p, i) => {
    if (p.batch === undefined) return;
    const key = keyOf(p.batch);
    if (first.has(key)) results[i] = "duplicate";
    else first.set(key, i);
  });
  if (first.size === 0) return results;
  const now = Date.now();
  const claims = [...first.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const values = columns(6);
  for (const [, i] of claims) {
    const p = group[i] as QueuedAppend;
    const b = p.batch as BatchClaim;
    push(values, [b.service, b.batchId, p.requestId, b.events, b.digest, now]);
  }
  const claimed = await client.query<{ service: string; batch_id: string }>(CLAIM, [
    ...values,
    now - windowMillis,
  ]);
  const won = new Set(claimed.rows.map((r) => `${r.service}\n${r.batch_id}`));
  for (const [key, i] of first) if (!won.has(key)) results[i] = "duplicate";
  return results;
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
 * committed), with a few commits overlapping on the pool, each one
 * transaction of one `INSERT ... SELECT FROM unnest(...)` per table, batch
 * ids claimed first.
 */
export function createPgEventStore(pool: pg.Pool, options: PgEventStoreOptions): EventStore {
  const windowMillis = options.ledger?.windowMillis;
  return createGroupCommit(
    {
      write: (group) =>
        inTransaction(pool, async (client) => {
          const results =
            windowMillis === undefined
              ? group.map((): AppendResult => "stored")
              : await claimBatchIds(client, group, windowMillis);
          await insertRows(
            client,
            group.filter((_, i) => results[i] === "stored"),
          );
          return results;
        }),
      claimsBatchIds: windowMillis !== undefined,
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
      const result = await pool.query<{ request_id: string; events: number; digest: string }>(
        `SELECT request_id, events, digest FROM ingest_batches
         WHERE service = $1 AND batch_id = $2 AND committed_ms >= $3`,
        [service, batchId, now() - windowMillis],
      );
      const row = result.rows[0];
      return row && { requestId: row.request_id, events: row.events, digest: row.digest };
    },
    async prune(maxRows) {
      const result = await pool.query(
        `DELETE FROM ingest_batches WHERE (service, batch_id) IN (
           SELECT service, batch_id FROM ingest_batches WHERE committed_ms < $1
           ORDER BY committed_ms LIMIT $2 FOR UPDATE SKIP LOCKED)`,
        [now() - windowMillis, maxRows],
      );
      return result.rowCount ?? 0;
    },
  };
}
