import { timingSafeEqual } from "node:crypto";
import type { ConnectError } from "@connectrpc/connect";
import { errors } from "../errors.js";
import type { Logger } from "../log.js";
import { type ApiKeyRow, type KeyStore, newKeyId } from "../storage/key-store.js";
import { checksumPlausible, digestApiKey, generateApiKey, hashApiKey } from "./api-key.js";
import { ENV_ADMIN_KEY, type EnvApiKey } from "./env-keys.js";
import type { Principal } from "./principal.js";

/** Options of {@link createKeyRegistry}. */
export interface KeyRegistryOptions {
  readonly store: KeyStore;
  /** Rate limit given to keys from the environment, requests per minute. */
  readonly defaultRateLimit: number;
  readonly log: Logger;
  readonly now?: () => Date;
}

/** The outcome of looking a key up: the principal, or the error to answer with. */
export type AuthResult =
  | { readonly ok: true; readonly principal: Principal }
  | { readonly ok: false; readonly reason: AuthFailure; readonly error: ConnectError };

/**
 * Why a key was refused; only `invalid` (no such key) is a guess worth
 * throttling. `throttled`: the caller's address failed too often to be checked.
 */
export type AuthFailure = "missing" | "invalid" | "inactive" | "expired" | "throttled";

/**
 * The API keys, cached in memory: authenticating a request reads no database
 * and writes none (docs/legacy-contract.md W6). Last-use times are kept in memory and persisted by
 * {@link KeyRegistry.flushUsage}.
 */
export interface KeyRegistry {
  /**
   * Stores the environment's keys (hash only), retires a variable's previous
   * key when its value changed (docs/legacy-contract.md W24), and syncs their rate limit.
   */
  syncEnvKeys(keys: readonly EnvApiKey[]): Promise<void>;
  /** On a first start with no key at all, creates one and returns it (once); otherwise undefined. */
  ensureBootstrapKey(): Promise<{ key: string; service: string } | undefined>;
  /**
   * Checks an `x-api-key` value: missing, unknown and inactive keys fail
   * (docs/legacy-contract.md §1 steps 1-3). A success counts as a use of the key unless
   * `recordUse` is false (reporting a key's own state is not a use).
   */
  authenticate(key: string | null | undefined, options?: { recordUse?: boolean }): AuthResult;
  /** Re-reads the keys from storage; a reload asked for while one runs waits for it and runs once more. */
  reload(): Promise<void>;
  /** Writes the in-memory last-use times to storage; a failure is logged and the times kept for the next flush. */
  flushUsage(): Promise<void>;
}

interface CachedKey {
  readonly row: ApiKeyRow;
  readonly digest: Buffer;
  readonly principal: Principal;
  /** `expires_at` parsed once (Infinity when the key never expires). */
  readonly expiresAtMillis: number;
}

/** When a key stops working; a malformed expiry fails closed (already expired). */
function expiryMillis(expiresAt: string | null): number {
  if (expiresAt === null) return Number.POSITIVE_INFINITY;
  const millis = Date.parse(`${expiresAt.replace(" ", "T")}Z`);
  return Number.isNaN(millis) ? Number.NEGATIVE_INFINITY : millis;
}

/** Creates the key registry and loads the stored keys. */
export async function createKeyRegistry(options: KeyRegistryOptions): Promise<KeyRegistry> {
  const { store, log } = options;
  const now = options.now ?? (() => new Date());
  let byHash = new Map<string, CachedKey>();
  const lastUsed = new Map<number, Date>();

  const load = async (): Promise<void> => {
    const next = new Map<string, CachedKey>();
    for (const row of await store.all()) {
      next.set(row.keyHash, {
        row,
        digest: Buffer.from(row.keyHash, "hex"),
        expiresAtMillis: expiryMillis(row.expiresAt),
        principal: {
          keyId: row.id,
          publicId: row.keyId,
          source: row.source,
          bucketId: row.keyHash.slice(0, 32),
          service: row.serviceName,
          rateLimitPerMinute: row.rateLimit,
          scope: row.scope,
        },
      });
    }
    byHash = next;
  };

  const lookup = (key: string): CachedKey | undefined => {
    const digest = digestApiKey(key);
    const cached = byHash.get(digest.toString("hex"));
    // The map finds the candidate; the digests are still compared in constant time (docs/legacy-contract.md W14).
    if (cached === undefined || !timingSafeEqual(cached.digest, digest)) return undefined;
    return cached;
  };

  /** The reload running now, and whether another was asked for meanwhile. */
  let reloading: Promise<void> | undefined;
  let again = false;
  const reload = (): Promise<void> => {
    if (reloading !== undefined) {
      again = true;
      return reloading;
    }
    const run = async (): Promise<void> => {
      try {
        do {
          again = false;
          await load();
        } while (again);
      } finally {
        reloading = undefined;
      }
    };
    reloading = run();
    return reloading;
  };

  await reload();

  return {
    async syncEnvKeys(keys) {
      for (const env of keys) {
        const keyHash = hashApiKey(env.key);
        const source = `env:${env.variable}`;
        const existing = byHash.get(keyHash);
        if (existing?.row.source === source && !existing.row.isActive) {
          // The variable went back to a key it had before (a rotation rolled back).
          await store.setActive(existing.row.id, true);
          log.info(
            { keyId: existing.row.keyId, variable: env.variable },
            "previous api key restored",
          );
        }
        if (existing === undefined) {
          // Logged by its public id, the one `keys list` shows (never the row id).
          const keyId = newKeyId();
          await store.insert({
            keyId,
            keyHash,
            serviceName: env.service,
            rateLimit: options.defaultRateLimit,
            scope: env.scope,
            source,
            description: `from ${env.variable}`,
          });
          log.info({ keyId, service: env.service, variable: env.variable }, "api key added");
        } else if (existing.row.source === source) {
          if (existing.row.rateLimit !== options.defaultRateLimit) {
            await store.setRateLimit(existing.row.id, options.defaultRateLimit);
          }
          if (existing.row.scope !== env.scope) await store.setScope(existing.row.id, env.scope);
        }
        for (const { row } of byHash.values()) {
          if (row.source === source && row.keyHash !== keyHash && row.isActive) {
            await store.setActive(row.id, false);
            log.info({ keyId: row.keyId, variable: env.variable }, "previous api key retired");
          }
        }
        await reload();
      }
      // The admin key is retired when its variable is unset: an admin scope
      // must not outlive the operator's intent.
      const adminSource = `env:${ENV_ADMIN_KEY}`;
      if (!keys.some((k) => k.variable === ENV_ADMIN_KEY)) {
        for (const { row } of byHash.values()) {
          if (row.source === adminSource && row.isActive) {
            await store.setActive(row.id, false);
            log.info(
              { keyId: row.keyId, variable: ENV_ADMIN_KEY },
              "admin api key retired: variable unset",
            );
          }
        }
        await reload();
      }
    },

    async ensureBootstrapKey() {
      if (byHash.size > 0) return undefined;
      const key = generateApiKey();
      const service = "default";
      const keyId = newKeyId();
      await store.insert({
        keyId,
        keyHash: hashApiKey(key),
        serviceName: service,
        rateLimit: options.defaultRateLimit,
        scope: "ingest",
        source: "generated",
        description: "created on first start",
      });
      await reload();
      log.info({ keyId, service }, "first start: api key generated");
      return { key, service };
    },

    authenticate(key, { recordUse = true } = {}) {
      if (key === null || key === undefined || key.trim() === "") {
        return { ok: false, reason: "missing", error: errors.apiKeyRequired() };
      }
      // A mistyped generated key fails its checksum: no lookup needed.
      const cached = checksumPlausible(key) ? lookup(key) : undefined;
      if (cached === undefined) {
        return { ok: false, reason: "invalid", error: errors.invalidApiKey() };
      }
      if (!cached.row.isActive) {
        return { ok: false, reason: "inactive", error: errors.inactiveApiKey() };
      }
      if (cached.expiresAtMillis <= now().getTime()) {
        return { ok: false, reason: "expired", error: errors.expiredApiKey() };
      }
      if (recordUse) lastUsed.set(cached.row.id, now());
      return { ok: true, principal: cached.principal };
    },

    reload,

    async flushUsage() {
      if (lastUsed.size === 0) return;
      const uses = new Map(lastUsed);
      lastUsed.clear();
      try {
        await store.recordLastUsed(uses);
      } catch (error) {
        // Keep the times for the next flush unless newer ones arrived meanwhile.
        for (const [id, at] of uses) if (!lastUsed.has(id)) lastUsed.set(id, at);
        log.warn({ err: error }, "could not persist api key usage; will retry");
      }
    },
  };
}
