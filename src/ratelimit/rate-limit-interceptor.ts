import type { Interceptor } from "@connectrpc/connect";
import { earlyCheckKey, type Principal, principalKey } from "../auth/principal.js";
import { errors } from "../errors.js";
import { rateLimitFields } from "./rate-limit-headers.js";
import type { BucketDecision, RateLimiter } from "./token-bucket.js";

/**
 * Spends one token of the principal's bucket, or throws RESOURCE_EXHAUSTED with
 * the time to the next token. Shared by the RPC interceptor and the JSON routes.
 */
export async function enforceRateLimit(
  limiter: RateLimiter,
  principal: Principal,
): Promise<BucketDecision> {
  const decision = await limiter.take(principal.bucketId, principal.rateLimitPerMinute);
  if (!decision.allowed) {
    throw errors.rateLimited(principal.rateLimitPerMinute, decision.retryAfterSeconds);
  }
  return decision;
}

async function* spendPerMessage<T>(
  messages: AsyncIterable<T>,
  limiter: RateLimiter,
  principal: Principal,
): AsyncGenerator<T> {
  for await (const message of messages) {
    await enforceRateLimit(limiter, principal);
    yield message;
  }
}

/**
 * Rate-limits every RPC after authentication: one token per unary call and one
 * per message of a client stream, so a long-lived stream is limited like the
 * equivalent unary calls. Successful unary answers carry the legacy
 * `x-ratelimit-limit` and `x-ratelimit-remaining` headers and the IETF draft's
 * `ratelimit` and `ratelimit-policy`.
 */
export function createRateLimitInterceptor(limiter: RateLimiter): Interceptor {
  return (next) => async (req) => {
    const principal = req.contextValues.get(principalKey);
    if (principal === undefined) {
      throw errors.internal(new Error("rate-limit interceptor ran before authentication"));
    }
    if (req.stream) {
      return await next({ ...req, message: spendPerMessage(req.message, limiter, principal) });
    }
    const decision =
      req.contextValues.get(earlyCheckKey)?.decision ??
      (await enforceRateLimit(limiter, principal));
    const res = await next(req);
    res.header.set("x-ratelimit-limit", String(decision.limit));
    res.header.set("x-ratelimit-remaining", String(decision.remaining));
    const fields = rateLimitFields(decision.limit, decision.remaining, decision.secondsToFull);
    res.header.set("ratelimit", fields.ratelimit);
    res.header.set("ratelimit-policy", fields["ratelimit-policy"]);
    return res;
  };
}
