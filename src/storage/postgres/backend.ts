import pg from "pg";
import type { Config } from "../../config.js";
import type { SqlValue, StorageBackend, StorageDriver } from "../backend.js";
import { ledgerWindowMillis } from "../batch-ledger.js";
import { RETAINED } from "../retention.js";
import { classifying, type StorageError } from "../storage-error.js";
import { pgStorageError } from "./errors.js";
import { createPgBatchLedger, createPgEventStore } from "./event-store.js";
import { createPgKeyStore } from "./key-store.js";
import { migratePg, pgSchemaVersion } from "./migrations.js";
import {
  createPgPool,
  NOW_TEXT,
  numbered,
  query,
  queryArrays,
  redactedUrl,
  withinMillis,
} from "./pool.js";
import { pgRetentionStore } from "./retention-store.js";
import { pgRollupBackfill } from "./rollups.js";

/** How long a readiness probe waits for PostgreSQL before it calls it unreachable. */
const PG_PROBE_TIMEOUT_MILLIS = 2000;

/** A probe that did not answer in time, as a connection failure (SQLSTATE class 08). */
function probeTimeout(): StorageError {
  return pgStorageError(
    Object.assign(new Error("PostgreSQL did not answer the readiness probe in time"), {
      code: "08006",
    }),
  );
}

/**
 * Bounds a probe's wait, so that `/readyz` answers while the server does not.
 * The query itself runs on (to the pool's query timeout): `shared` keeps one
 * of each kind under way, so that unanswered probes cannot fill the pool.
 */
function bounded<T>(work: Promise<T>): Promise<T> {
  return withinMillis(work, PG_PROBE_TIMEOUT_MILLIS, probeTimeout);
}

/** Runs `start` unless a run of it is still under way, whose promise is then shared. */
function shared<T>(start: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () => {
    running ??= start().finally(() => {
      running = undefined;
    });
    return running;
  };
}

async function openPostgres(config: Config, url: string): Promise<StorageBackend> {
  // Migrations on a connection of their own, without the query timeout: a step
  // may take long on a big table, and it may wait for another replica's lock.
  const migrator = createPgPool({ url, max: 1, queryTimeoutMillis: 0 });
  try {
    await migratePg(migrator);
  } finally {
    await migrator.end();
  }
  // Every wait of a request for PostgreSQL (a connection, a query) ends within
  // the storage timeout, below the one port's transport timers (see config.ts).
  const pool = createPgPool({
    url,
    max: config.databasePoolMax,
    queryTimeoutMillis: config.storageTimeoutMillis,
  });
  const probeWrite = shared(() =>
    query(
      pool,
      `INSERT INTO readiness_probe (id, probed_at) VALUES (1, $1)
       ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at`,
      [Date.now()],
    ),
  );
  const probeVersion = shared(() => pgSchemaVersion(pool));
  const windowMillis = ledgerWindowMillis(config);
  const ledger =
    windowMillis === undefined ? undefined : createPgBatchLedger(pool, { windowMillis });
  return {
    name: "postgres",
    capabilities: { sharedByReplicas: true },
    location: redactedUrl(url),
    filePath: undefined,
    // Their queries classify their errors already (pool.ts's query()); wrapped
    // as SQLite's are, so that nothing they throw leaves unclassified.
    keys: classifying(createPgKeyStore(pool), pgStorageError),
    retention: classifying(pgRetentionStore(pool), pgStorageError),
    readiness: classifying(
      {
        async write() {
          await bounded(probeWrite());
        },
        schemaVersion: () => bounded(probeVersion()),
      },
      pgStorageError,
    ),
    ledger: ledger && classifying(ledger, pgStorageError),
    rollupBackfill: classifying(pgRollupBackfill(pool), pgStorageError),
    history: {
      all: async <T>(sql: string, params: readonly SqlValue[]) =>
        (await query(pool, numbered(sql), [...params])).rows as T[],
      arrays: (sql: string, params: readonly SqlValue[]) =>
        queryArrays(pool, numbered(sql), [...params]) as Promise<SqlValue[][]>,
      jsonText: (column: string) => `coalesce(to_json(${column})::text, 'null')`,
    },
    createEventStore: (options) =>
      createPgEventStore(pool, {
        ...options,
        ...(ledger ? { ledger } : {}),
        waitTimeoutMillis: config.storageTimeoutMillis,
        // One connection is left for readiness, keys and retention.
        maxConcurrentCommits: Math.max(1, Math.min(4, config.databasePoolMax - 1)),
      }),
    seedRetentionPolicies: (retentionDays) => seedPgRetentionPolicies(pool, retentionDays),
    startupDone: () => {},
    close: () => pool.end(),
  };
}

/** {@link seedRetentionPolicies} on PostgreSQL: one statement per step, safe when replicas start together. */
async function seedPgRetentionPolicies(pool: pg.Pool, retentionDays: number): Promise<void> {
  await query(
    pool,
    `INSERT INTO retention_policies (table_name, retention_days)
     SELECT unnest($1::text[]), unnest($2::int4[]) ON CONFLICT (table_name) DO NOTHING`,
    [RETAINED.map((t) => t.name), RETAINED.map((t) => t.defaultDays ?? retentionDays)],
  );
  // Only the raw tables follow METRICS_RETENTION_DAYS; the rollups keep their own.
  await query(
    pool,
    `UPDATE retention_policies
     SET retention_days = $1, updated_at = ${NOW_TEXT}
     WHERE origin = 'default' AND retention_days <> $1 AND table_name = ANY($2::text[])`,
    [retentionDays, RETAINED.filter((t) => t.defaultDays === undefined).map((t) => t.name)],
  );
}

/** How long the standby's probe of PostgreSQL waits to connect, and then for its answer. */
const PROBE_CONNECT_MILLIS = 2000;

/** The URL of a configuration that names PostgreSQL. */
function urlOf(config: Config): string {
  if (config.databaseUrl === undefined) throw new Error("no DATABASE_URL");
  return config.databaseUrl;
}

/** A PostgreSQL server that replicas share. */
export const postgresDriver: StorageDriver = {
  name: "postgres",
  open: (config) => openPostgres(config, urlOf(config)),
  /**
   * Whether PostgreSQL answers a query, asked on a connection of its own within
   * a few seconds: the standby port is kept until it does, so that clients and
   * load balancers get 503s, not refused connections, while it does not.
   */
  async probeWritable(config) {
    const client = new pg.Client({
      connectionString: urlOf(config),
      connectionTimeoutMillis: PROBE_CONNECT_MILLIS,
      query_timeout: PROBE_CONNECT_MILLIS,
    });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.query("SELECT 1");
      return undefined;
    } catch (error) {
      return error;
    } finally {
      await client.end().catch(() => {});
    }
  },
  // PostgreSQL not answering yet (starting, restarting, out of connections) passes by itself.
  transientProblem(error) {
    const failure = pgStorageError(error);
    return failure.failure === "unavailable" ? failure.problem : undefined;
  },
  location: (config) => redactedUrl(urlOf(config)),
  // The server's database exists or the connection says why not.
  missing: () => undefined,
};
