import { randomBytes } from "node:crypto";
import type { Database } from "better-sqlite3";

/** A new non-secret key id: `key_` and 12 hex digits. */
export function newKeyId(): string {
  return `key_${randomBytes(6).toString("hex")}`;
}

/** A stored API key: its hash and settings, never the key itself. */
export interface ApiKeyRow {
  readonly id: number;
  /** The non-secret public id (`key_...`), for logs and the CLI. */
  readonly keyId: string;
  /** Lowercase hex SHA-256 of the key. */
  readonly keyHash: string;
  readonly serviceName: string;
  readonly isActive: boolean;
  /** Requests per minute. */
  readonly rateLimit: number;
  /** `ingest` or `admin`. */
  readonly scope: "ingest" | "admin";
  /** Where the key came from: `env:<VARIABLE>`, `generated`, or null for keys made elsewhere. */
  readonly source: string | null;
  readonly createdAt: string;
  readonly lastUsedAt: string | null;
  /** When the key stops working (SQLite `datetime` text, UTC), if ever. */
  readonly expiresAt: string | null;
  readonly description: string | null;
}

/** A key to insert. */
export interface NewApiKey {
  readonly keyHash: string;
  readonly serviceName: string;
  readonly rateLimit: number;
  readonly scope: "ingest" | "admin";
  readonly source: string | null;
  readonly description: string | null;
  /** Default: a new random id. */
  readonly keyId?: string;
  readonly expiresAt?: string | null;
}

/** Access to the `api_keys` table. Only the key registry calls it, never per request. */
export interface KeyStore {
  all(): ApiKeyRow[];
  insert(key: NewApiKey): number;
  setActive(id: number, active: boolean): void;
  setRateLimit(id: number, rateLimit: number): void;
  setScope(id: number, scope: "ingest" | "admin"): void;
  /** Sets or clears when a key stops working. */
  setExpiresAt(id: number, expiresAt: string | null): void;
  /** Persists last-use times tracked in memory, in one transaction. */
  recordLastUsed(uses: ReadonlyMap<number, Date>): void;
}

interface RawKeyRow {
  id: number;
  key_hash: string;
  service_name: string;
  is_active: number;
  rate_limit: number;
  scope: string;
  source: string | null;
  created_at: string;
  last_used_at: string | null;
  key_id: string;
  expires_at: string | null;
  description: string | null;
}

/** SQLite `datetime('now')` format, which the contract's timestamp columns use. */
export function sqliteDateTime(date: Date): string {
  return date.toISOString().slice(0, 19).replace("T", " ");
}

/** Creates the key store over an open database. */
export function createKeyStore(db: Database): KeyStore {
  const selectAll = db.prepare<[], RawKeyRow>(
    `SELECT id, key_id, key_hash, service_name, is_active, rate_limit, scope, source, created_at,
            last_used_at, expires_at, description
     FROM api_keys ORDER BY id`,
  );
  const insert = db.prepare(
    `INSERT INTO api_keys
       (key_id, key_hash, service_name, rate_limit, scope, source, description, expires_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const setActive = db.prepare("UPDATE api_keys SET is_active = ? WHERE id = ?");
  const setRateLimit = db.prepare("UPDATE api_keys SET rate_limit = ? WHERE id = ?");
  const setScope = db.prepare("UPDATE api_keys SET scope = ? WHERE id = ?");
  const setExpiresAt = db.prepare("UPDATE api_keys SET expires_at = ? WHERE id = ?");
  const touch = db.prepare(
    `UPDATE api_keys SET last_used_at = ?
     WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
  );
  const recordLastUsed = db.transaction((uses: ReadonlyMap<number, Date>) => {
    for (const [id, at] of uses) {
      const text = sqliteDateTime(at);
      touch.run(text, id, text);
    }
  });

  return {
    all: () =>
      selectAll.all().map((r) => ({
        id: r.id,
        keyId: r.key_id,
        keyHash: r.key_hash,
        serviceName: r.service_name,
        isActive: r.is_active !== 0,
        rateLimit: r.rate_limit,
        scope: r.scope === "admin" ? "admin" : "ingest",
        source: r.source,
        createdAt: r.created_at,
        lastUsedAt: r.last_used_at,
        expiresAt: r.expires_at,
        description: r.description,
      })),
    insert: (k) =>
      Number(
        insert.run(
          k.keyId ?? newKeyId(),
          k.keyHash,
          k.serviceName,
          k.rateLimit,
          k.scope,
          k.source,
          k.description,
          k.expiresAt ?? null,
        ).lastInsertRowid,
      ),
    setActive: (id, active) => {
      setActive.run(active ? 1 : 0, id);
    },
    setRateLimit: (id, rateLimit) => {
      setRateLimit.run(rateLimit, id);
    },
    setScope: (id, scope) => {
      setScope.run(scope, id);
    },
    setExpiresAt: (id, expiresAt) => {
      setExpiresAt.run(expiresAt, id);
    },
    recordLastUsed: (uses) => {
      if (uses.size > 0) recordLastUsed.immediate(uses);
    },
  };
}
