/**
 * The IETF draft's structured rate-limit fields (draft-ietf-httpapi-ratelimit-headers):
 * `RateLimit-Policy: "default";q=<limit>;w=60` says the key may make `limit`
 * requests per 60 s; `RateLimit: "default";r=<remaining>;t=<seconds>` says how
 * many are left and when the quota is whole again (or, when none are left,
 * when the next one comes). Sent over HTTP beside the legacy `X-RateLimit-*`,
 * and as gRPC metadata (headers on success, trailers on RESOURCE_EXHAUSTED).
 */
export function rateLimitFields(
  limitPerMinute: number,
  remaining: number,
  resetSeconds: number,
): { ratelimit: string; "ratelimit-policy": string } {
  return {
    ratelimit: `"default";r=${remaining};t=${Math.max(0, Math.ceil(resetSeconds))}`,
    "ratelimit-policy": `"default";q=${limitPerMinute};w=60`,
  };
}
