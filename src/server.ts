import { setMaxListeners } from "node:events";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import {
  Code,
  type ConnectError,
  type ConnectRouter,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { AdminService } from "../gen/mcp/metrics/v1/admin_pb.js";
import { IngestService } from "../gen/mcp/metrics/v1/ingest_pb.js";
import { requireAdmin } from "./admin/admin-errors.js";
import { createAdminServiceImpl } from "./admin/admin-rpc.js";
import { createHealthServiceImpl } from "./admin/health-rpc.js";
import type { Readiness } from "./admin/readiness.js";
import { authenticateFrom, createAuthInterceptor } from "./auth/auth-interceptor.js";
import { type AuthThrottle, createAuthThrottle } from "./auth/auth-throttle.js";
import type { KeyRegistry } from "./auth/key-registry.js";
import {
  clientAddressKey,
  type EarlyCheck,
  earlyCheckKey,
  type Principal,
  principalKey,
} from "./auth/principal.js";
import type { Config } from "./config.js";
import { asConnectError, errors, httpStatusOf, refusalReason } from "./errors.js";
import { decodeErrorOf, mapDecodeErrors } from "./http/decode-errors.js";
import {
  ambiguousApiKey,
  apiKeyOf,
  createHttpRoutes,
  serviceOf,
  validKeyOf,
} from "./http/legacy-routes.js";
import { type Admission, createOnePortServer, DEFAULT_ONE_PORT_OPTIONS } from "./http/one-port.js";
import { type AnyRequest, type AnyResponse, addressOf, pathOf } from "./http/respond.js";
import { answerUnread, ingressOf, rpcIngress } from "./http/unread-answer.js";
import { createIngestServiceImpl } from "./ingest/ingest-rpc.js";
import type { Ingestor } from "./ingest/ingestor.js";
import type { Logger } from "./log.js";
import {
  createRateLimitInterceptor,
  enforceRateLimit,
} from "./ratelimit/rate-limit-interceptor.js";
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
  /** The service's own metrics; none are recorded when absent. */
  readonly metrics?: ServiceMetrics;
  /** Whether the service takes events (`/readyz`, `/health`, gRPC health). */
  readonly readiness: Readiness;
  /** Where refused requests and rejected batches are logged and counted. */
  readonly refusals?: RefusalLog;
}

/** The service's one port: gRPC, Connect, gRPC-Web and the plain HTTP routes. */
export interface MetricsServer {
  /** Listens on the configured host and port. */
  listen(): Promise<AddressInfo>;
  /** True once a shutdown began: new requests are refused with a retryable error. */
  readonly draining: boolean;
  /** Requests being handled right now, on every ingress (the event store's group commit waits for them). */
  readonly inFlight: number;
  /** Refuses new requests, waits for in-flight ones (up to `timeoutMillis`), then closes. */
  close(timeoutMillis: number): Promise<void>;
}

/** Largest response message; answers are small, this only bounds a bug. */
const WRITE_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Outermost interceptor: anything that is not already a ConnectError becomes
 * INTERNAL with the detail logged, never echoed (CONVENTIONS.md habit 4).
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
      const principal = req.contextValues.get(principalKey);
      // Only the rate limit's refusal carries x-ratelimit-limit (a size cap is RESOURCE_EXHAUSTED too).
      if (error.metadata.has("x-ratelimit-limit")) {
        metrics?.rateLimited(principal?.service ?? UNKNOWN_SERVICE);
      }
      const status = codeToString(error.code);
      metrics?.request(ingress, status);
      const message = req.stream ? undefined : (req.message as { events?: unknown });
      refusals?.refused({
        ingress,
        reason: refusalReason(error),
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

/** Refuses new RPCs with UNAVAILABLE once shutdown began. */
function drainGuard(isDraining: () => boolean): Interceptor {
  return (next) => async (req) => {
    if (isDraining()) throw errors.shuttingDown();
    return await next(req);
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

/** Refuses AdminService calls from keys without the admin scope, before they spend a token (W10). */
const adminScope: Interceptor = (next) => async (req) => {
  if (req.service.typeName === AdminService.typeName) {
    requireAdmin(req.contextValues.get(principalKey));
  }
  return await next(req);
};

/** Paths of the health checks, which are never counted against the request bounds. */
const HEALTH_PATHS = new Set(["/", "/health", "/healthz", "/readyz"]);

/** The gRPC health service's paths: served without a key. */
const GRPC_HEALTH_PREFIX = `/${Health.typeName}/`;
const GRPC_HEALTH_CHECK = `${GRPC_HEALTH_PREFIX}${Health.method.check.name}`;

/** The unary ingest RPC, whose token the early check spends (a stream spends one per message). */
const UNARY_INGEST_PATH = `/${IngestService.typeName}/${IngestService.method.ingest.name}`;

interface AdmissionOptions {
  readonly registry: KeyRegistry;
  readonly throttle: AuthThrottle;
  readonly limiter: RateLimiter;
  readonly log: Logger;
  readonly metrics: ServiceMetrics | undefined;
  readonly refusals: RefusalLog | undefined;
  /** Where the early check leaves what it established, for the interceptors. */
  readonly checked: WeakMap<AnyRequest, EarlyCheck>;
  readonly draining: () => boolean;
}

/**
 * Sorts a request for the port's bounds from its headers: health checks are
 * exempt; a request with a valid key is `known`; anything else `anonymous`.
 *
 * An RPC's key is checked in full here, before its body is read or parsed: a
 * missing, wrong or throttled key is answered at once in the call's protocol,
 * so that refusing a call costs a fraction of accepting one. The JSON routes
 * keep the legacy order (a body that is not JSON is 422 even without a key,
 * contract §1), so their key check stays in the route and this one does not
 * count a use.
 */
function admissionBy(options: AdmissionOptions) {
  const { registry, throttle, checked } = options;
  return (req: AnyRequest): Admission => {
    const method = req.method ?? "GET";
    const path = pathOf(req);
    if ((method === "GET" || method === "HEAD") && HEALTH_PATHS.has(path)) return "exempt";
    // A health Check is exempt like /readyz; a Watch is long-lived, so it takes a slot of the anonymous pool.
    if (path.startsWith(GRPC_HEALTH_PREFIX)) {
      return path === GRPC_HEALTH_CHECK ? "exempt" : "anonymous";
    }
    if (ingressOf(req) === "json") {
      const known = validKeyOf(registry, req);
      return known ? { known: known.bucketId } : "anonymous";
    }
    const ambiguous = ambiguousApiKey(req);
    if (ambiguous) return { refuse: (rq, rs) => refuseUnread(options, rq, rs, ambiguous) };
    const auth = authenticateFrom(registry, throttle, addressOf(req), apiKeyOf(req));
    if (!auth.ok) return { refuse: (rq, rs) => refuseUnread(options, rq, rs, auth.error) };
    checked.set(req, { principal: auth.principal });
    return { known: auth.principal.bucketId };
  };
}

/**
 * Spends the token of an admitted unary ingest call, still before its body
 * is read: an empty bucket is answered at once, and a call refused for
 * overload or shutdown spends none.
 */
function spendTokenBy(options: AdmissionOptions) {
  const { limiter, metrics, checked } = options;
  const spend = async (req: AnyRequest, res: AnyResponse, early: EarlyCheck): Promise<boolean> => {
    try {
      checked.set(req, { ...early, decision: await enforceRateLimit(limiter, early.principal) });
      return true;
    } catch (error) {
      metrics?.rateLimited(early.principal.service);
      refuseUnread(options, req, res, asConnectError(error), early.principal);
      return false;
    }
  };
  // Synchronous for every other request: only a spend waits (for a shared bucket).
  return (req: AnyRequest, res: AnyResponse): boolean | Promise<boolean> => {
    const early = checked.get(req);
    if (early === undefined || options.draining() || pathOf(req) !== UNARY_INGEST_PATH) {
      return true;
    }
    return spend(req, res, early);
  };
}

/**
 * Answers a request refused before its body is read, in its protocol, and
 * counts it as the instruments label outcomes: the HTTP status for JSON, the
 * code for RPCs.
 */
function refuseUnread(
  options: Pick<AdmissionOptions, "metrics" | "refusals">,
  req: AnyRequest,
  res: AnyResponse,
  error: ConnectError,
  principal?: Principal,
): void {
  const ingress = answerUnread(req, res, error);
  const outcome = ingress === "json" ? String(httpStatusOf(error.code)) : codeToString(error.code);
  options.metrics?.request(ingress, outcome);
  options.refusals?.refused({
    ingress,
    reason: refusalReason(error),
    status: outcome,
    error: error.rawMessage,
    principal,
    address: addressOf(req),
  });
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
 * Builds the server without listening (tests listen on port 0). Interceptors
 * run outermost first: error boundary, drain guard, auth, admin scope, rate limit.
 */
export function createMetricsServer(options: MetricsServerOptions): MetricsServer {
  const { config, log } = options;
  // Aborted when a shutdown begins: new calls are refused and open streams end.
  const drain = new AbortController();
  const isDraining = () => drain.signal.aborted;
  // Aborted only when the shutdown timeout has passed, to cut handlers still running.
  const hardStop = new AbortController();
  // Every open stream listens for both (its handler for the drain, connect-node
  // for the hard stop): no listener limit, or Node warns on stderr past 10.
  setMaxListeners(0, drain.signal, hardStop.signal);
  const throttle = createAuthThrottle({ failuresPerMinute: config.authFailuresPerMinute });
  const checked = new WeakMap<AnyRequest, EarlyCheck>();
  const { readiness } = options;
  const admissionOptions: AdmissionOptions = {
    registry: options.registry,
    throttle,
    limiter: options.limiter,
    log,
    metrics: options.metrics,
    refusals: options.refusals,
    checked,
    draining: isDraining,
  };

  const handler = connectNodeAdapter({
    routes: (router: ConnectRouter) => {
      router.service(
        IngestService,
        createIngestServiceImpl({ ingestor: options.ingestor, draining: drain.signal }),
      );
      router.service(AdminService, createAdminServiceImpl(options.retention));
      router.service(Health, createHealthServiceImpl({ readiness, draining: drain.signal }));
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
        config.messageDeadlineMillis,
      );
    },
    interceptors: [
      exceptHealth(requestMetrics(options.metrics, options.refusals)),
      errorBoundary(log),
      ...[
        drainGuard(isDraining),
        createAuthInterceptor(options.registry, throttle),
        adminScope,
        createRateLimitInterceptor(options.limiter),
      ].map(exceptHealth),
    ],
    contextValues: (req) => {
      const values = createContextValues().set(clientAddressKey, addressOf(req));
      const early = checked.get(req);
      return early === undefined ? values : values.set(earlyCheckKey, early);
    },
    readMaxBytes: config.maxRequestBytes,
    writeMaxBytes: WRITE_MAX_BYTES,
    shutdownSignal: hardStop.signal,
    fallback: createHttpRoutes({
      registry: options.registry,
      throttle,
      limiter: options.limiter,
      ingestor: options.ingestor,
      draining: isDraining,
      readiness,
      maxRequestBytes: config.maxRequestBytes,
      log,
      retention: options.retention,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.refusals ? { refusals: options.refusals } : {}),
    }),
  });
  /** The key of a request refused at the port: an RPC's was checked there, a JSON request's is looked at. */
  const principalOf = (req: AnyRequest): Principal | undefined => {
    if (ingressOf(req) !== "json") return checked.get(req)?.principal;
    return validKeyOf(options.registry, req);
  };
  const port = createOnePortServer(handler, {
    ...DEFAULT_ONE_PORT_OPTIONS,
    tls: portTls(config),
    maxConcurrentRequests: config.maxConcurrentRequests,
    maxAnonymousRequests: config.maxAnonymousRequests,
    admission: admissionBy(admissionOptions),
    onAdmitted: spendTokenBy(admissionOptions),
    maxRequestsPerKey: config.maxConcurrentRequestsPerKey,
    onShareExceeded: (req, res) =>
      refuseUnread(
        admissionOptions,
        req,
        res,
        errors.keyShareExceeded(config.maxConcurrentRequestsPerKey),
        principalOf(req),
      ),
    onOverload: (req, res) =>
      refuseUnread(admissionOptions, req, res, errors.overloaded(), principalOf(req)),
    onError: (error) => log.error({ err: error }, "listening socket error"),
    maxConnections: config.maxConnections,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    onConnectionRefused: (reason) => options.metrics?.connectionRefused("main", reason),
  });

  return {
    listen: () => port.listen(config.port, config.host),
    get draining() {
      return isDraining();
    },
    get inFlight() {
      return port.inFlight;
    },
    async close(timeoutMillis) {
      drain.abort();
      await port.close(timeoutMillis);
      hardStop.abort();
    },
  };
}
