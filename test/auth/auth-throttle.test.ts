// backends: sqlite only: wrong-key throttling by address, before storage
import { request } from "node:http";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createAuthThrottle } from "../../src/auth/auth-throttle.js";
import { failure, GRPC, ingestClient } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { startTestService } from "../support/service.js";

/** A legacy POST /metrics from a chosen local address (all of 127/8 is loopback on Linux). */
function postFrom(
  localAddress: string,
  url: string,
  key: string,
): Promise<{ status: number; retryAfter: string | undefined }> {
  const body = JSON.stringify({
    service: "test-service",
    metrics: [{ type: "auth_request", value: 1, dimensions: { success: true } }],
  });
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/metrics`,
      {
        method: "POST",
        localAddress,
        headers: { "content-type": "application/json", "x-api-key": key },
      },
      (res) => {
        res.resume();
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"] }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe("createAuthThrottle", () => {
  it("should block an address after its failures, refill it over time, and leave others alone", () => {
    let clock = 0;
    const throttle = createAuthThrottle({ failuresPerMinute: 30, now: () => clock });
    for (let i = 0; i < 30; i++) {
      expect(throttle.blockedFor("a")).toBe(0);
      throttle.recordFailure("a");
    }
    expect(throttle.blockedFor("a")).toBeCloseTo(2, 5); // one failure back every 2 s
    expect(throttle.blockedFor("b")).toBe(0);
    clock = 2_000;
    expect(throttle.blockedFor("a")).toBe(0);
  });

  it("should forget the least recently seen addresses beyond its cap", () => {
    const throttle = createAuthThrottle({ failuresPerMinute: 1, maxAddresses: 100, now: () => 0 });
    for (let i = 0; i < 1000; i++) throttle.recordFailure(`10.0.${i >> 8}.${i & 255}`);
    expect(throttle.blockedFor("10.0.3.231")).toBeGreaterThan(0); // the last one, remembered
    expect(throttle.blockedFor("10.0.0.0")).toBe(0); // the first, forgotten
  });
});

describe("brute force against a real server", () => {
  it("should throttle 1,000 wrong keys from one address while a good key from another keeps working", async () => {
    const svc = await startTestService({ METRICS_AUTH_FAILURES_PER_MINUTE: "30" });
    try {
      const statuses = new Map<number, number>();
      let retryAfter: string | undefined;
      for (let i = 0; i < 1000; i++) {
        const res = await postFrom("127.0.0.1", svc.url, `wrong-key-${i}`);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        retryAfter ??= res.status === 429 ? res.retryAfter : undefined;
      }
      console.log(
        `1,000 wrong keys from one address: ${JSON.stringify(Object.fromEntries(statuses))}`,
      );
      expect(statuses.get(401)).toBe(30);
      expect(statuses.get(429)).toBe(970);
      expect(Number(retryAfter)).toBeGreaterThan(0);
      // The address stays blocked, even with a good key, over every ingress.
      expect((await postFrom("127.0.0.1", svc.url, svc.key)).status).toBe(429);
      const rpc = await failure(ingestClient(GRPC, svc.url, svc.key).ingest(authBatch(1)));
      expect(rpc.code).toBe(Code.ResourceExhausted);
      expect(rpc.rawMessage).toMatch(/Too many failed authentication attempts/);
      // Another address is not affected.
      expect((await postFrom("127.0.0.2", svc.url, svc.key)).status).toBe(200);
      expect((await postFrom("127.0.0.2", svc.url, "wrong-again")).status).toBe(401);
    } finally {
      await svc.close();
    }
  });
});
