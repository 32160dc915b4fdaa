import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey, hashApiKey } from "../../src/auth/api-key.js";
import { MIGRATIONS, SCHEMA_VERSION } from "../../src/storage/migrations.js";
import { PG_MIGRATIONS } from "../../src/storage/postgres/migrations.js";
import { sqliteStepSql } from "../../src/storage/sqlite/migrations.js";
import { freshPgSchema, pgTestDb, sqliteTestDb } from "../support/database.js";
import { postMetrics } from "../support/legacy.js";
import {
  onPostgres,
  startTestService,
  type TestDb,
  type TestService,
  tempDir,
} from "../support/service.js";

/** The version before the read scope. */
const BEFORE = 6;

const READ_ONLY = "this API key has the read scope: it may only query (QueryService, GET /export)";

/** Every column of `api_keys`, in its order. */
const KEY_COLUMNS = `id, key_hash, service_name, created_at, last_used_at, is_active, rate_limit,
  usage_count, daily_usage_limit, monthly_usage_limit, description, source, scope, key_id, expires_at`;

/** A database at schema version 6, as a build before the read scope left it, on the suite's backend. */
async function databaseAtVersion6(): Promise<{
  env: Record<string, string>;
  sql: TestDb;
  drop(): Promise<void>;
}> {
  if (onPostgres) {
    const schema = await freshPgSchema();
    const client = new pg.Client({ connectionString: schema.url });
    await client.connect();
    try {
      // The version table as src/storage/postgres/migrations.ts makes it.
      await client.query(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT 'before')",
      );
      for (const step of PG_MIGRATIONS.filter((m) => m.version <= BEFORE)) {
        await client.query(step.sql);
        await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
          step.version,
          step.name,
        ]);
      }
    } finally {
      await client.end();
    }
    return { env: { DATABASE_URL: schema.url }, sql: pgTestDb(schema.url), drop: schema.drop };
  }
  const path = join(tempDir(), "metrics.db");
  const raw = new BetterSqlite3(path);
  for (const step of MIGRATIONS.filter((m) => m.version <= BEFORE)) raw.exec(sqliteStepSql(step));
  raw.pragma(`user_version = ${BEFORE}`);
  raw.close();
  return { env: { SQLITE_DB_PATH: path }, sql: sqliteTestDb(path), drop: async () => {} };
}

/**
 * The shape of `api_keys`: its columns (type, nullability, default) and its
 * indexes, as each backend describes them (the catalogs differ by design).
 */
async function keyTableShape(sql: TestDb): Promise<unknown> {
  if (onPostgres) {
    return {
      columns: await sql.all(
        `SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = 'api_keys' ORDER BY ordinal_position`,
      ),
      indexes: await sql.all(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'api_keys' ORDER BY indexname",
      ),
    };
  }
  return {
    columns: await sql.all(
      "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('api_keys')",
    ),
    indexes: await sql.all(
      "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'api_keys' ORDER BY name",
    ),
  };
}

/** The schema version a database is at, on either backend. */
async function schemaVersion(sql: TestDb): Promise<number> {
  const row = onPostgres
    ? await sql.get<{ v: number }>("SELECT max(version) AS v FROM schema_migrations")
    : await sql.get<{ v: number }>("SELECT user_version AS v FROM pragma_user_version");
  return Number(row?.v);
}

describe("schema version 7 (api_key_read_scope): a version-6 database upgraded keeps every key", () => {
  const keys = {
    ingest: generateApiKey(),
    admin: generateApiKey(),
    revoked: generateApiKey(),
    expiring: generateApiKey(),
    deleted: generateApiKey(),
  };
  let old: Awaited<ReturnType<typeof databaseAtVersion6>>;
  let svc: TestService;
  let rowsBefore: unknown[];
  let shapeBefore: unknown;
  /** The highest id the old table ever gave, a deleted key's. */
  let highest: number;

  beforeAll(async () => {
    old = await databaseAtVersion6();
    const insert = (
      key: string,
      values: { service: string; scope: string; active?: boolean; expiresAt?: string | null },
    ) =>
      old.sql.run(
        `INSERT INTO api_keys (key_hash, service_name, scope, is_active, rate_limit, usage_count,
           daily_usage_limit, monthly_usage_limit, description, source, key_id, last_used_at, expires_at)
         VALUES (?, ?, ?, ${values.active === false ? "FALSE" : "TRUE"}, 500, 7, 10, 100, 'made before', 'cli',
           ?, '2026-11-30 10:00:00', ?)`,
        hashApiKey(key),
        values.service,
        values.scope,
        `key_${hashApiKey(key).slice(0, 12)}`,
        values.expiresAt ?? null,
      );
    await insert(keys.ingest, { service: "old-ingest", scope: "ingest" });
    await insert(keys.admin, { service: "old-admin", scope: "admin" });
    await insert(keys.revoked, { service: "old-ingest", scope: "ingest", active: false });
    await insert(keys.expiring, {
      service: "old-ingest",
      scope: "ingest",
      expiresAt: "2099-01-01 00:00:00",
    });
    await insert(keys.deleted, { service: "old-deleted", scope: "ingest" });
    highest = Number((await old.sql.get<{ id: number }>("SELECT max(id) AS id FROM api_keys"))?.id);
    await old.sql.run("DELETE FROM api_keys WHERE service_name = 'old-deleted'");
    rowsBefore = await old.sql.all(`SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY id`);
    shapeBefore = await keyTableShape(old.sql);
    // The service migrates it as it starts, and stores its configured key.
    svc = await startTestService({ ...old.env, METRICS_KEY_RELOAD_MS: "100" });
  });
  afterAll(async () => {
    await svc?.close();
    await old.sql.close();
    await old.drop();
  });

  it("should be at the current version, with version 7 named api_key_read_scope", async () => {
    expect(await schemaVersion(old.sql)).toBe(SCHEMA_VERSION);
    expect(MIGRATIONS.find((m) => m.version === 7)?.name).toBe("api_key_read_scope");
    // PostgreSQL records each step it ran; SQLite keeps only the number (user_version).
    if (onPostgres) {
      expect(
        await old.sql.all("SELECT version, name FROM schema_migrations WHERE version = 7"),
      ).toEqual([{ version: 7, name: "api_key_read_scope" }]);
    }
  });

  it("should keep every key row as it was, column for column, and the table's columns and indexes", async () => {
    expect(
      await old.sql.all(
        `SELECT ${KEY_COLUMNS} FROM api_keys WHERE service_name <> 'test-service' ORDER BY id`,
      ),
    ).toEqual(rowsBefore);
    expect(rowsBefore).toHaveLength(4);
    expect(await keyTableShape(old.sql)).toEqual(shapeBefore);
  });

  it("should never give a new key the id of one deleted before the upgrade", async () => {
    const made = await old.sql.get<{ id: number }>(
      "SELECT id FROM api_keys WHERE service_name = 'test-service'",
    );
    expect(Number(made?.id)).toBeGreaterThan(highest);
  });

  it("should keep the old keys working as they did: ingest, admin, revoked, expiring", async () => {
    const post = (key: string) =>
      postMetrics(
        svc.url,
        { service: "old-ingest", metrics: [{ type: "custom", value: 1 }] },
        { key },
      );
    expect((await post(keys.ingest)).status).toBe(200);
    expect((await post(keys.expiring)).status).toBe(200);
    expect((await post(keys.revoked)).json).toEqual({ detail: "API key is inactive" });
    expect((await post(keys.deleted)).status).toBe(401);
    const admin = await fetch(`${svc.url}/admin/retention/policies`, {
      headers: { "x-api-key": keys.admin },
    });
    expect(admin.status).toBe(200);
  });

  it("should take the read scope now, and still refuse a scope it does not know", async () => {
    const hash = hashApiKey(keys.expiring);
    expect(await old.sql.run("UPDATE api_keys SET scope = 'read' WHERE key_hash = ?", hash)).toBe(
      1,
    );
    await expect(
      old.sql.run("UPDATE api_keys SET scope = 'write' WHERE key_hash = ?", hash),
    ).rejects.toThrow(/check constraint/i);
    // The running service reads it as a read key: it may no longer send events.
    await expect
      .poll(
        async () =>
          (
            await postMetrics(
              svc.url,
              { service: "old-ingest", metrics: [{ type: "custom", value: 1 }] },
              { key: keys.expiring },
            )
          ).json,
        { timeout: 5_000 },
      )
      .toEqual({ detail: READ_ONLY });
  });
});
