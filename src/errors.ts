import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "../gen/google/rpc/error_details_pb.js";
import { rateLimitFields } from "./ratelimit/rate-limit-headers.js";
import type { StorageError } from "./storage/storage-error.js";

/** The domain of every `google.rpc.ErrorInfo` this service sends. */
export const ERROR_DOMAIN = "metrics.mcp";

/** One invalid field of a request: its path (e.g. `events[1].value`) and what is wrong. */
export interface Violation {
  readonly field: string;
  readonly description: string;
}

/** HTTP status for each Connect code the catalog uses, as the Connect protocol maps them. */
const HTTP_STATUS: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.ResourceExhausted]: 429,
  [Code.Unavailable]: 503,
};

/** A catalog error as is; anything else becomes INTERNAL (its detail is logged by the caller). */
export function asConnectError(error: unknown): ConnectError {
  return error instanceof ConnectError ? error : errors.internal(error);
}

/**
 * Why an error was sent, in one lowercase word: its `ErrorInfo` reason
 * (`rate_limited`, `api_key_invalid`, …), else its code. Read from the
 * details as made, without decoding them.
 */
export function refusalReason(error: ConnectError): string {
  for (const detail of error.details) {
    if ("desc" in detail && detail.desc.typeName === ErrorInfoSchema.typeName) {
      const reason = (detail.value as { reason?: unknown }).reason;
      if (typeof reason === "string") return reason.toLowerCase();
    }
  }
  return Code[error.code].replace(/(?<=[a-z])(?=[A-Z])/g, "_").toLowerCase();
}

/**
 * The code name (`ok`, `invalid_argument`, …, as Connect writes codes) an
 * HTTP status of the JSON routes stands for, so that the request counter
 * speaks one vocabulary on every ingress: the code this service's errors
 * carry for that status (408, a body too slow, is `resource_exhausted` like
 * a message too slow on the RPCs; 413 and 415 as Connect answers them).
 */
export function codeNameOfHttpStatus(status: number): string {
  if (status >= 200 && status < 300) return "ok";
  return HTTP_CODE_NAMES[status] ?? (status >= 500 ? "internal" : "unknown");
}

const HTTP_CODE_NAMES: Readonly<Record<number, string>> = {
  400: "invalid_argument",
  401: "unauthenticated",
  403: "permission_denied",
  404: "not_found",
  405: "unimplemented",
  408: "resource_exhausted",
  409: "already_exists",
  413: "resource_exhausted",
  415: "unimplemented",
  422: "invalid_argument",
  429: "resource_exhausted",
  503: "unavailable",
};

/** The HTTP status that stands for a Connect code (500 for any other). */
export function httpStatusOf(code: Code): number {
  return HTTP_STATUS[code] ?? 500;
}

function errorInfo(reason: string) {
  return { desc: ErrorInfoSchema, value: { reason, domain: ERROR_DOMAIN } };
}

function retryInfo(seconds: number) {
  const whole = Math.floor(seconds);
  return {
    desc: RetryInfoSchema,
    value: { retryDelay: { seconds: BigInt(whole), nanos: Math.round((seconds - whole) * 1e9) } },
  };
}

/** What a client is told of a request storage could not take, by what is known of it. */
const STORAGE_UNAVAILABLE_MESSAGES = {
  nothing: "storage is temporarily unavailable; nothing of this request was stored, retry later",
  partial:
    "storage is temporarily unavailable; the operation may have completed in part, retry later",
  unknown:
    "storage did not answer in time; this request may have been stored: retry it with the same batch id (or Idempotency-Key), which is never stored twice",
} as const;

/** How many violations the error message itself lists. */
const MESSAGE_VIOLATIONS = 10;

/**
 * How many violations the `google.rpc.BadRequest` detail carries. Over gRPC the
 * details travel in one trailer, and nghttp2 refuses header blocks over 64 KiB
 * (the stream would be reset instead of answered): 100 violations stay far below.
 */
export const DETAIL_VIOLATIONS = 100;

/**
 * A catalog error: a client's mistake or a refusal. It carries no stack trace:
 * these errors are answered, never logged with their stack (only INTERNAL
 * keeps one), and capturing it was about a tenth of a refused request's CPU
 * (V8 walks the stack for every `new Error`, bench/ingest/rejections.ts).
 */
function refusal(...args: ConstructorParameters<typeof ConnectError>): ConnectError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new ConnectError(...args);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * The error catalog: every error this service sends to a client is made here,
 * with a stable reason (`google.rpc.ErrorInfo`), a Connect code (hence an HTTP
 * status) and a message that is safe to show. Internal causes are kept on
 * `cause` for the log and never reach the client.
 */
export const errors = {
  /** No `x-api-key` header, or an empty one (docs/legacy-contract.md §1, step 1). */
  apiKeyRequired: () =>
    refusal("API key required in X-API-Key header", Code.Unauthenticated, undefined, [
      errorInfo("API_KEY_REQUIRED"),
    ]),

  /** The key matches no stored key (docs/legacy-contract.md §1, step 2). */
  invalidApiKey: () =>
    refusal("Invalid API key", Code.Unauthenticated, undefined, [errorInfo("API_KEY_INVALID")]),

  /** The key exists but is deactivated (docs/legacy-contract.md §1, step 3). */
  inactiveApiKey: () =>
    refusal("API key is inactive", Code.Unauthenticated, undefined, [
      errorInfo("API_KEY_INACTIVE"),
    ]),

  /**
   * Too many failed authentications from the caller's address (docs/legacy-contract.md W14): every
   * request from it is refused until its bucket refills.
   */
  authThrottled: (retryAfterSeconds: number) =>
    refusal(
      "Too many failed authentication attempts from this address; retry later",
      Code.ResourceExhausted,
      { "retry-after": String(Math.max(1, Math.ceil(retryAfterSeconds))) },
      [errorInfo("AUTH_THROTTLED"), retryInfo(retryAfterSeconds)],
    ),

  /** The key's expiry (from `keys create --expires` or a rotation's grace) has passed. */
  expiredApiKey: () =>
    refusal("API key has expired", Code.Unauthenticated, undefined, [errorInfo("API_KEY_EXPIRED")]),

  /**
   * The key's token bucket is empty (docs/legacy-contract.md §1, step 4). Carries the legacy
   * headers and a `google.rpc.RetryInfo` with the real time to the next token
   * (the Python service always said 60 s, docs/legacy-contract.md W23).
   */
  rateLimited: (limitPerMinute: number, retryAfterSeconds: number) =>
    refusal(
      `Rate limit exceeded. Limit: ${limitPerMinute} requests/minute`,
      Code.ResourceExhausted,
      {
        "retry-after": String(Math.max(1, Math.ceil(retryAfterSeconds))),
        "x-ratelimit-limit": String(limitPerMinute),
        "x-ratelimit-remaining": "0",
        ...rateLimitFields(limitPerMinute, 0, retryAfterSeconds),
      },
      [errorInfo("RATE_LIMITED"), retryInfo(retryAfterSeconds)],
    ),

  /**
   * A batch failed validation; nothing of it was stored. The details list the
   * first {@link DETAIL_VIOLATIONS} violations; `total` counts them all.
   */
  invalidBatch: (violations: readonly Violation[], total = violations.length) => {
    const shown = violations
      .slice(0, MESSAGE_VIOLATIONS)
      .map((v) => `${v.field}: ${v.description}`);
    const more = total - shown.length;
    const message = `invalid batch: ${shown.join("; ")}${more > 0 ? `; and ${more} more` : ""}`;
    const fieldViolations = violations
      .slice(0, DETAIL_VIOLATIONS)
      .map((v) => ({ field: v.field, description: v.description }));
    return refusal(message, Code.InvalidArgument, undefined, [
      errorInfo("INVALID_BATCH"),
      { desc: BadRequestSchema, value: create(BadRequestSchema, { fieldViolations }) },
    ]);
  },

  /** An admin operation with a key that lacks the admin scope (docs/legacy-contract.md W10). */
  adminRequired: () =>
    refusal(
      "Admin scope required: use an admin API key (METRICS_ADMIN_API_KEY)",
      Code.PermissionDenied,
      undefined,
      [errorInfo("ADMIN_SCOPE_REQUIRED")],
    ),

  /**
   * A query (`QueryService`, `GET /export`) with an ingest key: reading the
   * history needs the read or the admin scope (docs/security.md#scopes-and-service-binding).
   */
  readRequired: () =>
    refusal(
      "this API key has the ingest scope: querying needs a key with the read or admin scope",
      Code.PermissionDenied,
      undefined,
      [errorInfo("READ_SCOPE_REQUIRED")],
    ),

  /**
   * Anything but a query with a read key: it may not send events nor run
   * admin operations (docs/security.md#scopes-and-service-binding).
   */
  readOnlyKey: () =>
    refusal(
      "this API key has the read scope: it may only query (QueryService, GET /export)",
      Code.PermissionDenied,
      undefined,
      [errorInfo("READ_ONLY_KEY")],
    ),

  /**
   * An ingest key reported events as a service other than its own (docs/legacy-contract.md W15).
   * Nothing of the batch was stored.
   */
  serviceMismatch: (reported: string, bound: string) => {
    const description = `this API key belongs to service "${bound}" and cannot report as "${reported}"`;
    return refusal(`service: ${description}`, Code.PermissionDenied, undefined, [
      errorInfo("SERVICE_MISMATCH"),
      {
        desc: BadRequestSchema,
        value: create(BadRequestSchema, { fieldViolations: [{ field: "service", description }] }),
      },
    ]);
  },

  /**
   * A batch id already committed within the idempotency window for a batch
   * with other content: not a retry of it. Nothing was stored.
   */
  batchIdReused: (batchId: string, committed: number) => {
    const description = `batch id "${batchId}" was already used for a different batch (of ${committed} events); use a new id for a new batch`;
    return refusal(`batch_id: ${description}`, Code.AlreadyExists, undefined, [
      errorInfo("BATCH_ID_REUSED"),
      {
        desc: BadRequestSchema,
        value: create(BadRequestSchema, { fieldViolations: [{ field: "batch_id", description }] }),
      },
    ]);
  },

  /**
   * A header or query parameter given more than once, where the first and the
   * last could decide differently (an API key, a dry run): refused rather
   * than guessed. `field` is named as the client wrote it.
   */
  ambiguous: (kind: "header" | "query parameter", field: string, times: number) => {
    const description = `the ${kind} is given ${times} times; give it once`;
    return refusal(`${field}: ${description}`, Code.InvalidArgument, undefined, [
      errorInfo("AMBIGUOUS_REQUEST"),
      {
        desc: BadRequestSchema,
        value: create(BadRequestSchema, { fieldViolations: [{ field, description }] }),
      },
    ]);
  },

  /**
   * A request message (or a Connect unary body) that arrived too slowly: not
   * whole within its deadline, or under the minimum data rate (a client
   * dripping it to hold its slot). The call ends; nothing of that message is
   * stored. `lateness` says which, e.g. "a … message took more than 30 s to arrive".
   */
  messageTooSlow: (lateness: string) =>
    refusal(`${lateness}; send each message whole`, Code.ResourceExhausted, undefined, [
      errorInfo("MESSAGE_TOO_SLOW"),
    ]),

  /** A request message whose bytes cannot be decoded (connect-es calls it INTERNAL; see http/decode-errors.ts). */
  malformedMessage: (message: string) =>
    refusal(message, Code.InvalidArgument, undefined, [errorInfo("MALFORMED_MESSAGE")]),

  /** A gRPC health check for a service this server does not serve. */
  unknownHealthService: (service: string) =>
    refusal(`unknown service: ${JSON.stringify(service)}`, Code.NotFound, undefined, [
      errorInfo("UNKNOWN_SERVICE"),
    ]),

  /** A table outside the retention allow-list; nothing was run for it (docs/legacy-contract.md W11). */
  unknownTable: (message: string) =>
    refusal(message, Code.NotFound, undefined, [errorInfo("UNKNOWN_TABLE")]),

  /** A retention outside its bounds; nothing was changed. */
  retentionOutOfRange: (message: string) =>
    refusal(message, Code.InvalidArgument, undefined, [
      errorInfo("RETENTION_OUT_OF_RANGE"),
      {
        desc: BadRequestSchema,
        value: create(BadRequestSchema, {
          fieldViolations: [{ field: "retention_days", description: message }],
        }),
      },
    ]),

  /**
   * Storage could not commit right now (busy, full, read-only, I/O, or it did
   * not answer in time); the client may retry. `stored` says what is known of
   * the request: `nothing` of it was stored; an admin operation's earlier
   * batches committed (`partial`); or a write whose answer never came may
   * have committed (`unknown`: a retry with the same batch id is answered
   * from the first, never stored twice).
   */
  storageUnavailable: (cause: unknown, stored: "nothing" | "partial" | "unknown" = "nothing") =>
    refusal(
      STORAGE_UNAVAILABLE_MESSAGES[stored],
      Code.Unavailable,
      { "retry-after": "1" },
      [errorInfo("STORAGE_UNAVAILABLE"), retryInfo(1)],
      cause,
    ),

  /**
   * The key already has its fair share of the requests in flight while the
   * other keys need the rest: refused before its body is read; retry when
   * one of its requests ends. Nobody else is refused for it.
   */
  keyShareExceeded: (share: number) =>
    refusal(
      `this API key already has ${share} requests in flight, its share of the service while others wait; retry shortly`,
      Code.ResourceExhausted,
      { "retry-after": "1" },
      [errorInfo("KEY_SHARE_EXCEEDED"), retryInfo(1)],
    ),

  /**
   * Too much work is queued (requests in flight, or rows waiting for a
   * commit): refused before anything is buffered or stored; retry shortly.
   */
  overloaded: () =>
    refusal(
      "the service is overloaded; nothing of this request was stored, retry later",
      Code.Unavailable,
      { "retry-after": "1" },
      [errorInfo("OVERLOADED"), retryInfo(1)],
    ),

  /** The service is draining for shutdown; the client should retry elsewhere or later. */
  shuttingDown: () =>
    refusal("the service is shutting down; retry later", Code.Unavailable, { "retry-after": "1" }, [
      errorInfo("SHUTTING_DOWN"),
      retryInfo(1),
    ]),

  /** A failed storage operation, by its kind: retryable, shutting down, or internal. */
  storage: (error: StorageError): ConnectError => {
    switch (error.failure) {
      case "unavailable":
        return errors.storageUnavailable(error, error.uncertain ? "unknown" : "nothing");
      case "closed":
        return errors.shuttingDown();
      case "internal":
        return errors.internal(error);
    }
  },

  /** Any unexpected failure; the detail goes to the log only. */
  internal: (cause: unknown) =>
    new ConnectError("internal error", Code.Internal, undefined, [errorInfo("INTERNAL")], cause),
} as const;
