import type { ApiKeyRow, KeyStore } from "../storage/key-store.js";
import { newKeyId, storedDateTime } from "../storage/key-store.js";
import { generateApiKey, hashApiKey } from "./api-key.js";
import type { KeyScope } from "./principal.js";

/** A stored `YYYY-MM-DD HH:MM:SS` UTC time (storedDateTime's form) in milliseconds. */
function storedTimeMillis(text: string): number {
  return Date.parse(`${text.replace(" ", "T")}Z`);
}

/** What `keys list` shows of a key: never the key, never its hash. */
export interface KeyListing {
  readonly id: string;
  readonly service: string;
  readonly scope: KeyScope;
  readonly active: boolean;
  readonly rateLimit: number;
  readonly createdAt: string;
  readonly lastUsedAt: string | null;
  readonly expiresAt: string | null;
  readonly source: string | null;
}

/** A key just made: the only time the key itself is shown. */
export interface CreatedKey {
  readonly id: string;
  readonly key: string;
  readonly service: string;
  readonly scope: KeyScope;
  readonly expiresAt: string | null;
}

/** Options of `keys create`. */
export interface CreateKeyOptions {
  readonly service: string;
  readonly scope: KeyScope;
  readonly rateLimit: number;
  /** Lifetime in ms; none when undefined. */
  readonly expiresInMillis?: number | undefined;
  readonly description?: string | undefined;
}

/**
 * The `source` of a key made with `keys create`: it names its service on
 * purpose, so a batch it sends as another service is refused even in the
 * `audit` binding mode.
 */
export const CLI_KEY_SOURCE = "cli";

/**
 * The `source` of a key that replaces a key from somewhere else: it inherits
 * the old key's binding (a rotated `METRICS_API_KEY_REGISTRY` key may still
 * report as `nginx` in `audit` mode), and its `env:` origin is not taken as
 * the variable's own key, which the next start would retire.
 */
export function rotatedSource(old: string | null): string {
  return old === CLI_KEY_SOURCE ? CLI_KEY_SOURCE : `rotated:${old ?? "unknown"}`;
}

/** A refused key operation (unknown id, bad service name): the CLI prints it and exits 1. */
export class KeyAdminError extends Error {
  override name = "KeyAdminError";
}

const SERVICE_NAME = /^[a-zA-Z0-9_-]{1,50}$/;

/** Parses `90d`, `24h`, `30m`, `45s` into milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)([smhd])$/.exec(text.trim());
  if (!match)
    throw new KeyAdminError(`not a duration: ${JSON.stringify(text)} (use 90d, 24h, 30m, 45s)`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    match[2] as "s" | "m" | "h" | "d"
  ];
  return Number(match[1]) * unit;
}

/**
 * The key lifecycle behind the `keys` CLI: create, list, revoke, rotate. It
 * writes the `api_keys` table; a running service picks the change up at its
 * next reload (`METRICS_KEY_RELOAD_MS`).
 */
export function createKeyAdmin(store: KeyStore, now: () => Date = () => new Date()) {
  const find = async (id: string): Promise<ApiKeyRow> => {
    const row = (await store.all()).find((r) => r.keyId === id);
    if (row === undefined) throw new KeyAdminError(`no key with id ${id}`);
    return row;
  };
  /** How long a key was issued for (its expiry less its creation), or undefined when it never expires. */
  const lifetimeOf = (key: { createdAt: string; expiresAt: string | null }): number | undefined => {
    if (key.expiresAt === null) return undefined;
    const millis = storedTimeMillis(key.expiresAt) - storedTimeMillis(key.createdAt);
    return Number.isFinite(millis) && millis > 0 ? millis : undefined;
  };

  const expiry = (millis: number | undefined) =>
    millis === undefined ? null : storedDateTime(new Date(now().getTime() + millis));

  const create = async (
    options: CreateKeyOptions,
    source: string = CLI_KEY_SOURCE,
  ): Promise<CreatedKey> => {
    if (!SERVICE_NAME.test(options.service)) {
      throw new KeyAdminError(
        `service must be 1 to 50 characters of [a-zA-Z0-9_-], got ${JSON.stringify(options.service)}`,
      );
    }
    const key = generateApiKey();
    const expiresAt = expiry(options.expiresInMillis);
    const keyId = newKeyId();
    await store.insert({
      keyId,
      keyHash: hashApiKey(key),
      serviceName: options.service,
      rateLimit: options.rateLimit,
      scope: options.scope,
      source,
      description: options.description ?? null,
      expiresAt,
    });
    return { id: keyId, key, service: options.service, scope: options.scope, expiresAt };
  };

  return {
    create: (options: CreateKeyOptions) => create(options),

    async list(): Promise<KeyListing[]> {
      return (await store.all()).map((r) => ({
        id: r.keyId,
        service: r.serviceName,
        scope: r.scope,
        active: r.isActive,
        rateLimit: r.rateLimit,
        createdAt: r.createdAt,
        lastUsedAt: r.lastUsedAt,
        expiresAt: r.expiresAt,
        source: r.source,
      }));
    },

    /** Deactivates a key at once. */
    async revoke(id: string): Promise<void> {
      await store.setActive((await find(id)).id, false);
    },

    /**
     * Issues a new key for the same service, scope and rate limit; the old one
     * keeps working for `graceMillis` (0: it stops at once).
     */
    async rotate(id: string, graceMillis: number): Promise<CreatedKey> {
      const old = await find(id);
      if (!old.isActive) throw new KeyAdminError(`key ${id} is revoked; create a new one instead`);
      // A key in its grace already has a successor: a second rotation would
      // make another, and hand on a lifetime the grace rewrote.
      const successor = (await store.all()).find(
        (k) => k.isActive && k.description === `rotated from ${old.keyId}`,
      );
      if (successor !== undefined) {
        throw new KeyAdminError(
          `key ${id} was already rotated (to ${successor.keyId}); rotate that one`,
        );
      }
      const created = await create(
        {
          service: old.serviceName,
          scope: old.scope,
          rateLimit: old.rateLimit,
          description: `rotated from ${old.keyId}`,
          // A key issued for a lifetime hands the same lifetime on, from now.
          expiresInMillis: lifetimeOf(old),
        },
        rotatedSource(old.source),
      );
      if (graceMillis > 0) {
        // A grace never extends a key that was due to expire sooner.
        const until = expiry(graceMillis) as string;
        await store.setExpiresAt(
          old.id,
          old.expiresAt !== null && old.expiresAt < until ? old.expiresAt : until,
        );
      } else {
        await store.setActive(old.id, false);
      }
      return created;
    },
  };
}
