import type { Interceptor } from "@connectrpc/connect";
import type { KeyRegistry } from "./key-registry.js";
import { principalKey } from "./principal.js";

/**
 * Authenticates every RPC by its `x-api-key` header and hands the principal to
 * the handler through {@link principalKey}. Missing, unknown and inactive keys
 * fail with UNAUTHENTICATED before the handler runs. (For unary calls
 * connect-es has already read the body, up to `readMaxBytes`, by then.)
 */
export function createAuthInterceptor(registry: KeyRegistry): Interceptor {
  return (next) => async (req) => {
    const result = registry.authenticate(req.header.get("x-api-key"));
    if (!result.ok) throw result.error;
    req.contextValues.set(principalKey, result.principal);
    return await next(req);
  };
}
