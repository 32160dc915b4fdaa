// backends: sqlite only: the token bucket's arithmetic; no database
import { describe, expect, it } from "vitest";
import { createTokenBucketLimiter } from "../../src/ratelimit/token-bucket.js";

function fakeClock() {
  let now = 0;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe("createTokenBucketLimiter", () => {
  it("should start full and refuse once the limit is spent", () => {
    const limiter = createTokenBucketLimiter({ now: fakeClock().now });
    const results = Array.from({ length: 4 }, () => limiter.take("k", 3));
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, false]);
    expect(results.map((r) => r.remaining)).toEqual([2, 1, 0, 0]);
  });

  it("should say exactly how long until the next token", () => {
    const clock = fakeClock();
    const limiter = createTokenBucketLimiter({ now: clock.now });
    limiter.take("k", 60);
    for (let i = 0; i < 59; i++) limiter.take("k", 60);
    clock.advance(250);
    const refused = limiter.take("k", 60);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterSeconds).toBeCloseTo(0.75, 6);
  });

  it("should refill continuously, keeping fractions of a token", () => {
    const clock = fakeClock();
    const limiter = createTokenBucketLimiter({ now: clock.now });
    for (let i = 0; i < 2; i++) limiter.take("k", 2);
    clock.advance(15_000); // half a token at 2/min
    expect(limiter.take("k", 2).allowed).toBe(false);
    clock.advance(15_000); // the other half
    expect(limiter.take("k", 2).allowed).toBe(true);
  });

  it("should never exceed the bucket size however long it idles", () => {
    const clock = fakeClock();
    const limiter = createTokenBucketLimiter({ now: clock.now });
    limiter.take("k", 5);
    clock.advance(3_600_000);
    expect(limiter.peek("k", 5).available).toBe(5);
  });

  it("should refuse everything with a limit of 0, the first request included", () => {
    const limiter = createTokenBucketLimiter({ now: fakeClock().now });
    expect(limiter.take("k", 0)).toMatchObject({ allowed: false, retryAfterSeconds: 60 });
  });

  it("should keep one bucket per key", () => {
    const limiter = createTokenBucketLimiter({ now: fakeClock().now });
    limiter.take("a", 1);
    expect(limiter.take("a", 1).allowed).toBe(false);
    expect(limiter.take("b", 1).allowed).toBe(true);
  });

  it("should apply a lowered limit at once", () => {
    const limiter = createTokenBucketLimiter({ now: fakeClock().now });
    limiter.take("k", 100);
    expect(limiter.take("k", 1)).toMatchObject({ allowed: true, remaining: 0 });
    expect(limiter.take("k", 1).allowed).toBe(false);
  });

  it("should report a bucket without spending from it", () => {
    const clock = fakeClock();
    const limiter = createTokenBucketLimiter({ now: clock.now });
    limiter.take("k", 60);
    expect(limiter.peek("k", 60)).toEqual({ limit: 60, available: 59, secondsToFull: 1 });
    expect(limiter.peek("k", 60).available).toBe(59);
  });
});
