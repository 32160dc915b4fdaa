import { describe, expect, it } from "vitest";
import { hashApiKey } from "../../src/auth/api-key.js";
import { createKeyRegistry } from "../../src/auth/key-registry.js";
import { createLogger } from "../../src/log.js";
import { openDatabase } from "../../src/storage/database.js";
import { createKeyStore } from "../../src/storage/key-store.js";

function setup() {
  const db = openDatabase(":memory:", { synchronous: "FULL", busyTimeoutMillis: 100 });
  const store = createKeyStore(db);
  let now = new Date("2026-11-25T12:00:00Z");
  const registry = createKeyRegistry({
    store,
    defaultRateLimit: 1000,
    log: createLogger("silent"),
    now: () => now,
  });
  return { db, store, registry, setNow: (d: Date) => (now = d) };
}

const env = (variable: string, key: string) => ({
  variable,
  key,
  service: variable.slice(16).toLowerCase(),
  scope: "ingest" as const,
});

describe("createKeyRegistry", () => {
  it("should store environment keys only as SHA-256 hashes", () => {
    const { db, registry } = setup();
    registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "plain-secret")]);
    const rows = db.prepare("SELECT * FROM api_keys").all() as Record<string, unknown>[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      key_hash: hashApiKey("plain-secret"),
      service_name: "auth",
      is_active: 1,
      rate_limit: 1000,
    });
    expect(JSON.stringify(rows)).not.toContain("plain-secret");
  });

  it("should authenticate a known key and refuse missing, unknown and inactive ones", () => {
    const { db, registry } = setup();
    registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "k1")]);
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
    db.prepare("UPDATE api_keys SET is_active = 0").run();
    registry.reload();
    expect(registry.authenticate("k1")).toMatchObject({
      ok: false,
      error: { rawMessage: "API key is inactive" },
    });
  });

  it("should give METRICS_ADMIN_API_KEY the admin scope, and retire it once the variable is unset", () => {
    const { registry } = setup();
    const adminKey = {
      variable: "METRICS_ADMIN_API_KEY",
      key: "root",
      service: "admin",
      scope: "admin" as const,
    };
    registry.syncEnvKeys([adminKey, env("METRICS_API_KEY_AUTH", "k1")]);
    expect(registry.authenticate("root")).toMatchObject({
      ok: true,
      principal: { scope: "admin" },
    });
    expect(registry.authenticate("k1")).toMatchObject({ ok: true, principal: { scope: "ingest" } });
    registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "k1")]);
    expect(registry.authenticate("root")).toMatchObject({
      ok: false,
      error: { rawMessage: "API key is inactive" },
    });
    registry.syncEnvKeys([adminKey]);
    expect(registry.authenticate("root").ok).toBe(true);
  });

  it("should retire a variable's previous key when its value changes (W24)", () => {
    const { db, registry } = setup();
    registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "old")]);
    registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "new")]);
    expect(registry.authenticate("new").ok).toBe(true);
    expect(registry.authenticate("old")).toMatchObject({
      ok: false,
      error: { rawMessage: "API key is inactive" },
    });
    expect(db.prepare("SELECT count(*) AS n FROM api_keys").get()).toEqual({ n: 2 });
  });

  it("should restore the previous key when a variable goes back to it", () => {
    const { registry } = setup();
    registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "a")]);
    registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "b")]);
    registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "a")]);
    expect(registry.authenticate("a").ok).toBe(true);
    expect(registry.authenticate("b")).toMatchObject({
      ok: false,
      error: { rawMessage: "API key is inactive" },
    });
  });

  it("should keep last-use times for the next flush when a flush fails", () => {
    const { db, registry, setNow } = setup();
    registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "k1")]);
    setNow(new Date("2026-11-25T12:00:07Z"));
    registry.authenticate("k1");
    db.exec(
      "CREATE TRIGGER fail_touch BEFORE UPDATE ON api_keys BEGIN SELECT RAISE(ABORT, 'disk trouble'); END",
    );
    expect(() => registry.flushUsage()).not.toThrow();
    db.exec("DROP TRIGGER fail_touch");
    registry.flushUsage();
    expect(db.prepare("SELECT last_used_at FROM api_keys").get()).toEqual({
      last_used_at: "2026-11-25 12:00:07",
    });
  });

  it("should read and write no database while authenticating, and persist last use when flushed", () => {
    const { db, registry } = setup();
    registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "k1")]);
    db.close(); // any database access from here on would throw
    expect(registry.authenticate("k1").ok).toBe(true);
    expect(registry.authenticate("nope").ok).toBe(false);
  });

  it("should write the last use time on flush", () => {
    const { db, registry, setNow } = setup();
    registry.syncEnvKeys([env("METRICS_API_KEY_AUTH", "k1")]);
    setNow(new Date("2026-11-25T12:34:56Z"));
    registry.authenticate("k1");
    registry.flushUsage();
    expect(db.prepare("SELECT last_used_at FROM api_keys").get()).toEqual({
      last_used_at: "2026-11-25 12:34:56",
    });
  });

  it("should create one key on a first start with none, and none later", () => {
    const { registry } = setup();
    const created = registry.ensureBootstrapKey();
    expect(created?.key).toMatch(/^mcpm_[A-Za-z0-9_-]{43}[0-9a-f]{8}$/);
    expect(registry.authenticate(created?.key).ok).toBe(true);
    expect(registry.ensureBootstrapKey()).toBeUndefined();
  });
});
