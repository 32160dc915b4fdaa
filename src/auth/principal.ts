import { createContextKey } from "@connectrpc/connect";

/** Who is calling: the API key that authenticated the request. */
export interface Principal {
  /** The key's row id in `api_keys`: safe to log, unlike the key. */
  readonly keyId: number;
  /** The service the key was issued to. */
  readonly service: string;
  /** The key's rate limit in requests per minute. */
  readonly rateLimitPerMinute: number;
  /** What the key may do: `ingest` (send events) or `admin` (also the admin operations). */
  readonly scope: KeyScope;
}

/** The scopes a key can have. */
export type KeyScope = "ingest" | "admin";

/** Context value through which the auth interceptor hands the principal to handlers. */
export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "the authenticated API key",
});

/** Context value: the client's network address, for throttling failed authentications. */
export const clientAddressKey = createContextKey<string>("unknown", {
  description: "the client's remote address",
});
