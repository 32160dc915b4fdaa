import { setMaxListeners } from "node:events";
import { readFileSync } from "node:fs";
import {
  Code,
  type ConnectRouter,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { AdminService } from "../gen/mcp/metrics/v1/admin_pb.js";
import { IngestService } from "../gen/mcp/metrics/v1/ingest_pb.js";
import { QueryService } from "../gen/mcp/metrics/v1/query_pb.js";
import { createAdminServiceImpl } from "./admin/admin-rpc.js";
import { createHealthServiceImpl } from "./admin/health-rpc.js";
import type { Readiness } from "./admin/readiness.js";
import {
  type Admission,
  type AdmissionControl,
  admissionKey,
  admittedIn,
  createAdmissionControl,
  refusalError,
} from "./auth/admission.js";
import { createAuthThrottle } from "./auth/auth-throttle.js";
import type { KeyRegistry } from "./auth/key-registry.js";
import { clientAddressKey } from "./auth/principal.js";
import type { Config } from "./config.js";
import { asConnectError, refusalReason } from "./errors.js";
import { decodeErrorOf, mapDecodeErrors } from "./http/decode-errors.js";
import { createHttpRoutes, serviceOf } from "./http/legacy-routes.js";
import type { OnePortOptions, PortAdmission, RequestHandler } from "./http/one-port.js";
import { type AnyRequest, type AnyResponse, addressOf } from "./http/respond.js";
import { ingressOf, rpcIngress } from "./http/unread-answer.js";
import { createIngestServiceImpl } from "./ingest/ingest-rpc.js";
import type { Ingestor } from "./ingest/ingestor.js";
import type { Logger } from "./log.js";
import type { History } from "./query/history.js";
import { createQueryServiceImpl } from "./query/query-rpc.js";
import { createRateLimitInterceptor } from "./ratelimit/rate-limit-interceptor.js";
import type { RateLimiter } from "./ratelimit/token-bucket.js";
import type { Retention } from "./storage/retention.js";
import { type RefusalLog, UNKNOWN_SERVICE } from "./telemetry/refusal-log.js";
import type { ServiceMetrics } from "./telemetry/telemetry.js";

/** What the server is built from. */
export interface MetricsServerOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly registry: KeyRegistry;
  readonly limiter: RateLimiter;
  readonly ingestor: Ingestor;
  /** Retention and database operations (admin API and RPCs). */
  readonly retention: Retention;
  /** The stored history's questions (QueryService, `GET /export`). */
  readonly history: History;
  /** The service's own metrics; none are recorded when absent. */
  readonly metrics?: ServiceMetrics;
  /** Whether the service takes events (`/readyz`, `/health`, gRPC health). */
  readonly readiness: Readiness;
  /** Where refused requests and rejected batches are logged and counted. */
  readonly refusals?: RefusalLog;
  /** Aborted when a shutdown begins: new calls are refused and open streams end. */
  readonly draining: AbortSignal;
  /** Aborted once the drain's time is over, to cut handlers still running. */
  readonly hardStop: AbortSignal;
}

/**
 * The service's requests on the one port (gRPC, Connect, gRPC-Web and the
 * plain HTTP routes): the handler, and the door's hooks the port calls before
 * it (src/lifecycle/port.ts serves them once the service is up).
 */
export interface MetricsRoutes
  extends Pick<
    OnePortOptions,
    "admission" | "onAdmitted" | "onShareExceeded" | "onOverload" | "onConnectionRefused"
  > {
  readonly handler: RequestHandler;
}

/** Largest response message; answers are small, this only bounds a bug. */
const WRITE_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Outermost interceptor: anything that is not already a ConnectError becomes
 * INTERNAL with the detail logged, never echoed (docs/conventions.md habit 4).
 */
function errorBoundary(log: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (cause) {
      // A stream message connect-es could not decode is the client's mistake, not INTERNAL.
      const raised = asConnectError(cause);
      const error = decodeErrorOf(raised, req.method.input.typeName) ?? raised;
      const entry = { procedure: req.method.name, code: Code[error.code] };
      if (error.code === Code.Internal || error.code === Code.Unknown) {
        log.error({ ...entry, err: error.cause ?? error }, "rpc failed");
      } else {
        log.debug(entry, "rpc refused");
      }
      throw error;
    }
  };
}

/**
 * Counts every RPC by ingress and outcome, and rate-limit refusals by service,
 * and reports refusals. Outermost, so that calls refused by auth or the rate
 * limit are counted too.
 */
function requestMetrics(
  metrics: ServiceMetrics | undefined,
  refusals: RefusalLog | undefined,
): Interceptor {
  return (next) => async (req) => {
    const ingress = rpcIngress(req.header.get("content-type"));
    try {
      const res = await next(req);
      metrics?.request(ingress, "ok");
      return res;
    } catch (cause) {
      const error = asConnectError(cause);
      const principal = admittedIn(req.contextValues)?.principal;
      const reason = refusalReason(error);
      // A stream that ran out of tokens (a unary call's token is spent at the door).
      if (reason === "rate_limited") metrics?.rateLimited(principal?.service ?? UNKNOWN_SERVICE);
      const status = codeToString(error.code);
      metrics?.request(ingress, status);
      const message = req.stream ? undefined : (req.message as { events?: unknown });
      refusals?.refused({
        ingress,
        reason,
        status,
        error: error.rawMessage,
        principal,
        address: req.contextValues.get(clientAddressKey),
        service: serviceOf(message),
        events: Array.isArray(message?.events) ? message.events.length : undefined,
      });
      throw cause;
    }
  };
}

/**
 * Leaves gRPC health checks out of an interceptor: they need no key, spend no
 * token, and are answered while draining (NOT_SERVING), as probes expect.
 */
function exceptHealth(interceptor: Interceptor): Interceptor {
  return (next) => {
    const intercepted = interceptor(next);
    return (req) => (req.service.typeName === Health.typeName ? next(req) : intercepted(req));
  };
}

/**
 * Answers an RPC the door refused to be answered after its body (a
 * shutdown's refusal), now that connect-es has read it.
 */
const refusedAfterBody: Interceptor = (next) => async (req) => {
  const admission = req.contextValues.get(admissionKey);
  if (admission?.kind === "refused") throw refusalError(admission.refusal);
  return await next(req);
};

/**
 * The one port's view of an admission: which pool a request counts in, and
 * whose share it holds; a refusal decided for an RPC is answered at once,
 * body unread. A JSON request refused by the door counts as anonymous until
 * its route answers the refusal (the legacy order).
 */
function portAdmission(door: AdmissionControl, admission: Admission): PortAdmission {
  switch (admission.kind) {
    case "exempt":
    case "anonymous":
      return admission.kind;
    case "known":
      return { known: admission.principal.bucketId };
    case "refused": {
      if (admission.answer === "after_body") return "anonymous";
      const { refusal } = admission;
      return { refuse: (req, res) => door.refuse(req, res, refusal) };
    }
  }
}

/**
 * Spends the token of an RPC the door admitted, still before its body is
 * read (a unary call's, a stream's opening one): an empty bucket is answered
 * at once, and a call refused for overload or its share spends none. A JSON
 * request spends its token in its route, after its body (the legacy order).
 */
function chargeRpc(door: AdmissionControl) {
  const charge = async (req: AnyRequest, res: AnyResponse): Promise<boolean> => {
    const admission = await door.charge(req);
    if (admission.kind !== "refused") return true;
    door.refuse(req, res, admission.refusal);
    return false;
  };
  // Synchronous for every other request: only a spend waits (for a shared bucket).
  return (req: AnyRequest, res: AnyResponse): boolean | Promise<boolean> =>
    door.of(req).kind === "known" && ingressOf(req) !== "json" ? charge(req, res) : true;
}

/** The one port's TLS certificate and key, read from their PEM files, or undefined for cleartext. */
export function portTls(config: Config): { cert: Buffer; key: Buffer } | undefined {
  return (
    config.tls && {
      cert: readPem("METRICS_TLS_CERT_FILE", config.tls.certFile),
      key: readPem("METRICS_TLS_KEY_FILE", config.tls.keyFile),
    }
  );
}

/** Reads a PEM file named by a setting; a failure names the setting and the path. */
function readPem(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new Error(`${setting}: cannot read ${path} (${reason})`);
  }
}

/**
 * Builds the service's routes for the one port. Every request passes the door
 * first (src/auth/admission.ts: draining, key, scope, and for an RPC its
 * token, decided once from the headers), then the port's bounds; the RPC
 * interceptors, outermost first, count and report outcomes, turn unexpected
 * failures into INTERNAL, and meter client streams per message.
 */
export function createMetricsRoutes(options: MetricsServerOptions): MetricsRoutes {
  const { config, log } = options;
  const { draining, hardStop } = options;
  const isDraining = () => draining.aborted;
  // Every open stream listens for both (its handler for the drain, connect-node
  // for the hard stop): no listener limit, or Node warns on stderr past 10.
  setMaxListeners(0, draining, hardStop);
  const throttle = createAuthThrottle({ failuresPerMinute: config.authFailuresPerMinute });
  const { readiness } = options;
  const door = createAdmissionControl({
    registry: options.registry,
    throttle,
    limiter: options.limiter,
    draining: isDraining,
    metrics: options.metrics,
    refusals: options.refusals,
  });

  // How fast a request message or body must arrive, on every ingress.
  const arrival = {
    deadlineMillis: config.messageDeadlineMillis,
    minBytesPerSecond: config.minDataRate,
  };
  const handler = connectNodeAdapter({
    routes: (router: ConnectRouter) => {
      router.service(
        IngestService,
        createIngestServiceImpl({ ingestor: options.ingestor, draining }),
      );
      router.service(AdminService, createAdminServiceImpl(options.retention));
      router.service(QueryService, createQueryServiceImpl(options.history));
      router.service(Health, createHealthServiceImpl({ readiness, draining }));
      // Last, so that it covers every service: an undecodable message is the client's mistake.
      // Those calls never reach the interceptors: counted here.
      mapDecodeErrors(
        router,
        (ingress, error) => {
          const status = codeToString(error.code);
          options.metrics?.request(ingress, status);
          options.refusals?.refused({
            ingress,
            reason: refusalReason(error),
            status,
            error: error.rawMessage,
          });
        },
        arrival,
      );
    },
    interceptors: [
      exceptHealth(requestMetrics(options.metrics, options.refusals)),
      errorBoundary(log),
      exceptHealth(refusedAfterBody),
      exceptHealth(createRateLimitInterceptor(options.limiter)),
    ],
    // What the door decided, for the interceptors and handlers: every RPC but
    // the health service's was admitted with a key before its body was read.
    contextValues: (req) => {
      const values = createContextValues().set(clientAddressKey, addressOf(req));
      return values.set(admissionKey, door.of(req));
    },
    readMaxBytes: config.maxRequestBytes,
    writeMaxBytes: WRITE_MAX_BYTES,
    shutdownSignal: hardStop,
    fallback: createHttpRoutes({
      door,
      limiter: options.limiter,
      ingestor: options.ingestor,
      draining: isDraining,
      readiness,
      maxRequestBytes: config.maxRequestBytes,
      arrival,
      log,
      retention: options.retention,
      history: options.history,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.refusals ? { refusals: options.refusals } : {}),
    }),
  });
  return {
    handler,
    admission: (req, res) => portAdmission(door, door.decide(req, res)),
    onAdmitted: chargeRpc(door),
    onShareExceeded: (req, res) => {
      const principal = door.principalOf(req);
      // Only a key's request is held to a share.
      if (principal === undefined) return door.refuse(req, res, { kind: "overloaded", principal });
      door.refuse(req, res, {
        kind: "key_share_exceeded",
        principal,
        share: config.maxConcurrentRequestsPerKey,
      });
    },
    onOverload: (req, res) =>
      door.refuse(req, res, { kind: "overloaded", principal: door.principalOf(req) }),
    onConnectionRefused: (reason) => options.metrics?.connectionRefused("main", reason),
  };
}
