import { SqliteError } from "better-sqlite3";

/**
 * Why a write failed: `unavailable` is worth retrying (busy, full, read-only,
 * I/O), `closed` means the store is shutting down, `internal` is anything else.
 */
export type StorageFailure = "unavailable" | "closed" | "internal";

/**
 * The short name of a storage fault as readiness reports it: `full`,
 * `read-only`, or the result code itself (`SQLITE_IOERR_WRITE`, …).
 */
export function storageProblemName(code: string): string {
  if (code.startsWith("SQLITE_FULL")) return "full";
  if (code.startsWith("SQLITE_READONLY")) return "read-only";
  return code;
}

/** A failed storage operation; `cause` keeps the driver's error for the log. */
export class StorageError extends Error {
  override name = "StorageError";
  readonly failure: StorageFailure;
  /** True when another connection held the lock: worth retrying at once, on a timer. */
  readonly busy: boolean;
  constructor(
    failure: StorageFailure,
    message: string,
    options?: { cause: unknown; busy?: boolean },
  ) {
    super(message, options);
    this.failure = failure;
    this.busy = options?.busy ?? false;
  }

  /** Classifies a driver error by its SQLite result code, never by its text. */
  static from(cause: unknown): StorageError {
    if (cause instanceof StorageError) return cause;
    const code = cause instanceof SqliteError ? cause.code : "";
    const transient = /^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN|PROTOCOL)/.test(code);
    return new StorageError(
      transient ? "unavailable" : "internal",
      `storage ${transient ? "unavailable" : "failure"}: ${code || String(cause)}`,
      { cause, busy: /^SQLITE_(BUSY|LOCKED)/.test(code) },
    );
  }
}
