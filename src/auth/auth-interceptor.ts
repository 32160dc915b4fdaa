import type { Interceptor } from "@connectrpc/connect";
import { errors } from "../errors.js";
import type { AuthThrottle } from "./auth-throttle.js";
import type { AuthResult, KeyRegistry } from "./key-registry.js";
import { clientAddressKey, earlyCheckKey, principalKey } from "./principal.js";

/**
 * Checks a key for a request from `address`. An address that failed too often
 * is refused before its key is looked at (RESOURCE_EXHAUSTED, W14); an unknown
 * key spends one of the address's failures. Shared by the RPCs and the JSON routes.
 */
export function authenticateFrom(
  registry: KeyRegistry,
  throttle: AuthThrottle,
  address: string,
  key: string | null | undefined,
  options?: { recordUse?: boolean },
): AuthResult {
  const blocked = throttle.blockedFor(address);
  if (blocked > 0) return { ok: false, reason: "throttled", error: errors.authThrottled(blocked) };
  const result = registry.authenticate(key, options);
  // Only a wrong key is a guess; a missing, revoked or expired one is not.
  if (!result.ok && result.reason === "invalid") throttle.recordFailure(address);
  return result;
}

/**
 * Authenticates every RPC by its `x-api-key` header and hands the principal to
 * the handler through {@link principalKey}. Missing, unknown and inactive keys
 * fail with UNAUTHENTICATED before the handler runs, and an address with too
 * many failures with RESOURCE_EXHAUSTED. (For unary calls connect-es has
 * already read the body, up to `readMaxBytes`, by then.)
 */
export function createAuthInterceptor(registry: KeyRegistry, throttle: AuthThrottle): Interceptor {
  return (next) => async (req) => {
    const early = req.contextValues.get(earlyCheckKey);
    if (early !== undefined) {
      req.contextValues.set(principalKey, early.principal);
      return await next(req);
    }
    const address = req.contextValues.get(clientAddressKey);
    const result = authenticateFrom(registry, throttle, address, req.header.get("x-api-key"));
    if (!result.ok) throw result.error;
    req.contextValues.set(principalKey, result.principal);
    return await next(req);
  };
}
