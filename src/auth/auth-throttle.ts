/** Options of {@link createAuthThrottle}. */
export interface AuthThrottleOptions {
  /** Failed authentications allowed per client address per minute (also the burst). */
  readonly failuresPerMinute: number;
  /** Addresses tracked at once; beyond it the least recently seen is forgotten. */
  readonly maxAddresses?: number;
  /** Milliseconds on a monotonic clock; injectable for tests. */
  readonly now?: () => number;
}

/**
 * Throttles brute force (docs/legacy-contract.md W14): each client address has a bucket of failed
 * authentications that refills continuously. While an address's bucket is
 * empty every request from it is refused before its key is even looked at,
 * so guessing stops paying off; other addresses are not affected.
 */
export interface AuthThrottle {
  /** Seconds until `address` may try again, or 0 when it may now. */
  blockedFor(address: string): number;
  /** Spends one failure of `address`'s bucket. */
  recordFailure(address: string): void;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** Creates the throttle; memory is bounded by `maxAddresses` (default 10,000). */
export function createAuthThrottle(options: AuthThrottleOptions): AuthThrottle {
  const now = options.now ?? (() => performance.now());
  const capacity = options.failuresPerMinute;
  const maxAddresses = options.maxAddresses ?? 10_000;
  // Map order is recency order: an address is re-inserted whenever it is seen.
  const buckets = new Map<string, Bucket>();

  const refilled = (address: string): Bucket | undefined => {
    const bucket = buckets.get(address);
    if (bucket === undefined) return undefined;
    const at = now();
    bucket.tokens = Math.min(
      capacity,
      bucket.tokens + ((at - bucket.updatedAt) / 60_000) * capacity,
    );
    bucket.updatedAt = at;
    if (bucket.tokens >= capacity) {
      buckets.delete(address); // full again: nothing to remember
      return undefined;
    }
    return bucket;
  };

  return {
    blockedFor(address) {
      if (capacity <= 0) return 0; // throttling disabled
      const bucket = refilled(address);
      if (bucket === undefined || bucket.tokens >= 1) return 0;
      return ((1 - bucket.tokens) / capacity) * 60;
    },
    recordFailure(address) {
      if (capacity <= 0) return;
      const bucket = refilled(address) ?? { tokens: capacity, updatedAt: now() };
      bucket.tokens = Math.max(0, bucket.tokens - 1);
      buckets.delete(address);
      buckets.set(address, bucket);
      if (buckets.size > maxAddresses) {
        const oldest = buckets.keys().next().value;
        if (oldest !== undefined) buckets.delete(oldest);
      }
    },
  };
}
