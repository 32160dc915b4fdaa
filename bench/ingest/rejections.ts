/**
 * What a refused request costs the server against an accepted one: the same
 * 100-event batches at the same request rate, with a valid key (accepted),
 * a wrong key (401 / UNAUTHENTICATED) and a key past its rate limit (429 /
 * RESOURCE_EXHAUSTED), over JSON and over gRPC. The cost is the server's
 * CPU seconds (from /proc) per request, after a warm-up of each case, less
 * what the same server spends idle over as long (timers, the loop probe, GC),
 * measured just before, so that the background is not counted against the
 * requests.
 */
import type { LoadSpec } from "./load.js";
import { cpuSecondsOf, KEY, runLoad, type Server, startServer } from "./processes.js";

export interface RejectionCost {
  readonly ingress: LoadSpec["ingress"];
  readonly outcome: "accepted" | "bad key" | "rate limited";
  readonly requestsPerSecond: number;
  readonly requests: number;
  /** Requests answered as this outcome expects. */
  readonly asExpected: number;
  /** Server CPU per request, net of its idle background. */
  readonly cpuMicrosPerRequest: number;
  /** The idle background subtracted, in CPU µs per second. */
  readonly idleMicrosPerSecond: number;
  readonly p50Ms: number;
  readonly sample: string | undefined;
}

/**
 * Requests per second: accepted ones at a rate every arm sustains (5,000
 * events/s: unary gRPC sustains no more than 5,000-10,000 on this machine, and
 * at 150 requests/s its accepted calls queued, p50 0.4-0.5 s); refused ones at
 * that rate and at a flood's (a refusal's code is only optimized by the JIT
 * once it runs often, as in a flood).
 */
const ACCEPTED_PER_SECOND = 50;
const FLOOD_PER_SECOND = 1500;

/**
 * `servers` are the running JSON and gRPC arms (unlimited key); a separate
 * server whose key allows one request per minute gives the rate-limited case.
 * The per-address throttle of failed keys is off there, so a wrong key is
 * checked each time instead of being throttled.
 */
export async function measureRejections(
  servers: { json: Server; grpc: Server },
  dir: string,
  seconds: number,
  warmUpSeconds: number,
): Promise<RejectionCost[]> {
  const limited = await startServer("rejections", "json", dir, {
    METRICS_RATE_LIMIT: "1",
    METRICS_AUTH_FAILURES_PER_MINUTE: "0",
  });
  const results: RejectionCost[] = [];
  const idle = new Map<Server, number>();
  /** CPU µs per second the server spends with no request at all. */
  const idleRateOf = async (server: Server): Promise<number> => {
    const known = idle.get(server);
    if (known !== undefined) return known;
    const pid = server.child.pid ?? 0;
    const before = cpuSecondsOf(pid);
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const rate = ((cpuSecondsOf(pid) - before) * 1e6) / ((performance.now() - started) / 1000);
    idle.set(server, rate);
    return rate;
  };
  try {
    for (const ingress of ["json", "grpc"] as const) {
      const wrongKey = "not-a-key-0123456789abcdef";
      const cases = [
        { outcome: "accepted", server: servers[ingress], key: KEY, rate: ACCEPTED_PER_SECOND },
        { outcome: "bad key", server: limited, key: wrongKey, rate: ACCEPTED_PER_SECOND },
        { outcome: "rate limited", server: limited, key: KEY, rate: ACCEPTED_PER_SECOND },
        { outcome: "bad key", server: limited, key: wrongKey, rate: FLOOD_PER_SECOND },
        { outcome: "rate limited", server: limited, key: KEY, rate: FLOOD_PER_SECOND },
      ] as const;
      for (const { outcome, server, key, rate } of cases) {
        const spec = { ingress, url: server.url, key, eventsPerSecond: rate * 100 } as const;
        // Warm-up: the JIT and the connections, not counted.
        await runLoad({ ...spec, seconds: warmUpSeconds });
        const idleMicrosPerSecond = await idleRateOf(server);
        const pid = server.child.pid ?? 0;
        const before = cpuSecondsOf(pid);
        const started = performance.now();
        const load = await runLoad({ ...spec, seconds });
        const elapsedSeconds = (performance.now() - started) / 1000;
        const cpuMicros = (cpuSecondsOf(pid) - before) * 1e6 - idleMicrosPerSecond * elapsedSeconds;
        results.push({
          ingress,
          outcome,
          requestsPerSecond: rate,
          requests: load.requests,
          asExpected: outcome === "accepted" ? load.ok : load.errors,
          cpuMicrosPerRequest: Math.max(0, cpuMicros / load.requests),
          idleMicrosPerSecond,
          p50Ms: load.p50Ms,
          sample: load.errorSamples[0],
        });
      }
    }
  } finally {
    await limited.stop();
  }
  return results;
}
