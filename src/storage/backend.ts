import type pg from "pg";
import type { ReadinessProbe } from "../admin/readiness.js";
import { RETAINED_TABLES } from "../catalog/catalog.js";
import type { Config } from "../config.js";
import { type BatchLedger, createBatchLedger } from "./batch-ledger.js";
import {
  openDatabase,
  seedRetentionPolicies,
  sqliteReadinessProbe,
  useStatementBusyWait,
} from "./database.js";
import { createEventStore } from "./event-store.js";
import type { EventStore, EventStoreOptions } from "./group-commit.js";
import type { KeyStore } from "./key-store.js";
import { createKeyStore } from "./key-store.js";
import { createPgBatchLedger, createPgEventStore } from "./postgres/event-store.js";
import { createPgKeyStore } from "./postgres/key-store.js";
import { migratePg, pgSchemaVersion } from "./postgres/migrations.js";
import { createPgPool, NOW_TEXT, query, redactedUrl, withinMillis } from "./postgres/pool.js";
import { pgRetentionStore } from "./postgres/retention-store.js";
import type { RetentionStore } from "./retention.js";
import { sqliteRetentionStore } from "./sqlite-retention.js";

/**
 * One storage engine behind the service: the same tables and the same
 * semantics (group commit, ack after commit, batch ids claimed with the rows,
 * bounded retention, keys) on the embedded SQLite file or on a PostgreSQL
 * server that several replicas share.
 */
export interface StorageBackend {
  readonly kind: "sqlite" | "postgres";
  /** Where the data is, for logs: the file, or the URL without its password. */
  readonly location: string;
  /** The SQLite file, for the size gauge; undefined on PostgreSQL. */
  readonly filePath: string | undefined;
  readonly keys: KeyStore;
  readonly retention: RetentionStore;
  readonly readiness: ReadinessProbe;
  /** The batch ids committed within the window (undefined: batch ids are not claimed). */
  readonly ledger: BatchLedger | undefined;
  createEventStore(options: EventStoreOptions): EventStore;
  /** Seeds and follows the default retention (see `seedRetentionPolicies`). */
  seedRetentionPolicies(retentionDays: number): Promise<void>;
  /** Start-up's writes are done: from now on, writes wait on locks the run-time way. */
  startupDone(): void;
  close(): Promise<void>;
}

/**
 * Opens the configured storage and brings its schema up to date: PostgreSQL
 * when `DATABASE_URL` names one, else the SQLite file.
 */
export async function openStorage(config: Config): Promise<StorageBackend> {
  return config.databaseUrl === undefined
    ? openSqlite(config)
    : openPostgres(config, config.databaseUrl);
}

function ledgerWindowMillis(config: Config): number | undefined {
  return config.idempotencyWindowSeconds > 0 ? config.idempotencyWindowSeconds * 1000 : undefined;
}

function openSqlite(config: Config): StorageBackend {
  const db = openDatabase(config.sqlitePath, {
    synchronous: config.sqliteSynchronous,
    busyTimeoutMillis: config.sqliteBusyTimeoutMillis,
  });
  const windowMillis = ledgerWindowMillis(config);
  const ledger = windowMillis === undefined ? undefined : createBatchLedger(db, { windowMillis });
  return {
    kind: "sqlite",
    location: config.sqlitePath,
    filePath: config.sqlitePath,
    keys: createKeyStore(db),
    retention: sqliteRetentionStore(db, config.sqlitePath),
    readiness: sqliteReadinessProbe(db),
    ledger,
    createEventStore: (options) =>
      createEventStore(db, {
        ...options,
        ...(ledger ? { ledger } : {}),
        busyTimeoutMillis: config.sqliteBusyTimeoutMillis,
        waitTimeoutMillis: config.storageTimeoutMillis,
      }),
    async seedRetentionPolicies(retentionDays) {
      seedRetentionPolicies(db, retentionDays);
    },
    startupDone: () => useStatementBusyWait(db),
    async close() {
      db.close();
    },
  };
}

/** How long a readiness probe waits for PostgreSQL before it calls it unreachable. */
const PG_PROBE_TIMEOUT_MILLIS = 2000;

/** A probe that did not answer in time, as a connection failure (SQLSTATE class 08). */
function probeTimeout(): Error {
  return Object.assign(new Error("PostgreSQL did not answer the readiness probe in time"), {
    code: "08006",
  });
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
    kind: "postgres",
    location: redactedUrl(url),
    filePath: undefined,
    keys: createPgKeyStore(pool),
    retention: pgRetentionStore(pool),
    readiness: {
      async write() {
        await bounded(probeWrite());
      },
      schemaVersion: () => bounded(probeVersion()),
    },
    ledger,
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
     SELECT unnest($1::text[]), $2 ON CONFLICT (table_name) DO NOTHING`,
    [RETAINED_TABLES, retentionDays],
  );
  await query(
    pool,
    `UPDATE retention_policies
     SET retention_days = $1, updated_at = ${NOW_TEXT}
     WHERE origin = 'default' AND retention_days <> $1`,
    [retentionDays],
  );
}
