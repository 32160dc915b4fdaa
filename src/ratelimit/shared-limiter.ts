import { Redis } from "ioredis";
import type { Logger } from "../log.js";
import {
  type BucketDecision,
  type BucketState,
  decisionOf,
  localRateLimiter,
  type RateLimiter,
} from "./token-bucket.js";

/**
 * One take of a bucket, atomically, on Redis's clock: refill by the time
 * passed, spend `cost` if the tokens are there, and expire the bucket once it
 * would be full again, so that idle keys cost nothing. Returns whether it was
 * allowed and the tokens left. The same arithmetic as the local buckets
 * (`createTokenBucketLimiter`); a limit of 0 refuses everything.
 */
const TAKE_SCRIPT = `
local limit = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = limit
  at = now
end
tokens = math.min(limit, tokens + math.max(0, now - at) / 60000 * limit)
local allowed = 0
if limit > 0 and tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
local full = 0
if limit > 0 then full = math.ceil((limit - tokens) / limit * 60000) end
redis.call('PEXPIRE', KEYS[1], full + 60000)
return {allowed, tostring(tokens)}
`;

/** Options of {@link createSharedRateLimiter}. */
export interface SharedRateLimiterOptions {
  /** `REDIS_URL`, e.g. `redis://redis:6379/0`. */
  readonly url: string;
  readonly log: Logger;
  /** Prefix of the buckets' Redis keys. */
  readonly keyPrefix?: string;
  /** How long a take waits for Redis before this replica decides alone, in ms. */
  readonly timeoutMillis?: number;
  /** Told of every decision taken by this replica's own buckets while Redis is unreachable. */
  readonly onLocalDecision?: () => void;
}

/** Token buckets shared by every replica through Redis, with per-replica buckets as the fallback. */
export interface SharedRateLimiter extends RateLimiter {
  /** Whether the last take reached Redis (false: this replica decides alone). */
  readonly shared: boolean;
  close(): Promise<void>;
}

/** The default wait for Redis: a take is on every request's path. */
const DEFAULT_TIMEOUT_MILLIS = 250;

/**
 * The token bucket of each key kept in Redis (issue 11), one atomic script per
 * take, so that N replicas together enforce each key's limit. When Redis
 * cannot be reached (down, slow past `timeoutMillis`), each replica falls back
 * to buckets of its own, never refusing everything: the limit is then
 * enforced per replica, and that is said once in the log and counted in the
 * metrics for as long as it lasts. The shared buckets are used again as soon
 * as Redis answers.
 */
export async function createSharedRateLimiter(
  options: SharedRateLimiterOptions,
): Promise<SharedRateLimiter> {
  const { log } = options;
  const prefix = options.keyPrefix ?? "mcp-metrics:bucket:";
  const timeoutMillis = options.timeoutMillis ?? DEFAULT_TIMEOUT_MILLIS;
  const redis = new Redis(options.url, {
    // A command while disconnected fails at once instead of waiting in a queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: timeoutMillis,
    connectTimeout: Math.max(1000, timeoutMillis),
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    // Connected below, so that the first requests find the shared buckets.
    lazyConnect: true,
  });
  // Connection errors are reported through the takes' fallback, not thrown.
  redis.on("error", () => {});
  redis.defineCommand("bucketTake", { numberOfKeys: 1, lua: TAKE_SCRIPT });
  const take = (
    redis as unknown as {
      bucketTake(key: string, limit: number, cost: number): Promise<[number, string]>;
    }
  ).bucketTake.bind(redis);
  const local = localRateLimiter();
  let shared = true;

  /** Redis did not answer: this replica decides alone from now on, said once. */
  const goLocal = (error: unknown): void => {
    if (!shared) return;
    shared = false;
    log.warn(
      { err: error },
      "rate limit: Redis unreachable; each replica enforces the limits alone until it answers",
    );
  };
  const reached = (): void => {
    if (shared) return;
    shared = true;
    log.info("rate limit: Redis reachable again; the limits are shared across replicas");
  };

  const remote = async (
    id: number | string,
    limitPerMinute: number,
    cost: number,
  ): Promise<BucketDecision | undefined> => {
    try {
      const [allowed, tokens] = await take(`${prefix}${id}`, limitPerMinute, cost);
      reached();
      return decisionOf(allowed === 1, Number(tokens), limitPerMinute, cost);
    } catch (error) {
      goLocal(error);
      options.onLocalDecision?.();
      return undefined;
    }
  };

  // Waits for Redis at start-up, but never longer than the connect timeout: a
  // Redis that is down is retried in the background, and the limits are per
  // replica meanwhile.
  const connectWait = Math.max(1000, timeoutMillis);
  await Promise.race([
    redis.connect().catch((error: unknown) => goLocal(error)),
    new Promise((resolve) => setTimeout(resolve, connectWait).unref()),
  ]);

  return {
    get shared() {
      return shared;
    },
    async take(id, limitPerMinute, cost = 1) {
      return (
        (await remote(id, limitPerMinute, cost)) ?? (await local.take(id, limitPerMinute, cost))
      );
    },
    async peek(id, limitPerMinute): Promise<BucketState> {
      // A take of nothing: refills and reports without spending.
      const decision = await remote(id, limitPerMinute, 0);
      if (decision === undefined) return await local.peek(id, limitPerMinute);
      return {
        limit: limitPerMinute,
        available: decision.remaining,
        secondsToFull: decision.secondsToFull,
      };
    },
    async close() {
      redis.disconnect();
    },
  };
}
