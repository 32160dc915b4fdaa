import { createContextKey } from "@connectrpc/connect";
import type { KeyScope } from "../storage/key-store.js";

/**
 * The scopes a key can have: `ingest`, `read` or `admin`, as `api_keys.scope`
 * stores them (src/storage/key-store.ts; docs/security.md#scopes-and-service-binding).
 */
export type { KeyScope } from "../storage/key-store.js";

/** Who is calling: the API key that authenticated the request. */
export interface Principal {
  /** The key's row id in `api_keys`. */
  readonly keyId: number;
  /** The key's public id (`key_...`, as the key CLI lists it): safe to log, unlike the key. */
  readonly publicId: string;
  /**
   * Where the key came from (`env:<VARIABLE>`, `cli`, `generated`): a key made
   * with the CLI names its service on purpose and is held to it in the
   * `audit` binding mode too.
   */
  readonly source: string | null;
  /**
   * Names the key's rate-limit bucket where replicas share it (Redis): the
   * same key has the same bucket on every replica, whatever its row id there.
   * Derived from the key's SHA-256, never the key itself.
   */
  readonly bucketId: string;
  /** The service the key was issued to. */
  readonly service: string;
  /** The key's rate limit in requests per minute. */
  readonly rateLimitPerMinute: number;
  /**
   * What the key may do: `ingest` (send events), `read` (only query:
   * QueryService, `GET /export`) or `admin` (all of it, and the admin operations).
   */
  readonly scope: KeyScope;
}

/** Whether a key of `scope` may query the history (QueryService, `GET /export`): `admin` implies `read`. */
export function mayRead(scope: KeyScope): boolean {
  return scope === "read" || scope === "admin";
}

/** Context value: the client's network address, for throttling failed authentications. */
export const clientAddressKey = createContextKey<string>("unknown", {
  description: "the client's remote address",
});
