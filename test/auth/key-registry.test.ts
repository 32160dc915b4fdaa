import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../../src/auth/api-key.js";
import { createKeyRegistry } from "../../src/auth/key-registry.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { openStorage } from "../../src/storage/drivers.js";
import {
  freshPgSchema,
  onPostgres,
  pgTestDb,
  refuseWrites,
  sqliteTestDb,
  type TestDb,
} from "../support/database.js";
import { tempDir } from "../support/service.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A registry over the backend's real key store, and a connection to its table. */
async function setup() {
  const schema = onPostgres ? await freshPgSchema() : undefined;
  const config = loadConfig(
    schema ? { DATABASE_URL: schema.url } : { SQLITE_DB_PATH: join(tempDir(), "keys.db") },
  );
  const storage = await openStorage(config);
  const db: TestDb = schema ? pgTestDb(schema.url) : sqliteTestDb(config.sqlitePath);
  let closed = false;
  const closeStorage = async () => {
    if (!closed) await storage.close();
    closed = true;
  };
  cleanups.push(async () => {
    await db.close();
    await closeStorage();
    await schema?.drop();
  });
  let now = new Date("2026-11-25T12:00:00Z");
  const registry = await createKeyRegistry({
    store: storage.keys,
    defaultRateLimit: 1000,
    log: createLogger("silent"),
    now: () => now,
  });
  return { db, registry, closeStorage, setNow: (d: Date) => (now = d) };
}

const env = (variable: string, key: string) => ({
  variable,
  key,
  service: variable.slice(16).toLowerCase(),
  scope: "ingest" as const,
});

describe("createKeyRegistry", () => {
  it("should store environment keys only as SHA-256 hashes", async () => {
    const { db, registry } = await setup();
    await registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "plain-secret")]);
    const rows = await db.all("SELECT * FROM api_keys");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      key_hash: hashApiKey("plain-secret"),
      service_name: "auth",
      is_active: 1,
      rate_limit: 1000,
    });
    expect(JSON.stringify(rows)).not.toContain("plain-secret");
  });

  it("should authenticate a known key and refuse missing, unknown and inactive ones", async () => {
    const { db, registry } = await setup();
    await registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "k1")]);
    expect(registry.authenticate("k1")).toMatchObject({
      ok: true,
      principal: { service: "auth", rateLimitPerMinute: 1000, scope: "ingest" },
    });
    expect(registry.authenticate(null)).toMatchObject({
      ok: false,
      error: { rawMessage: "API key required in X-API-Key header" },
    });
    expect(registry.authenticate("")).toMatchObject({
      ok: false,
      error: { rawMessage: "API key required in X-API-Key header" },
    });
    expect(registry.authenticate("k2")).toMatchObject({
      ok: false,
      error: { rawMessage: "Invalid API key" },
    });
    await db.run("UPDATE api_keys SET is_active = FALSE");
    await registry.reload();
    expect(registry.authenticate("k1")).toMatchObject({
      ok: false,
      error: { rawMessage: "API key is inactive" },
    });
  });

  it("should give METRICS_ADMIN_API_KEY the admin scope, and retire it once the variable is unset", async () => {
    const { registry } = await setup();
    const adminKey = {
      variable: "METRICS_ADMIN_API_KEY",
      key: "root",
      service: "admin",
      scope: "admin" as const,
    };
    await registry.syncEnvKeys([adminKey, env("METRICS_API_KEY_AUTH", "k1")]);
    expect(registry.authenticate("root")).toMatchObject({
      ok: true,
      principal: { scope: "admin" },
    });
    expect(registry.authenticate("k1")).toMatchObject({ ok: true, principal: { scope: "ingest" } });
    await registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "k1")]);
    expect(registry.authenticate("root")).toMatchObject({
      ok: false,
      error: { rawMessage: "API key is inactive" },
    });
    await registry.syncEnvKeys([adminKey]);
    expect(registry.authenticate("root").ok).toBe(true);
  });

  it("should retire a variable's previous key when its value changes (W24)", async () => {
    const { db, registry } = await setup();
    await registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "old")]);
    await registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "new")]);
    expect(registry.authenticate("new").ok).toBe(true);
    expect(registry.authenticate("old")).toMatchObject({
      ok: false,
      error: { rawMessage: "API key is inactive" },
    });
    expect(await db.get("SELECT count(*) AS n FROM api_keys")).toEqual({ n: 2 });
  });

  it("should restore the previous key when a variable goes back to it", async () => {
    const { registry } = await setup();
    await registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "a")]);
    await registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "b")]);
    await registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "a")]);
    expect(registry.authenticate("a").ok).toBe(true);
    expect(registry.authenticate("b")).toMatchObject({
      ok: false,
      error: { rawMessage: "API key is inactive" },
    });
  });

  it("should keep last-use times for the next flush when a flush fails", async () => {
    const { db, registry, setNow } = await setup();
    await registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "k1")]);
    setNow(new Date("2026-11-25T12:00:07Z"));
    registry.authenticate("k1");
    const undo = await refuseWrites(db, "api_keys", "UPDATE");
    await expect(registry.flushUsage()).resolves.toBeUndefined();
    await undo();
    await registry.flushUsage();
    expect(await db.get("SELECT last_used_at FROM api_keys")).toEqual({
      last_used_at: "2026-11-25 12:00:07",
    });
  });

  it("should read and write no database while authenticating, and persist last use when flushed", async () => {
    const { registry, closeStorage } = await setup();
    await registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "k1")]);
    await closeStorage(); // any database access from here on would throw
    expect(registry.authenticate("k1").ok).toBe(true);
    expect(registry.authenticate("nope").ok).toBe(false);
  });

  it("should write the last use time on flush", async () => {
    const { db, registry, setNow } = await setup();
    await registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "k1")]);
    setNow(new Date("2026-11-25T12:34:56Z"));
    registry.authenticate("k1");
    await registry.flushUsage();
    expect(await db.get("SELECT last_used_at FROM api_keys")).toEqual({
      last_used_at: "2026-11-25 12:34:56",
    });
  });

  it("should create one key on a first start with none, and none later", async () => {
    const { registry } = await setup();
    const created = await registry.ensureBootstrapKey();
    expect(created?.key).toMatch(/^mcpm_[A-Za-z0-9_-]{43}[0-9a-f]{8}$/);
    expect(registry.authenticate(created?.key).ok).toBe(true);
    expect(await registry.ensureBootstrapKey()).toBeUndefined();
  });
});
