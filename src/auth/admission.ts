import { type ConnectError, type ContextValues, createContextKey } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { AdminService } from "../../gen/mcp/metrics/v1/admin_pb.js";
import { QueryService } from "../../gen/mcp/metrics/v1/query_pb.js";
import { codeNameOfHttpStatus, errors, httpStatusOf, refusalReason } from "../errors.js";
import { type AnyRequest, type AnyResponse, addressOf, pathOf } from "../http/respond.js";
import { answerUnread, ingressOf } from "../http/unread-answer.js";
import type { BucketDecision, RateLimiter } from "../ratelimit/token-bucket.js";
import type { RefusalLog } from "../telemetry/refusal-log.js";
import type { ServiceMetrics } from "../telemetry/telemetry.js";
import type { AuthThrottle } from "./auth-throttle.js";
import type { AuthResult, KeyRegistry } from "./key-registry.js";
import { mayRead, type Principal } from "./principal.js";

/**
 * Why a request is refused at the door, before anything it sent is used.
 * Each refusal becomes one catalog error ({@link refusalError}), answered in
 * the request's protocol and counted in one place ({@link AdmissionControl.refuse}).
 */
export type AdmissionRefusal =
  /** `X-API-Key` sent more than once: the first and the last may differ. */
  | { readonly kind: "ambiguous_key"; readonly times: number }
  /** No key, a wrong, inactive or expired one, or an address throttled for guessing: the registry's error. */
  | { readonly kind: "key_refused"; readonly error: ConnectError }
  /** An admin operation with an ingest key (docs/legacy-contract.md W10), refused before it spends a token. */
  | { readonly kind: "admin_required"; readonly principal: Principal }
  /** A query (QueryService, `GET /export`) with an ingest key, refused before it spends a token. */
  | { readonly kind: "read_required"; readonly principal: Principal }
  /** Anything but a query with a read key (events, admin operations), refused before it spends a token. */
  | { readonly kind: "read_only"; readonly principal: Principal }
  /** The key's token bucket is empty. */
  | {
      readonly kind: "rate_limited";
      readonly principal: Principal;
      readonly retryAfterSeconds: number;
    }
  /** The key holds its share of the requests in flight while others wait for the rest. */
  | { readonly kind: "key_share_exceeded"; readonly principal: Principal; readonly share: number }
  /** The pool of requests in flight is full. */
  | { readonly kind: "overloaded"; readonly principal: Principal | undefined }
  /** A shutdown began. */
  | { readonly kind: "shutting_down"; readonly principal: Principal | undefined };

/** A request the door let in with a valid key, and the token it spent (once it spent one). */
export interface Admitted {
  readonly kind: "known";
  readonly principal: Principal;
  readonly decision?: BucketDecision;
}

/**
 * What the door decided about a request, from its headers, once:
 * - `exempt`: a health check, never counted, keyed nor refused;
 * - `anonymous`: a request no key is asked of (a 404, a health watch), in the small anonymous pool;
 * - `known`: a valid key's request, held against that key's fair share;
 * - `refused`: answered with the refusal. An RPC is answered at once, its
 *   body unread; a JSON route keeps the Python service's order (a body too
 *   large is 413 and one that is not JSON 422 before a missing key is 401,
 *   docs/legacy-contract.md §1), so its refusal is answered by the route once the body is
 *   read, and meanwhile it counts as anonymous (`GET /export`, which has no
 *   body, is answered at once like an RPC). A shutdown's refusal is
 *   answered after the body on every ingress: a client still sending its
 *   body to a connection closed under it sees a broken pipe, not the
 *   retryable UNAVAILABLE it is owed.
 */
export type Admission =
  | { readonly kind: "exempt" }
  | { readonly kind: "anonymous" }
  | Admitted
  | {
      readonly kind: "refused";
      readonly refusal: AdmissionRefusal;
      /** `now` (before the body is read: RPCs, `GET /export`) or `after_body` (the other JSON routes). */
      readonly answer: "now" | "after_body";
    };

/** The principal a refusal names, if the request carried a valid key. */
export function principalOfRefusal(refusal: AdmissionRefusal): Principal | undefined {
  return "principal" in refusal ? refusal.principal : undefined;
}

/** The catalog error a refusal is answered with: code, message, reason, Retry-After. */
export function refusalError(refusal: AdmissionRefusal): ConnectError {
  switch (refusal.kind) {
    case "ambiguous_key":
      return errors.ambiguous("header", "X-API-Key", refusal.times);
    case "key_refused":
      return refusal.error;
    case "admin_required":
      return errors.adminRequired();
    case "read_required":
      return errors.readRequired();
    case "read_only":
      return errors.readOnlyKey();
    case "rate_limited":
      return errors.rateLimited(refusal.principal.rateLimitPerMinute, refusal.retryAfterSeconds);
    case "key_share_exceeded":
      return errors.keyShareExceeded(refusal.share);
    case "overloaded":
      return errors.overloaded();
    case "shutting_down":
      return errors.shuttingDown();
  }
}

/** Context value: an RPC's admission, as the door decided it, for the handlers and interceptors. */
export const admissionKey = createContextKey<Admission | undefined>(undefined, {
  description: "what the door decided about the call",
});

/** The admitted key of an RPC, from its context values; undefined unless the door admitted it with one. */
export function admittedIn(values: ContextValues): Admitted | undefined {
  const admission = values.get(admissionKey);
  return admission?.kind === "known" ? admission : undefined;
}

/**
 * Checks a key for a request from `address`. An address that failed too often
 * is refused before its key is looked at (RESOURCE_EXHAUSTED, docs/legacy-contract.md W14); an unknown
 * key spends one of the address's failures.
 */
export function authenticateFrom(
  registry: KeyRegistry,
  throttle: AuthThrottle,
  address: string,
  key: string | null | undefined,
  options?: { recordUse?: boolean },
): AuthResult {
  const blocked = throttle.blockedFor(address);
  if (blocked > 0) return { ok: false, reason: "throttled", error: errors.authThrottled(blocked) };
  const result = registry.authenticate(key, options);
  // Only a wrong key is a guess; a missing, revoked or expired one is not.
  if (!result.ok && result.reason === "invalid") throttle.recordFailure(address);
  return result;
}

/** How many `X-API-Key` headers a request has (Node joins repeats with ", " in `headers`). */
function apiKeyCount(req: AnyRequest): number {
  const raw = req.rawHeaders;
  let count = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() === "x-api-key") count++;
  }
  return count;
}

/**
 * The first `X-API-Key` value, as Starlette reads it. A request that sends
 * more than one is refused before its key is used (`ambiguous_key`; FastAPI
 * took the last, Node's `headers` joins them): the first is only what a
 * look-up for attribution reads.
 */
export function apiKeyOf(req: AnyRequest): string | undefined {
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() === "x-api-key") return raw[i + 1];
  }
  return undefined;
}

/** Paths of the health checks, which are never counted against the request bounds. */
const HEALTH_PATHS = new Set(["/", "/health", "/healthz", "/readyz"]);

/** The gRPC health service's paths: served without a key. */
const GRPC_HEALTH_PREFIX = `/${Health.typeName}/`;
const GRPC_HEALTH_CHECK = `${GRPC_HEALTH_PREFIX}${Health.method.check.name}`;

/** The JSON routes whose answers the request counter counts, as the Python service's did. */
const JSON_COUNTED_PATHS = new Set(["/metrics", "/flush"]);

/** The AdminService's paths, over RPC. */
const ADMIN_RPC_PREFIX = `/${AdminService.typeName}/`;

/** The QueryService's paths, over RPC: the read scope's. */
const QUERY_RPC_PREFIX = `/${QueryService.typeName}/`;

/**
 * What a keyed request does, hence which scopes may do it
 * (docs/security.md#scopes-and-service-binding):
 * - `ingest`: send events (IngestService, `POST /metrics`, `POST /flush`): ingest and admin keys;
 * - `read`: query the history (QueryService, `GET /export`): read and admin keys;
 * - `admin`: the admin operations (AdminService, `/admin/...`): admin keys;
 * - `peek`: look at the caller's own bucket (`GET /rate-limit`): any key.
 */
type KeyedRoute = "ingest" | "read" | "admin" | "peek";

/** The JSON routes that take a key, and what they do. */
function keyedJsonRoute(method: string, path: string): KeyedRoute | undefined {
  if (path.startsWith("/admin/")) return "admin";
  if (method === "POST" && (path === "/metrics" || path === "/flush")) return "ingest";
  // A read like QueryService's: it spends a token, counts a use and is refused while draining.
  if (method === "GET" && path === "/export") return "read";
  // Reports the caller's bucket without spending from it or counting a use.
  if (method === "GET" && path === "/rate-limit") return "peek";
  return undefined;
}

/** What an RPC's path does: every RPC but the health service's takes a key. */
function keyedRpcRoute(path: string): KeyedRoute {
  if (path.startsWith(ADMIN_RPC_PREFIX)) return "admin";
  if (path.startsWith(QUERY_RPC_PREFIX)) return "read";
  return "ingest";
}

/**
 * Why a key's scope may not do what a route does, if it may not: checked
 * before the request spends a token. A read key is refused everything but
 * the queries (and its own bucket), an ingest key the queries and the admin
 * operations (docs/legacy-contract.md W10); an admin key may do everything.
 */
function scopeRefusal(route: KeyedRoute, principal: Principal): AdmissionRefusal | undefined {
  switch (route) {
    case "peek":
      return undefined;
    case "read":
      return mayRead(principal.scope) ? undefined : { kind: "read_required", principal };
    case "ingest":
    case "admin":
      if (principal.scope === "read") return { kind: "read_only", principal };
      if (route === "admin" && principal.scope !== "admin") {
        return { kind: "admin_required", principal };
      }
      return undefined;
  }
}

/** What the door needs to decide. */
export interface AdmissionOptions {
  readonly registry: KeyRegistry;
  /** Failed authentications per client address. */
  readonly throttle: AuthThrottle;
  readonly limiter: RateLimiter;
  /** Whether a shutdown began. */
  readonly draining: () => boolean;
  /** The service's own metrics; none are recorded when absent. */
  readonly metrics?: ServiceMetrics | undefined;
  /** Where refusals are logged and counted by reason. */
  readonly refusals?: RefusalLog | undefined;
}

/**
 * The door of the one port: admission of every request on every ingress,
 * decided once from its headers ({@link AdmissionControl.decide}), kept for
 * the request's lifetime ({@link AdmissionControl.of}), and refusals answered
 * and counted in one place.
 */
export interface AdmissionControl {
  /**
   * Decides a request's admission from its headers and keeps it; the port
   * calls it once per request, before anything else looks at the request.
   */
  decide(req: AnyRequest, res: AnyResponse): Admission;
  /** The admission decided for `req` (`anonymous` for a request the door never saw). */
  of(req: AnyRequest): Admission;
  /** The valid key `req` was admitted or refused with, if any: who a refusal is reported for. */
  principalOf(req: AnyRequest): Principal | undefined;
  /**
   * Spends the token of a `known` admission, once: the door's choice for an
   * RPC (before its body is read), the route's for a JSON request (after its
   * body is read, in the legacy order). Returns the admission after it: still
   * `known`, with the bucket's decision, or `refused` as `rate_limited`.
   */
  charge(req: AnyRequest): Promise<Admission>;
  /**
   * Answers `refusal` in the request's protocol, body unread (a gRPC or
   * gRPC-Web trailers-only answer, a Connect error, the legacy `{"detail"}`),
   * reports it and counts it: the only place an admission refusal is rendered.
   */
  refuse(req: AnyRequest, res: AnyResponse, refusal: AdmissionRefusal): void;
}

/** Creates the door. */
export function createAdmissionControl(options: AdmissionOptions): AdmissionControl {
  const { registry, throttle, limiter } = options;
  const decided = new WeakMap<AnyRequest, Admission>();

  const authenticate = (req: AnyRequest, recordUse: boolean): AuthResult | AdmissionRefusal => {
    const times = apiKeyCount(req);
    if (times > 1) return { kind: "ambiguous_key", times };
    return authenticateFrom(registry, throttle, addressOf(req), apiKeyOf(req), { recordUse });
  };

  const judge = (req: AnyRequest): Admission => {
    const method = req.method ?? "GET";
    const path = pathOf(req);
    if ((method === "GET" || method === "HEAD") && HEALTH_PATHS.has(path))
      return { kind: "exempt" };
    // A health Check is exempt like /readyz; a Watch is long-lived, so it takes a slot of the anonymous pool.
    if (path.startsWith(GRPC_HEALTH_PREFIX)) {
      return path === GRPC_HEALTH_CHECK ? { kind: "exempt" } : { kind: "anonymous" };
    }
    const json = ingressOf(req) === "json";
    const route = json ? keyedJsonRoute(method, path) : keyedRpcRoute(path);
    if (route === undefined) return { kind: "anonymous" };
    // `GET /export` is no legacy route and has no body: there is no legacy
    // order to keep (docs/legacy-contract.md §1), so its refusal is answered
    // here, as an RPC's is, whatever route serves it; that route spends its
    // token through `charge`, as every JSON route does.
    const answer = json && route !== "read" ? "after_body" : "now";
    const refused = (refusal: AdmissionRefusal): Admission => ({
      kind: "refused",
      refusal,
      // A shutdown's refusal waits for the body on every ingress (see Admission).
      answer: refusal.kind === "shutting_down" ? "after_body" : answer,
    });
    const auth = authenticate(req, route !== "peek");
    if ("kind" in auth) return refused(auth);
    if (!auth.ok) return refused({ kind: "key_refused", error: auth.error });
    const { principal } = auth;
    // GET /rate-limit answers while draining, as it always did.
    if (route !== "peek" && options.draining())
      return refused({ kind: "shutting_down", principal });
    const denied = scopeRefusal(route, principal);
    if (denied !== undefined) return refused(denied);
    return { kind: "known", principal };
  };

  const of = (req: AnyRequest): Admission => decided.get(req) ?? { kind: "anonymous" };

  return {
    decide(req, res) {
      const admission = judge(req);
      // Every answer of the JSON ingest routes is counted once, when it is
      // written, whoever writes it: the route, or the door refusing it.
      const metrics = options.metrics;
      if (metrics && JSON_COUNTED_PATHS.has(pathOf(req)) && ingressOf(req) === "json") {
        res.once("finish", () => metrics.request("json", codeNameOfHttpStatus(res.statusCode)));
      }
      decided.set(req, admission);
      return admission;
    },
    of,
    principalOf(req) {
      const admission = of(req);
      if (admission.kind === "known") return admission.principal;
      return admission.kind === "refused" ? principalOfRefusal(admission.refusal) : undefined;
    },
    async charge(req) {
      const admission = of(req);
      if (admission.kind !== "known" || admission.decision !== undefined) return admission;
      const { principal } = admission;
      const decision = await limiter.take(principal.bucketId, principal.rateLimitPerMinute);
      const charged: Admission = decision.allowed
        ? { kind: "known", principal, decision }
        : {
            kind: "refused",
            refusal: {
              kind: "rate_limited",
              principal,
              retryAfterSeconds: decision.retryAfterSeconds,
            },
            answer: ingressOf(req) === "json" ? "after_body" : "now",
          };
      decided.set(req, charged);
      return charged;
    },
    refuse(req, res, refusal) {
      const error = refusalError(refusal);
      const principal = principalOfRefusal(refusal);
      const ingress = answerUnread(req, res, error);
      const outcome =
        ingress === "json" ? String(httpStatusOf(error.code)) : codeToString(error.code);
      // A JSON answer is counted when it is written (see decide).
      if (ingress !== "json") options.metrics?.request(ingress, codeToString(error.code));
      if (refusal.kind === "rate_limited") options.metrics?.rateLimited(refusal.principal.service);
      options.refusals?.refused({
        ingress,
        reason: refusalReason(error),
        status: outcome,
        error: error.rawMessage,
        principal,
        address: addressOf(req),
      });
    },
  };
}
