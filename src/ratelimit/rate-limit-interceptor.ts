import type { Interceptor } from "@connectrpc/connect";
import { admittedIn } from "../auth/admission.js";
import type { Principal } from "../auth/principal.js";
import { errors } from "../errors.js";
import { rateLimitFields } from "./rate-limit-headers.js";
import type { BucketDecision, RateLimiter } from "./token-bucket.js";

/**
 * Spends one token of the principal's bucket, or throws RESOURCE_EXHAUSTED with
 * the time to the next token.
 */
async function enforceRateLimit(
  limiter: RateLimiter,
  principal: Principal,
): Promise<BucketDecision> {
  const decision = await limiter.take(principal.bucketId, principal.rateLimitPerMinute);
  if (!decision.allowed) {
    throw errors.rateLimited(principal.rateLimitPerMinute, decision.retryAfterSeconds);
  }
  return decision;
}

/**
 * How long a client stream may hold its slot per token: a stream that sends
 * nothing (or drips a message byte by byte) still pays for the slot it takes
 * from the pool, one token when it opens and one per interval it stays open.
 * A legitimate idle stream pays 6 tokens a minute, 0.6% of the default limit.
 */
export const STREAM_HOLD_TOKEN_MILLIS = 10_000;

/** Stands for the holding interval having passed before the next message. */
const HELD = Symbol("held");

async function* spendPerMessage<T>(
  messages: AsyncIterable<T>,
  limiter: RateLimiter,
  principal: Principal,
  holdMillis: number,
): AsyncGenerator<T> {
  // Opening the stream cost a token at the door, as a unary call does.
  const iterator = messages[Symbol.asyncIterator]();
  for (;;) {
    const next = iterator.next();
    let result: IteratorResult<T> | typeof HELD;
    let timer: NodeJS.Timeout | undefined;
    // Each interval spent waiting for the next message costs a token; an
    // empty bucket ends the stream with RESOURCE_EXHAUSTED (and its totals).
    for (;;) {
      result = await Promise.race([
        next,
        new Promise<typeof HELD>((resolve) => {
          timer = setTimeout(resolve, holdMillis, HELD);
        }),
      ]);
      clearTimeout(timer);
      if (result !== HELD) break;
      await enforceRateLimit(limiter, principal);
    }
    if (result.done) return;
    await enforceRateLimit(limiter, principal);
    yield result.value;
  }
}

/**
 * Meters RPCs after the door: a unary call and a stream's opening paid their
 * token there, before their bodies were read; a client stream then pays one
 * per message and one per `holdMillis` it waits for a message, so that a
 * long-lived stream is limited like the equivalent unary calls and an idle
 * one still pays for its slot. Successful unary answers carry the legacy
 * `x-ratelimit-limit` and `x-ratelimit-remaining` headers and the IETF
 * draft's `ratelimit` and `ratelimit-policy`, from the door's decision.
 */
export function createRateLimitInterceptor(
  limiter: RateLimiter,
  holdMillis = STREAM_HOLD_TOKEN_MILLIS,
): Interceptor {
  return (next) => async (req) => {
    const admitted = admittedIn(req.contextValues);
    if (admitted?.decision === undefined) {
      throw errors.internal(new Error("an RPC reached the handlers without the door's admission"));
    }
    const { principal, decision } = admitted;
    if (req.stream) {
      return await next({
        ...req,
        message: spendPerMessage(req.message, limiter, principal, holdMillis),
      });
    }
    const res = await next(req);
    res.header.set("x-ratelimit-limit", String(decision.limit));
    res.header.set("x-ratelimit-remaining", String(decision.remaining));
    const fields = rateLimitFields(decision.limit, decision.remaining, decision.secondsToFull);
    res.header.set("ratelimit", fields.ratelimit);
    res.header.set("ratelimit-policy", fields["ratelimit-policy"]);
    return res;
  };
}
