import type { ConnectError } from "@connectrpc/connect";
import type { Readiness } from "../admin/readiness.js";
import type { AdmissionControl } from "../auth/admission.js";
import type { Principal } from "../auth/principal.js";
import { asConnectError, errors, httpStatusOf, refusalReason } from "../errors.js";
import { type Ingestor, REPLAYED_HEADER } from "../ingest/ingestor.js";
import { batchIdProblem, LEGACY_PATHS } from "../ingest/validate.js";
import type { Logger } from "../log.js";
import type { History } from "../query/history.js";
import { rateLimitFields } from "../ratelimit/rate-limit-headers.js";
import type { BucketDecision, RateLimiter } from "../ratelimit/token-bucket.js";
import type { Retention } from "../storage/retention.js";
import type { Refusal, RefusalLog } from "../telemetry/refusal-log.js";
import type { ServiceMetrics } from "../telemetry/telemetry.js";
import { SERVICE_VERSION } from "../version.js";
import { createAdminRoutes, type RouteHandler } from "./admin-routes.js";
import type { ArrivalLimits } from "./arrival.js";
import { createExportRoute } from "./export-route.js";
import { decodeLegacyBatch } from "./legacy-batch.js";
import { parseLegacyJson } from "./legacy-json.js";
import { answerHealth, answerLiveness, answerReadiness } from "./probe-answers.js";
import { BodyError, readTextBody } from "./read-body.js";
import {
  type AnyRequest,
  type AnyResponse,
  addressOf,
  pathOf,
  sendJson,
  sendLegacyError,
} from "./respond.js";
import { createUiRoute, UI_PATH } from "./ui-route.js";

/** The `service` a body (legacy JSON) or a request message names, if it names one as text. */
export function serviceOf(body: unknown): string | undefined {
  const service = (body as { service?: unknown } | null)?.service;
  return typeof service === "string" ? service : undefined;
}

/** The plain HTTP routes served beside the RPCs, through the Connect adapter's fallback. */
export type HttpRoutes = (req: AnyRequest, res: AnyResponse) => void;

/** What the legacy routes share with the RPCs: the same keys, buckets, ingest path and store. */
export interface HttpRoutesOptions {
  /** The port's door: what it decided about each request's key, and where refusals are answered. */
  readonly door: AdmissionControl;
  /** The token buckets, looked at (never spent) by `GET /rate-limit`. */
  readonly limiter: RateLimiter;
  readonly ingestor: Ingestor;
  /** Whether the service is shutting down. */
  readonly draining: () => boolean;
  /** Whether the service takes events (`/readyz`, `/health`). */
  readonly readiness: Readiness;
  /** Largest body accepted, compressed or not (`METRICS_MAX_REQUEST_BYTES`). */
  readonly maxRequestBytes: number;
  /** How fast a body must arrive (`METRICS_MESSAGE_DEADLINE_MS`, `METRICS_MIN_DATA_RATE`). */
  readonly arrival?: ArrivalLimits;
  readonly log: Logger;
  /** The service's own metrics; none are recorded when absent. */
  readonly metrics?: ServiceMetrics;
  /** Retention and database operations, served under `/admin`. */
  readonly retention: Retention;
  /** The stored history, exported by `GET /export`. */
  readonly history: History;
  /** Where refused requests and rejected batches are logged and counted. */
  readonly refusals?: RefusalLog;
}

/** The JSON route's own refusal reasons, for answers that are not catalog errors. */
const BODY_REASONS: Readonly<Record<number, string>> = {
  400: "unreadable_body",
  408: "body_too_slow",
  413: "body_too_large",
  415: "unsupported_encoding",
};

type Handler = RouteHandler;

/** The legacy service's `GET /` answer (docs/legacy-contract.md §1). */
const ROOT = {
  service: "MCP Metrics Collection Service",
  // The service's own version (the Python service always said 1.0.0).
  version: SERVICE_VERSION,
  status: "running",
  endpoints: {
    metrics: "/metrics",
    health: "/health",
    flush: "/flush",
    "rate-limit": "/rate-limit",
  },
};

/**
 * The batch id in an `Idempotency-Key` header. The IETF draft
 * (draft-ietf-httpapi-idempotency-key-header) makes it a structured-field
 * string, `"…"`; a bare token is taken as well.
 */
function idempotencyKeyOf(
  header: string,
): { ok: true; batchId: string } | { ok: false; problem: string } {
  const text = header.trim();
  const quoted = /^"((?:[^"\\]|\\.)*)"$/.exec(text);
  const batchId = quoted ? (quoted[1] ?? "").replace(/\\(.)/g, "$1") : text;
  const problem = batchIdProblem(batchId);
  return problem === undefined ? { ok: true, batchId } : { ok: false, problem };
}

/**
 * The headers every successful `/metrics` and `/flush` answer carries: the
 * legacy `X-RateLimit-*` (docs/legacy-contract.md §1) and the IETF draft's `RateLimit` fields.
 */
function rateHeaders(decision: BucketDecision): Record<string, string> {
  const fields = rateLimitFields(decision.limit, decision.remaining, decision.secondsToFull);
  return {
    "X-RateLimit-Limit": String(decision.limit),
    "X-RateLimit-Remaining": String(decision.remaining),
    RateLimit: fields.ratelimit,
    "RateLimit-Policy": fields["ratelimit-policy"],
  };
}

/**
 * Builds the legacy JSON API of the Python service (docs/legacy-contract.md §1) on the one
 * port: `POST /metrics`, `POST /flush`, `GET /rate-limit`, `GET /health` and
 * `GET /`. `POST /metrics` decodes the JSON into the typed batch and goes
 * through the same key check, token bucket, ingest path, validation and store
 * as the RPCs. Checks run in the legacy order: body size, JSON syntax (422,
 * even without a key), key (401), rate limit (429), schema (422), validation
 * (200 with the rejections), commit (200 once committed).
 */
export function createHttpRoutes(options: HttpRoutesOptions): HttpRoutes {
  const { door, limiter, ingestor, log } = options;

  /** Reports a refusal of the JSON route: logged (rate-limited) and counted. */
  const refused = (
    req: AnyRequest,
    refusal: Omit<Refusal, "ingress" | "status" | "address"> & { readonly status: number },
  ): void =>
    options.refusals?.refused({
      ...refusal,
      ingress: "json",
      status: String(refusal.status),
      address: addressOf(req),
    });
  /** Answers a catalog error, reporting it. */
  const refuse = (
    req: AnyRequest,
    res: AnyResponse,
    error: ConnectError,
    principal?: Principal,
    batch?: { readonly service: string; readonly events: readonly unknown[] },
  ): void => {
    refused(req, {
      reason: refusalReason(error),
      status: httpStatusOf(error.code),
      error: error.rawMessage,
      principal,
      service: batch?.service,
      events: batch?.events.length,
    });
    sendLegacyError(res, error);
  };

  /**
   * The door's admission of a request, once its body is read (the legacy
   * order): key and scope as decided from its headers, then its token.
   * Answers the refusal itself and returns undefined when refused.
   */
  const admit = async (
    req: AnyRequest,
    res: AnyResponse,
  ): Promise<{ principal: Principal; decision: BucketDecision } | undefined> => {
    const admission = await door.charge(req);
    if (admission.kind === "known" && admission.decision !== undefined) {
      return { principal: admission.principal, decision: admission.decision };
    }
    if (admission.kind === "refused") door.refuse(req, res, admission.refusal);
    // A request the door never saw (it admits every keyed route): refused like a missing key.
    else door.refuse(req, res, { kind: "key_refused", error: errors.apiKeyRequired() });
    return undefined;
  };

  const postMetrics: Handler = async (req, res) => {
    let text: string;
    try {
      text = await readTextBody(req, options.maxRequestBytes, options.arrival);
    } catch (error) {
      if (!(error instanceof BodyError)) throw error;
      refused(req, {
        reason: BODY_REASONS[error.status] ?? "unreadable_body",
        status: error.status,
        error: error.message,
        principal: door.principalOf(req),
      });
      // The rest of an oversized HTTP/1.1 body is never read: close the connection after answering.
      return sendJson(
        res,
        error.status,
        { detail: error.message },
        req.httpVersion === "1.1" ? { connection: "close" } : {},
      );
    }
    // An empty body is "no body" to FastAPI, not a JSON error: it fails schema
    // validation, after the key check, like any other missing field.
    const parsed = text === "" ? ({ ok: true, value: null } as const) : parseLegacyJson(text);
    if (!parsed.ok) {
      refused(req, {
        reason: "invalid_json",
        status: 422,
        error: parsed.error.message,
        principal: door.principalOf(req),
      });
      return sendJson(res, 422, {
        detail: [
          {
            type: "json_invalid",
            loc: ["body", parsed.error.position],
            msg: parsed.error.message,
            input: {},
            ctx: { error: "Invalid JSON" },
          },
        ],
      });
    }
    const admitted = await admit(req, res);
    if (admitted === undefined) return;
    const { principal } = admitted;
    if (parsed.value === null) {
      refused(req, {
        reason: "invalid_body",
        status: 422,
        error: "body: Field required",
        principal,
      });
      return sendJson(res, 422, {
        detail: [{ type: "missing", loc: ["body"], msg: "Field required", input: null }],
      });
    }
    const decoded = decodeLegacyBatch(parsed.value);
    if (!decoded.ok) {
      const first = decoded.errors[0];
      refused(req, {
        reason: "invalid_body",
        status: 422,
        error: first ? `${first.loc.join(".")}: ${first.msg}` : "invalid body",
        principal,
        service: serviceOf(parsed.value),
      });
      return sendJson(res, 422, { detail: decoded.errors });
    }

    const { timestampDisplays } = decoded.value;
    // The body's batch_id, else an Idempotency-Key header, names the batch.
    let batch = decoded.value.batch;
    const header = req.headers["idempotency-key"];
    if (batch.batchId === undefined && typeof header === "string") {
      const key = idempotencyKeyOf(header);
      if (!key.ok) {
        const detail = `Idempotency-Key: ${key.problem}`;
        refused(req, { reason: "invalid_idempotency_key", status: 400, error: detail, principal });
        return sendJson(res, 400, { detail });
      }
      batch = { ...batch, batchId: key.batchId };
    }
    let outcome: Awaited<ReturnType<Ingestor["ingest"]>>;
    try {
      outcome = await ingestor.ingest(batch, {
        paths: LEGACY_PATHS,
        timestampDisplays,
        principal,
      });
    } catch (error) {
      return refuse(req, res, asConnectError(error), principal, batch);
    }
    const headers = rateHeaders(admitted.decision);
    if (outcome.ok) {
      if (outcome.replayed) headers[REPLAYED_HEADER] = "true";
      return sendJson(
        res,
        200,
        {
          status: "success",
          accepted: outcome.accepted,
          rejected: 0,
          errors: [],
          request_id: outcome.requestId,
        },
        headers,
      );
    }
    // Contract §2 layer B: the whole batch is rejected, with 200 and every message.
    const first = outcome.violations[0];
    refused(req, {
      reason: "invalid_batch",
      status: 200,
      error: first ? `${first.field}: ${first.description}` : "invalid batch",
      principal,
      service: batch.service,
      events: batch.events.length,
    });
    return sendJson(
      res,
      200,
      {
        status: "success",
        accepted: 0,
        rejected: batch.events.length,
        errors: outcome.violations.map((v) => `${v.field}: ${v.description}`),
        request_id: outcome.requestId,
      },
      headers,
    );
  };

  const postFlush: Handler = async (req, res) => {
    const admitted = await admit(req, res);
    if (admitted === undefined) return;
    // Nothing to do: an event is acknowledged only once committed (docs/legacy-contract.md W1), so
    // everything accepted so far is already on disk.
    sendJson(
      res,
      200,
      { status: "success", message: "Metrics flushed to storage" },
      rateHeaders(admitted.decision),
    );
  };

  const getRateLimit: Handler = async (req, res) => {
    // Reports the caller's bucket without spending from it or counting a use
    // (the door looked at the key so); an unknown key is 401 (the Python
    // service answered 500, docs/legacy-contract.md W13).
    const admission = door.of(req);
    if (admission.kind === "refused") return door.refuse(req, res, admission.refusal);
    if (admission.kind !== "known") {
      return door.refuse(req, res, { kind: "key_refused", error: errors.apiKeyRequired() });
    }
    const { bucketId, service, rateLimitPerMinute: limit } = admission.principal;
    const state = await limiter.peek(bucketId, limit);
    sendJson(res, 200, {
      service,
      rate_limit: limit,
      available_tokens: state.available,
      reset_time_seconds: limit > 0 ? Math.floor(((limit - state.available) / limit) * 60) : 0,
    });
  };

  const admin = createAdminRoutes({
    retention: options.retention,
    admitAdmin: async (req, res) => (await admit(req, res)) !== undefined,
    refuse: (req, res, error) => refuse(req, res, error, door.principalOf(req)),
    log,
  });

  // Maps, not object literals: an HTTP/2 :method such as "__proto__" must find nothing.
  const routes = new Map<string, ReadonlyMap<string, Handler>>([
    ...admin.exact,
    ["/", new Map([["GET", (_req, res) => sendJson(res, 200, ROOT)]])],
    [
      "/health",
      new Map([["GET", async (_req, res) => answerHealth(res, await options.readiness.check())]]),
    ],
    ["/healthz", new Map([["GET", (_req, res) => answerLiveness(res)]])],
    [
      "/readyz",
      new Map([
        ["GET", async (_req, res) => answerReadiness(res, await options.readiness.check())],
      ]),
    ],
    ["/metrics", new Map([["POST", postMetrics]])],
    ["/flush", new Map([["POST", postFlush]])],
    ["/rate-limit", new Map([["GET", getRateLimit]])],
    [
      "/export",
      new Map([
        [
          "GET",
          createExportRoute({
            history: options.history,
            admit: async (req, res) => (await admit(req, res)) !== undefined,
            log,
          }),
        ],
      ]),
    ],
  ]);

  const ui = createUiRoute();
  const uiMethods = new Map<string, Handler>([
    ["GET", ui],
    ["HEAD", ui],
  ]);

  const failed = (error: unknown, path: string, res: AnyResponse): void => {
    log.error({ err: error, path }, "http route failed");
    if (!res.headersSent) sendJson(res, 500, { detail: "Internal server error" });
    else res.end();
  };

  return (req, res) => {
    const path = pathOf(req);
    const methods =
      routes.get(path) ??
      admin.match(path) ??
      (path === "/ui" || path.startsWith(UI_PATH) ? uiMethods : undefined);
    if (methods === undefined) return sendJson(res, 404, { detail: "Not Found" });
    const handler = methods.get(req.method ?? "GET");
    if (handler === undefined) {
      return sendJson(
        res,
        405,
        { detail: "Method Not Allowed" },
        { allow: [...methods.keys()].join(", ") },
      );
    }
    if (handler !== postMetrics) req.resume(); // drain any body so the connection stays usable
    try {
      Promise.resolve(handler(req, res)).catch((error: unknown) => failed(error, path, res));
    } catch (error) {
      failed(error, path, res);
    }
  };
}
