import { randomBytes } from "node:crypto";

/**
 * What a key may do, as `api_keys.scope` holds it (its CHECK, schema version
 * 7): `ingest` sends events, `read` queries the history (QueryService,
 * `GET /export`), `admin` may do all of it and the admin operations
 * (docs/security.md#scopes-and-service-binding).
 */
export const KEY_SCOPES = ["ingest", "read", "admin"] as const;

/** One of {@link KEY_SCOPES}. */
export type KeyScope = (typeof KEY_SCOPES)[number];

/** Whether `text` names a scope (a command line's `--scope`, a stored row's). */
export function isKeyScope(text: string): text is KeyScope {
  return (KEY_SCOPES as readonly string[]).includes(text);
}

/**
 * A stored row's scope, as it is: a scope this build does not know (a newer
 * build's, on a shared database) fails the load loudly rather than being read
 * as another, which would give the key rights it was never given.
 */
function scopeOfRow(keyId: string, scope: string): KeyScope {
  if (isKeyScope(scope)) return scope;
  throw new Error(
    `api_keys: key ${keyId} has scope ${JSON.stringify(scope)}, which this build does not know (${KEY_SCOPES.join(", ")})`,
  );
}

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
  readonly scope: KeyScope;
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
  readonly scope: KeyScope;
  readonly source: string | null;
  readonly description: string | null;
  /** Default: a new random id. */
  readonly keyId?: string;
  readonly expiresAt?: string | null;
}

/**
 * Access to the `api_keys` table. Only the key registry and the key CLI call
 * it, never per request.
 */
export interface KeyStore {
  all(): Promise<ApiKeyRow[]>;
  /**
   * Inserts a key and returns its row id. A key whose hash is already stored
   * (another replica stored the same configured key first) is left as it is,
   * and its id returned.
   */
  insert(key: NewApiKey): Promise<number>;
  setActive(id: number, active: boolean): Promise<void>;
  setRateLimit(id: number, rateLimit: number): Promise<void>;
  setScope(id: number, scope: KeyScope): Promise<void>;
  /** Sets or clears when a key stops working. */
  setExpiresAt(id: number, expiresAt: string | null): Promise<void>;
  /** Persists last-use times tracked in memory, in one transaction; a later time already stored wins. */
  recordLastUsed(uses: ReadonlyMap<number, Date>): Promise<void>;
}

/** The columns the key stores select, in this order. */
export const KEY_COLUMNS = `id, key_id, key_hash, service_name, is_active, rate_limit, scope, source,
  created_at, last_used_at, expires_at, description`;

/** A row of `api_keys` as a driver returns it (SQLite's booleans are 0 and 1). */
export interface RawKeyRow {
  id: number;
  key_hash: string;
  service_name: string;
  is_active: number | boolean;
  rate_limit: number;
  scope: string;
  source: string | null;
  created_at: string;
  last_used_at: string | null;
  key_id: string;
  expires_at: string | null;
  description: string | null;
}

/** The `YYYY-MM-DD HH:MM:SS` UTC text of SQLite's `datetime('now')`, which the legacy schema's time columns hold on both backends. */
export function storedDateTime(date: Date): string {
  return date.toISOString().slice(0, 19).replace("T", " ");
}

/** A stored key's row as the key registry uses it. */
export function keyRowOf(r: RawKeyRow): ApiKeyRow {
  return {
    id: Number(r.id),
    keyId: r.key_id,
    keyHash: r.key_hash,
    serviceName: r.service_name,
    isActive: r.is_active !== 0 && r.is_active !== false,
    rateLimit: Number(r.rate_limit),
    scope: scopeOfRow(r.key_id, r.scope),
    source: r.source,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    expiresAt: r.expires_at,
    description: r.description,
  };
}

/** The values of a new key, in the order of {@link INSERT_KEY_COLUMNS}. */
export function newKeyValues(k: NewApiKey): unknown[] {
  return [
    k.keyId ?? newKeyId(),
    k.keyHash,
    k.serviceName,
    k.rateLimit,
    k.scope,
    k.source,
    k.description,
    k.expiresAt ?? null,
  ];
}

/** The columns {@link newKeyValues} fills. */
export const INSERT_KEY_COLUMNS =
  "key_id, key_hash, service_name, rate_limit, scope, source, description, expires_at";
