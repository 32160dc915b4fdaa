/**
 * What a refused request costs the server against an accepted one: the same
 * 100-event batches at the same request rate, with a valid key (accepted),
 * a wrong key (401 / UNAUTHENTICATED) and a key past its rate limit (429 /
 * RESOURCE_EXHAUSTED), over JSON and over gRPC. The cost is the server's
 * CPU seconds (from /proc) per request, after a warm-up of each case.
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
  readonly cpuMicrosPerRequest: number;
  readonly p50Ms: number;
  readonly sample: string | undefined;
}

/**
 * Requests per second: accepted ones at a rate every arm sustains; refused
 * ones at that rate and at a flood's (a refusal's code is only optimized by
 * the JIT once it runs often, as in a flood).
 */
const ACCEPTED_PER_SECOND = 150;
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
        const pid = server.child.pid ?? 0;
        const before = cpuSecondsOf(pid);
        const load = await runLoad({ ...spec, seconds });
        const cpu = cpuSecondsOf(pid) - before;
        results.push({
          ingress,
          outcome,
          requestsPerSecond: rate,
          requests: load.requests,
          asExpected: outcome === "accepted" ? load.ok : load.errors,
          cpuMicrosPerRequest: (cpu / load.requests) * 1e6,
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
