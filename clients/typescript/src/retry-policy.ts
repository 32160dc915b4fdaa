import { Code, type ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";

/** How the client retries a batch the server could not take. */
export interface RetryOptions {
  /** The first backoff, before jitter. Default 200 ms. */
  initialBackoffMillis?: number | undefined;
  /** The longest backoff, before jitter. Default 30 s. */
  maxBackoffMillis?: number | undefined;
  /**
   * How long one batch keeps being retried before it is given up (counted in
   * `failed`). Default 5 minutes: long enough to ride out a restart or a
   * rate-limit window, short enough that a dead endpoint does not pin memory.
   */
  maxRetryElapsedMillis?: number | undefined;
}

/** What to do with a batch after a failed attempt. */
export type FailureAction =
  | { readonly action: "retry"; readonly delayMillis: number }
  | { readonly action: "reject-invalid"; readonly invalidIndexes: ReadonlySet<number> }
  | { readonly action: "give-up" };

/**
 * Codes after which the same batch may succeed later: the OTLP exporter
 * specification's retryable set (without CANCELLED, which here only ever
 * comes from the client's own close; RESOURCE_EXHAUSTED is decided apart).
 * UNAVAILABLE covers a refused connection, a draining server and a busy or
 * full database; ABORTED a reset connection.
 */
const RETRYABLE: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.Aborted,
]);

const EVENT_PATH = /^events\[(\d+)\]/;

/** Exponential backoff with full jitter that honours the server's retry delay. */
export function createRetryPolicy(options: RetryOptions = {}, random: () => number = Math.random) {
  const initial = options.initialBackoffMillis ?? 200;
  const max = options.maxBackoffMillis ?? 30_000;
  return {
    maxElapsedMillis: options.maxRetryElapsedMillis ?? 300_000,

    /** Decides what happens after `error` on the given attempt (1 for the first failure). */
    decide(error: ConnectError, attempt: number): FailureAction {
      if (error.code === Code.InvalidArgument) {
        return { action: "reject-invalid", invalidIndexes: invalidEventIndexes(error) };
      }
      const serverDelay = serverRetryDelayMillis(error);
      // As the OTLP specification says, RESOURCE_EXHAUSTED is only worth
      // retrying when the server says when (a rate limit sends RetryInfo); a
      // message over the size limit would fail the same way forever.
      const retryable =
        error.code === Code.ResourceExhausted
          ? serverDelay !== undefined
          : RETRYABLE.has(error.code) || refusedStream(error) || connectionLost(error);
      if (!retryable) return { action: "give-up" };
      // Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"):
      // spreads the retries of many emitters that failed together.
      const ceiling = Math.min(max, initial * 2 ** (attempt - 1));
      const jittered = random() * ceiling;
      // The server knows when a token or the storage comes back: never retry
      // sooner, and add a little spread so emitters do not return in lockstep.
      const delayMillis =
        serverDelay === undefined
          ? jittered
          : Math.max(serverDelay + random() * serverDelay * 0.1, jittered);
      return { action: "retry", delayMillis };
    },
  };
}

/** A retry policy built by `createRetryPolicy`. */
export type RetryPolicy = ReturnType<typeof createRetryPolicy>;

/**
 * The server's retry delay: `google.rpc.RetryInfo` when present, else the
 * `retry-after` header (seconds) that the service also sends.
 */
export function serverRetryDelayMillis(error: ConnectError): number | undefined {
  const [info] = error.findDetails(RetryInfoSchema);
  if (info?.retryDelay) {
    return Number(info.retryDelay.seconds) * 1000 + info.retryDelay.nanos / 1e6;
  }
  const header = error.metadata.get("retry-after");
  const seconds = header === null ? Number.NaN : Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

/** Whether `error` or one of the first links of its cause chain (a cyclic chain ends too) matches. */
function causedBy(
  error: ConnectError,
  matches: (reason: Error, code: unknown) => boolean,
): boolean {
  let reason: unknown = error;
  for (let depth = 0; depth < 5 && reason instanceof Error; depth++) {
    if (matches(reason, (reason as { code?: unknown }).code)) return true;
    reason = reason.cause;
  }
  return false;
}

/** Socket errors of a connection the server closed or reset under a request. */
const LOST_CONNECTION_CODES = new Set<unknown>(["EPIPE", "ECONNRESET", "ECONNABORTED"]);

/**
 * Whether the connection was lost under the request (connect-es reports a
 * broken pipe as INTERNAL "write EPIPE"): a server restarting closes its idle
 * keep-alive connections while a client may be writing on one. The batch may
 * or may not have arrived; its batch id makes sending it again safe (the
 * service answers a retry from the first commit, never storing it twice).
 */
function connectionLost(error: ConnectError): boolean {
  return causedBy(
    error,
    (reason, code) =>
      LOST_CONNECTION_CODES.has(code) ||
      /\b(EPIPE|ECONNRESET)\b|socket hang up/.test(reason.message),
  );
}

/**
 * Whether the server never processed the stream: refused (opened after its
 * GOAWAY, RFC 9113 §8.7) or never started on a session already going away.
 * Node reports these as ERR_HTTP2_STREAM_ERROR and ERR_HTTP2_GOAWAY_SESSION,
 * which connect-node maps to INTERNAL rather than UNAVAILABLE.
 */
function refusedStream(error: ConnectError): boolean {
  return causedBy(
    error,
    (reason, code) =>
      reason.message.includes("REFUSED_STREAM") || code === "ERR_HTTP2_GOAWAY_SESSION",
  );
}

/**
 * Which events of a rejected batch were invalid, from the
 * `google.rpc.BadRequest` field paths (`events[3].duration_ms`). Empty when a
 * violation concerns the batch itself (its service name, say): then no event
 * can be saved by resending the others.
 */
export function invalidEventIndexes(error: ConnectError): ReadonlySet<number> {
  const indexes = new Set<number>();
  for (const detail of error.findDetails(BadRequestSchema)) {
    for (const violation of detail.fieldViolations) {
      const match = EVENT_PATH.exec(violation.field);
      if (!match) return new Set();
      indexes.add(Number(match[1]));
    }
  }
  return indexes;
}
