import { setTimeout as sleep } from "node:timers/promises";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.js";
import { AdminService } from "../../gen/mcp/metrics/v1/admin_pb.js";
import { IngestService } from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { errors } from "../errors.js";
import type { Readiness } from "./readiness.js";

/** The names a health check may ask about: the server as a whole ("") and each service. */
const KNOWN_SERVICES = new Set(["", IngestService.typeName, AdminService.typeName]);

/** Options of {@link createHealthServiceImpl}. */
export interface HealthServiceOptions {
  readonly readiness: Readiness;
  /** Aborted when a shutdown begins: watches send NOT_SERVING and end. */
  readonly draining: AbortSignal;
  /** How often a watch looks for a change, in ms. */
  readonly watchIntervalMillis?: number;
}

/**
 * The standard `grpc.health.v1.Health` service, answering from readiness:
 * SERVING while the service takes events, NOT_SERVING while its database does
 * not take writes or once it drains. Served without an API key, like `/readyz`.
 */
export function createHealthServiceImpl(options: HealthServiceOptions): ServiceImpl<typeof Health> {
  const { readiness, draining } = options;
  const interval = options.watchIntervalMillis ?? 1000;
  const status = async (service: string): Promise<ServingStatus> => {
    if (!KNOWN_SERVICES.has(service)) return ServingStatus.SERVICE_UNKNOWN;
    return (await readiness.check()).ready ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  return {
    async check(req) {
      if (!KNOWN_SERVICES.has(req.service)) throw errors.unknownHealthService(req.service);
      return { status: await status(req.service) };
    },
    async *watch(req, context) {
      // Ends once draining (after NOT_SERVING), so that no watch holds a shutdown up.
      const stop = new AbortController();
      const onStop = () => stop.abort();
      draining.addEventListener("abort", onStop);
      context.signal.addEventListener("abort", onStop);
      try {
        let last: ServingStatus | undefined;
        for (;;) {
          const now = await status(req.service);
          if (now !== last) yield { status: now };
          last = now;
          if (stop.signal.aborted || draining.aborted || context.signal.aborted) return;
          await sleep(interval, undefined, { signal: stop.signal }).catch(() => {});
        }
      } finally {
        draining.removeEventListener("abort", onStop);
        context.signal.removeEventListener("abort", onStop);
      }
    },
  };
}
