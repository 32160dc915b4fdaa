import { catalogSchemaVersion } from "./catalog-schema.js";
import { rollupSchemaSql, SQLITE_ROLLUPS } from "./rollups.js";

/** One schema step; `version` is the schema version after it (SQLite's `PRAGMA user_version`, PostgreSQL's `schema_migrations`). */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/**
 * The schema, as ordered steps (docs/conventions.md: versioned with `PRAGMA user_version`).
 * Append new steps; never edit a released one. The specialized tables
 * (auth_metrics, tool_metrics, discovery_metrics) and their columns are not
 * written here: each step runs first what the event catalog says it adds
 * ({@link catalogMigrationSql}: a table at its `table_since`, a column at its
 * `column_since`), then its own statements, which may index them.
 *
 * Tables and columns follow docs/legacy-contract.md §3. Indexes follow docs/dependencies.md trap 11: every
 * index leads with the event timestamp or with a low-cardinality column (a few
 * hot leaf pages per commit); the contract's random-key indexes
 * (user_hash, tool_name, client_name) are left out because each distinct key
 * dirties its own page on every commit. Queries on those columns over a time
 * range use the timestamp index.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial_schema",
    sql: `
CREATE TABLE api_keys (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key_hash TEXT UNIQUE NOT NULL,
  service_name TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (datetime('now')),
  last_used_at TEXT,
  is_active BOOLEAN NOT NULL DEFAULT 1,
  rate_limit INTEGER NOT NULL DEFAULT 1000,
  usage_count INTEGER NOT NULL DEFAULT 0,
  daily_usage_limit INTEGER,
  monthly_usage_limit INTEGER,
  description TEXT,
  source TEXT
);
CREATE INDEX idx_api_keys_service ON api_keys (service_name);

CREATE TABLE metrics (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  request_id TEXT NOT NULL,
  service TEXT NOT NULL,
  service_version TEXT,
  instance_id TEXT,
  metric_type TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  value REAL NOT NULL,
  duration_ms REAL,
  dimensions TEXT,
  metadata TEXT,
  created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX idx_metrics_timestamp ON metrics (timestamp);
CREATE INDEX idx_metrics_type_timestamp ON metrics (metric_type, timestamp);
CREATE INDEX idx_metrics_service_type_timestamp ON metrics (service, metric_type, timestamp);

CREATE INDEX idx_auth_timestamp ON auth_metrics (timestamp);
CREATE INDEX idx_auth_success_timestamp ON auth_metrics (success, timestamp);

CREATE INDEX idx_discovery_timestamp ON discovery_metrics (timestamp);
CREATE INDEX idx_discovery_results_timestamp ON discovery_metrics (results_count, timestamp);

CREATE INDEX idx_tool_timestamp ON tool_metrics (timestamp);
CREATE INDEX idx_tool_method_timestamp ON tool_metrics (method, timestamp);
CREATE INDEX idx_tool_success_timestamp ON tool_metrics (success, timestamp);

CREATE TABLE retention_policies (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  table_name TEXT UNIQUE NOT NULL,
  retention_days INTEGER NOT NULL,
  is_active BOOLEAN NOT NULL DEFAULT 1,
  timestamp_column TEXT NOT NULL DEFAULT 'timestamp',
  created_at TEXT NOT NULL DEFAULT (datetime('now')),
  updated_at TEXT NOT NULL DEFAULT (datetime('now'))
);
`,
  },
  {
    version: 2,
    name: "api_key_scopes",
    // What a key may do (issue 7): "ingest" keys send events; "admin" keys also
    // run the retention and database operations (docs/legacy-contract.md W10).
    sql: `
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'ingest' CHECK (scope IN ('ingest', 'admin'));
`,
  },
  {
    version: 3,
    name: "retention_policy_origin",
    // Whether a policy still follows METRICS_RETENTION_DAYS ('default') or was
    // set through the admin API ('admin'), which then wins across restarts.
    sql: `
ALTER TABLE retention_policies ADD COLUMN origin TEXT NOT NULL DEFAULT 'default' CHECK (origin IN ('default', 'admin'));
`,
  },
  {
    version: 4,
    name: "api_key_ids_and_expiry",
    // A non-secret id to name a key in logs and the CLI, and an expiry
    // (rotation keeps the old key valid until then).
    sql: `
ALTER TABLE api_keys ADD COLUMN key_id TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at TEXT;
UPDATE api_keys SET key_id = 'key_' || lower(hex(randomblob(6)));
CREATE UNIQUE INDEX idx_api_keys_key_id ON api_keys (key_id);
`,
  },
  {
    version: 5,
    name: "ingest_batches_and_readiness_probe",
    // Batch ids committed within the idempotency window (issue 10), written in
    // the same transaction as the batch's rows: a retried batch is found here
    // and answered with its original result instead of being stored again.
    // Keyed by service then id; clients send time-ordered ids (UUIDv7), so
    // both indexes take their entries at the right edge (docs/dependencies.md trap 11).
    // readiness_probe: the one row /readyz writes to ask whether the disk
    // takes writes when no events came lately.
    sql: `
CREATE TABLE ingest_batches (
  service TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  request_id TEXT NOT NULL,
  events INTEGER NOT NULL,
  digest TEXT NOT NULL,
  committed_ms INTEGER NOT NULL,
  PRIMARY KEY (service, batch_id)
) WITHOUT ROWID;
CREATE INDEX idx_ingest_batches_committed ON ingest_batches (committed_ms);
CREATE TABLE readiness_probe (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  probed_at INTEGER NOT NULL
);
`,
  },
  {
    version: 6,
    name: "key_service_and_target_kind",
    // key_service: the service of the key that sent each event, which may
    // report as another (METRICS_KEY_SERVICE_BINDING=audit, issue 20): the
    // upstream gateway's nginx reports as "nginx" with the registry's key.
    // With it, from the event catalog: auth_metrics.target_kind, the newer
    // auth-server dimension (AuthRequest.target_kind, column_since 6), NULL in
    // rows written before: nobody recorded them then.
    sql: `
ALTER TABLE metrics ADD COLUMN key_service TEXT;
`,
  },
  {
    version: 7,
    name: "api_key_read_scope",
    // The read scope: keys that may only query the history (QueryService,
    // GET /export; docs/security.md#scopes-and-service-binding). SQLite cannot
    // alter a CHECK, so api_keys is rebuilt as the SQLite docs' "Making Other
    // Kinds Of Table Schema Changes" says: the same columns in the same order,
    // defaults and constraints as versions 1, 2 and 4 left them, but the
    // widened CHECK; every row copied with its id; the AUTOINCREMENT
    // high-water mark carried over (an id is never reused, even a deleted
    // key's); its indexes made again. Nothing references api_keys.
    sql: `
CREATE TABLE api_keys_new (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key_hash TEXT UNIQUE NOT NULL,
  service_name TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (datetime('now')),
  last_used_at TEXT,
  is_active BOOLEAN NOT NULL DEFAULT 1,
  rate_limit INTEGER NOT NULL DEFAULT 1000,
  usage_count INTEGER NOT NULL DEFAULT 0,
  daily_usage_limit INTEGER,
  monthly_usage_limit INTEGER,
  description TEXT,
  source TEXT,
  scope TEXT NOT NULL DEFAULT 'ingest' CHECK (scope IN ('ingest', 'read', 'admin')),
  key_id TEXT,
  expires_at TEXT
);
INSERT INTO api_keys_new (id, key_hash, service_name, created_at, last_used_at, is_active,
  rate_limit, usage_count, daily_usage_limit, monthly_usage_limit, description, source, scope,
  key_id, expires_at)
SELECT id, key_hash, service_name, created_at, last_used_at, is_active,
  rate_limit, usage_count, daily_usage_limit, monthly_usage_limit, description, source, scope,
  key_id, expires_at
FROM api_keys;
DELETE FROM sqlite_sequence WHERE name = 'api_keys_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'api_keys_new', seq FROM sqlite_sequence WHERE name = 'api_keys';
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;
CREATE INDEX idx_api_keys_service ON api_keys (service_name);
CREATE UNIQUE INDEX idx_api_keys_key_id ON api_keys (key_id);
`,
  },
  {
    version: 8,
    name: "rollups",
    // The history's rollups (docs/history.md), written from now on in the same
    // transaction as the raw rows, and the backfill's progress: the events
    // stored before this step (ids up to end_id) are rolled up at start-up,
    // a batch per transaction, from next_id on, so a killed backfill resumes.
    sql: `${rollupSchemaSql(SQLITE_ROLLUPS)}
CREATE TABLE rollup_backfill (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  next_id INTEGER NOT NULL,
  end_id INTEGER NOT NULL
);
INSERT INTO rollup_backfill (id, next_id, end_id) SELECT 1, 1, coalesce(max(id), 0) FROM metrics;
`,
  },
];

/** The schema version this build expects. */
export const SCHEMA_VERSION = MIGRATIONS.at(-1)?.version ?? 0;

if (catalogSchemaVersion() > SCHEMA_VERSION) {
  throw new Error(
    `the event catalog adds a table or column at schema version ${catalogSchemaVersion()}, but the last migration is ${SCHEMA_VERSION}: append a migration step for it`,
  );
}
