import type { Principal } from "../auth/principal.js";
import type { Logger } from "../log.js";

/** One refused request, or one batch of it rejected, as the ingress saw it. */
export interface Refusal {
  /** `grpc`, `connect`, `grpc-web` or `json`. */
  readonly ingress: string;
  /**
   * Why, in one word: the catalog's `ErrorInfo` reason in lowercase
   * (`api_key_invalid`, `rate_limited`, `invalid_batch`, …) or the JSON
   * route's own (`body_too_large`, `invalid_json`, `invalid_body`).
   */
  readonly reason: string;
  /** The answer: an HTTP status for JSON, a code for RPCs. */
  readonly status: string;
  /** The first error, as the client was told it. */
  readonly error: string;
  /** The key that sent it, when it was a valid one. */
  readonly principal?: Principal | undefined;
  /** The service the batch reported, when it was read. */
  readonly service?: string | undefined;
  /** Events the refusal cost, when a batch was read (0 when none was). */
  readonly events?: number | undefined;
  /** The client's network address: which emitter holds a stale or wrong key. */
  readonly address?: string | undefined;
}

/** Where refusals are reported: logged (rate-limited) and counted. */
export interface RefusalLog {
  refused(refusal: Refusal): void;
}

/** Options of {@link createRefusalLog}. */
export interface RefusalLogOptions {
  readonly log: Logger;
  /** Counts each refusal by the key's service (`_unknown` without a valid key) and reason. */
  readonly count?: (service: string, reason: string) => void;
  /** Least time between two lines for one key and reason (default 10 s). */
  readonly intervalMillis?: number;
  readonly now?: () => number;
}

/** Reasons that are not the sender's doing and are logged elsewhere, or routine. */
const QUIET_REASONS = new Set(["internal", "shutting_down"]);

/** Keys and reasons whose last line is remembered; past it the oldest is forgotten. */
const MAX_TRACKED = 1000;

/** `text`, cut to `max` characters: what a client sent never makes a log line long. */
const cut = (text: string, max: number): string =>
  text.length > max ? `${text.slice(0, max)}…` : text;

/** The service label of a refusal without a valid key. */
export const UNKNOWN_SERVICE = "_unknown";

/**
 * Makes refusals loud without letting a flood flood the log: each is counted,
 * and logged at warn with the service, the key's id, the reason and the
 * first error, at most once per key and reason per interval. The next line
 * after a quiet interval says how many were left out (`suppressed`). A
 * missing or wrong key has no id: those share one line per reason.
 */
export function createRefusalLog(options: RefusalLogOptions): RefusalLog {
  const interval = options.intervalMillis ?? 10_000;
  const now = options.now ?? Date.now;
  /** Per key and reason: when its last line was written, and how many were left out since. */
  const last = new Map<string, { at: number; suppressed: number }>();
  return {
    refused(refusal) {
      const keyService = refusal.principal?.service ?? UNKNOWN_SERVICE;
      options.count?.(keyService, refusal.reason);
      if (QUIET_REASONS.has(refusal.reason)) return;
      const track = `${refusal.principal?.publicId ?? UNKNOWN_SERVICE}\n${refusal.reason}`;
      const at = now();
      const seen = last.get(track);
      if (seen !== undefined && at - seen.at < interval) {
        seen.suppressed += 1;
        return;
      }
      last.delete(track);
      if (last.size >= MAX_TRACKED) last.delete(last.keys().next().value as string);
      last.set(track, { at, suppressed: 0 });
      options.log.warn(
        {
          ingress: refusal.ingress,
          address: refusal.address,
          status: refusal.status,
          reason: refusal.reason,
          keyId: refusal.principal?.publicId,
          keyService: refusal.principal?.service,
          service: refusal.service === undefined ? undefined : cut(refusal.service, 100),
          events: refusal.events,
          error: cut(refusal.error, 500),
          ...(seen && seen.suppressed > 0 ? { suppressed: seen.suppressed } : {}),
        },
        "request refused",
      );
    },
  };
}
