import { inspect } from "node:util";
import { type DiagLogger, DiagLogLevel, diag } from "@opentelemetry/api";
import type { OtelLogLevel } from "../config.js";
import type { Logger } from "../log.js";

const DIAG_LEVELS: Readonly<Record<OtelLogLevel, DiagLogLevel>> = {
  none: DiagLogLevel.NONE,
  error: DiagLogLevel.ERROR,
  warn: DiagLogLevel.WARN,
  info: DiagLogLevel.INFO,
  debug: DiagLogLevel.DEBUG,
  verbose: DiagLogLevel.VERBOSE,
  all: DiagLogLevel.ALL,
};

/** A diagnostic message's arguments as a log field: errors by their message, never their stack. */
function detail(args: unknown[]): { detail?: string } {
  if (args.length === 0) return {};
  // inspect, not JSON.stringify: the SDK passes circular objects (instruments) and BigInts.
  const text = args
    .map((a) =>
      a instanceof Error
        ? a.message
        : typeof a === "string"
          ? a
          : inspect(a, { depth: 1, breakLength: Number.POSITIVE_INFINITY }),
    )
    .join(" ");
  return { detail: text.slice(0, 500) };
}

/** How long the same diagnostic is kept from repeating: an exporter failing every 200 ms says so once. */
const REPEAT_MILLIS = 60_000;

/** Distinct diagnostics remembered for {@link REPEAT_MILLIS}; past it the oldest are forgotten. */
const MAX_REMEMBERED = 100;

/**
 * The reader's own report of a failed export (as an error): the service
 * reports each failure itself, counted and with its endpoint (telemetry.ts),
 * so this one goes to debug.
 */
const EXPORT_FAILED = "metrics export failed";

/**
 * Sends the OpenTelemetry SDK's own diagnostics (an exporter that cannot
 * connect, a collection that failed, a misconfigured view) to the service's
 * log at `level` (`OTEL_LOG_LEVEL`), under `component: "opentelemetry"`;
 * without it the SDK says nothing at all, even at debug. An error or warning
 * repeated within a minute is written once.
 */
export function routeSdkDiagnostics(log: Logger, level: OtelLogLevel): void {
  const sdk = log.child({ component: "opentelemetry" });
  const seen = new Map<string, number>();
  const fresh = (message: string): boolean => {
    const now = performance.now();
    const last = seen.get(message);
    if (last !== undefined && now - last < REPEAT_MILLIS) return false;
    seen.delete(message);
    if (seen.size >= MAX_REMEMBERED) seen.delete(seen.keys().next().value as string);
    seen.set(message, now);
    return true;
  };
  const logger: DiagLogger = {
    error: (message, ...args) => {
      if (message.includes(EXPORT_FAILED)) sdk.debug(detail(args), message);
      else if (fresh(message)) sdk.error(detail(args), message);
    },
    warn: (message, ...args) => {
      if (fresh(message)) sdk.warn(detail(args), message);
    },
    info: (message, ...args) => sdk.info(detail(args), message),
    debug: (message, ...args) => sdk.debug(detail(args), message),
    verbose: (message, ...args) => sdk.trace(detail(args), message),
  };
  diag.setLogger(logger, { logLevel: DIAG_LEVELS[level], suppressOverrideMessage: true });
}
