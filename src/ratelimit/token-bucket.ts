/** What a token bucket says about one request. */
export interface BucketDecision {
  readonly allowed: boolean;
  /** The bucket's size: the key's requests per minute. */
  readonly limit: number;
  /** Whole tokens left after this request. */
  readonly remaining: number;
  /** Seconds until the next token, when refused (0 when allowed). */
  readonly retryAfterSeconds: number;
  /** Seconds until the bucket is full again, after this request. */
  readonly secondsToFull: number;
}

/** A bucket's state without spending from it. */
export interface BucketState {
  readonly limit: number;
  /** Whole tokens available now. */
  readonly available: number;
  /** Seconds until the bucket is full again. */
  readonly secondsToFull: number;
}

/** Options of {@link createTokenBucketLimiter}. */
export interface TokenBucketOptions {
  /** Milliseconds on a monotonic clock; injectable for tests. */
  readonly now?: () => number;
}

/**
 * Token buckets, one per key: each holds up to `limit` tokens and refills at
 * `limit` per minute, continuously (fractions kept, docs/legacy-contract.md W23). A bucket starts
 * full. A limit of 0 refuses everything (the Python service let the first
 * request through).
 */
export interface TokenBucketLimiter {
  /** Spends `cost` tokens of the bucket `id` if it has them. */
  take(id: number | string, limitPerMinute: number, cost?: number): BucketDecision;
  /** Reports the bucket `id` without spending from it. */
  peek(id: number | string, limitPerMinute: number): BucketState;
}

/**
 * The rate limit as the service applies it: the token buckets of every key,
 * kept in this process ({@link localRateLimiter}) or shared by all replicas.
 * Asynchronous, because a shared bucket is a round trip away.
 */
export interface RateLimiter {
  /** Spends `cost` tokens of the bucket `id` if it has them. */
  take(id: number | string, limitPerMinute: number, cost?: number): Promise<BucketDecision>;
  /** Reports the bucket `id` without spending from it. */
  peek(id: number | string, limitPerMinute: number): Promise<BucketState>;
}

/** The buckets of this process, as a {@link RateLimiter}. */
export function localRateLimiter(
  buckets: TokenBucketLimiter = createTokenBucketLimiter(),
): RateLimiter {
  return {
    take: async (id, limitPerMinute, cost) => buckets.take(id, limitPerMinute, cost),
    peek: async (id, limitPerMinute) => buckets.peek(id, limitPerMinute),
  };
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** Seconds until `bucket` holds `limitPerMinute` tokens again (0 for a limit of 0). */
function secondsToFull(bucket: Bucket, limitPerMinute: number): number {
  return limitPerMinute > 0 ? ((limitPerMinute - bucket.tokens) / limitPerMinute) * 60 : 0;
}

/**
 * What a bucket holding `tokens` says to a request of `cost` (the tokens left
 * after it, if allowed): the one reading of a bucket, wherever it is kept.
 */
export function decisionOf(
  allowed: boolean,
  tokens: number,
  limitPerMinute: number,
  cost: number,
): BucketDecision {
  const toFull = limitPerMinute > 0 ? ((limitPerMinute - tokens) / limitPerMinute) * 60 : 0;
  if (allowed) {
    return {
      allowed: true,
      limit: limitPerMinute,
      remaining: Math.floor(tokens),
      retryAfterSeconds: 0,
      secondsToFull: toFull,
    };
  }
  const perSecond = limitPerMinute / 60;
  return {
    allowed: false,
    limit: limitPerMinute,
    remaining: 0,
    retryAfterSeconds: perSecond > 0 ? (cost - tokens) / perSecond : 60,
    secondsToFull: toFull,
  };
}

/** Creates an empty set of token buckets. Memory grows with the number of keys, not requests. */
export function createTokenBucketLimiter(options: TokenBucketOptions = {}): TokenBucketLimiter {
  const now = options.now ?? (() => performance.now());
  const buckets = new Map<number | string, Bucket>();

  const refilled = (id: number | string, limit: number): Bucket => {
    const at = now();
    let bucket = buckets.get(id);
    if (bucket === undefined) {
      bucket = { tokens: limit, updatedAt: at };
      buckets.set(id, bucket);
      return bucket;
    }
    const elapsedMinutes = Math.max(0, at - bucket.updatedAt) / 60_000;
    // Clamped to the current limit, so lowering a key's limit takes effect at once.
    bucket.tokens = Math.min(limit, bucket.tokens + elapsedMinutes * limit);
    bucket.updatedAt = at;
    return bucket;
  };

  return {
    take(id, limitPerMinute, cost = 1) {
      const bucket = refilled(id, limitPerMinute);
      const allowed = limitPerMinute > 0 && bucket.tokens >= cost;
      if (allowed) bucket.tokens -= cost;
      return decisionOf(allowed, bucket.tokens, limitPerMinute, cost);
    },

    peek(id, limitPerMinute) {
      const bucket = refilled(id, limitPerMinute);
      return {
        limit: limitPerMinute,
        available: Math.floor(bucket.tokens),
        secondsToFull: secondsToFull(bucket, limitPerMinute),
      };
    },
  };
}
