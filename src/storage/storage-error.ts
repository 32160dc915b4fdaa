import { SqliteError } from "better-sqlite3";

/**
 * Why a write failed: `unavailable` is worth retrying (busy, full, read-only,
 * I/O, the database server unreachable), `closed` means the store is shutting
 * down, `internal` is anything else.
 */
export type StorageFailure = "unavailable" | "closed" | "internal";

/**
 * PostgreSQL SQLSTATEs that pass by themselves: a lost or refused connection
 * (class 08), a server shutting down or starting (57P01-57P03), a statement
 * cancelled by its timeout (57014), a lock not available (55P03), insufficient
 * resources (class 53, 53100 being a full disk), a serialization failure or
 * deadlock (40001, 40P01), a read-only server (25006), an I/O error (58030).
 */
const TRANSIENT_SQLSTATE = /^(08|53|57P0[123]|57014|55P03|40001|40P01|25006|58030)/;

/** The pg driver's own connection failures, which carry no SQLSTATE. */
const PG_CONNECTION_FAILURE =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout)/;

/** Node's socket errors when a database server cannot be reached. */
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);

/**
 * The short name of a storage fault as readiness reports it: `full`,
 * `read-only`, `unreachable` (a database server that does not answer), or the
 * result code itself (`SQLITE_IOERR_WRITE`, a SQLSTATE, …).
 */
export function storageProblemName(code: string): string {
  if (code.startsWith("SQLITE_FULL") || code === "53100") return "full";
  if (code.startsWith("SQLITE_READONLY") || code === "25006") return "read-only";
  if (code.startsWith("08") || code.startsWith("57P0") || SOCKET_CODES.has(code)) {
    return "unreachable";
  }
  return code;
}

/**
 * Whether a SQLite failure may be the volume running out of room: `SQLITE_FULL`
 * (SQLite's answer to ENOSPC and short writes) or `SQLITE_IOERR_WRITE` (how a
 * quota, EDQUOT, comes through).
 */
export function sqliteOutOfSpace(code: string): boolean {
  return code.startsWith("SQLITE_FULL") || code === "SQLITE_IOERR_WRITE";
}

/** The code a driver error carries: SQLite's result code, a SQLSTATE, a socket code, or `connection`. */
export function driverErrorCode(cause: unknown): string {
  if (cause instanceof SqliteError) return cause.code;
  if (!(cause instanceof Error)) return "";
  const code = (cause as { code?: unknown }).code;
  if (typeof code === "string" && code !== "") return code;
  return PG_CONNECTION_FAILURE.test(cause.message) ? "08000" : "";
}

/** A failed storage operation; `cause` keeps the driver's error for the log. */
export class StorageError extends Error {
  override name = "StorageError";
  readonly failure: StorageFailure;
  /** True when another connection held the lock: worth retrying at once, on a timer. */
  readonly busy: boolean;
  /** The driver's code (see {@link driverErrorCode}), empty when there is none. */
  readonly code: string;
  /**
   * True when the write was under way and its answer never came: it may have
   * committed (a retry with its batch id finds it). False when nothing was written.
   */
  readonly uncertain: boolean;
  constructor(
    failure: StorageFailure,
    message: string,
    options?: { cause?: unknown; busy?: boolean; code?: string; uncertain?: boolean },
  ) {
    super(message, options);
    this.failure = failure;
    this.busy = options?.busy ?? false;
    this.code = options?.code ?? "";
    this.uncertain = options?.uncertain ?? false;
  }

  /**
   * Classifies a driver error by its SQLite result code, SQLSTATE or socket
   * code; only the pg driver's own connection failures, which carry no code,
   * are known by their message.
   */
  static from(cause: unknown): StorageError {
    if (cause instanceof StorageError) return cause;
    const code = driverErrorCode(cause);
    const transient =
      /^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN|PROTOCOL)/.test(code) ||
      (!code.startsWith("SQLITE_") && (TRANSIENT_SQLSTATE.test(code) || SOCKET_CODES.has(code)));
    return new StorageError(
      transient ? "unavailable" : "internal",
      `storage ${transient ? "unavailable" : "failure"}: ${code || String(cause)}`,
      { cause, busy: /^SQLITE_(BUSY|LOCKED)/.test(code), code },
    );
  }
}
