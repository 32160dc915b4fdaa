import { SqliteError } from "better-sqlite3";
import { StorageError } from "../storage-error.js";

/** SQLite result codes that pass by themselves: busy, locked, full, read-only, I/O, can't open, protocol. */
const TRANSIENT = /^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN|PROTOCOL)/;

/**
 * Whether a SQLite failure may be the volume running out of room: `SQLITE_FULL`
 * (SQLite's answer to ENOSPC and short writes) or `SQLITE_IOERR_WRITE` (how a
 * quota, EDQUOT, comes through).
 */
export function sqliteOutOfSpace(code: string): boolean {
  return code.startsWith("SQLITE_FULL") || code === "SQLITE_IOERR_WRITE";
}

/** SQLite's result code of an error (or of the one a storage error wraps), empty when it is not SQLite's. */
export function sqliteCode(cause: unknown): string {
  if (cause instanceof StorageError) return sqliteCode(cause.cause);
  return cause instanceof SqliteError ? cause.code : "";
}

/** A SQLite result code's short name for readiness: `full`, `read-only`, or the code. */
function problemOf(code: string): string {
  if (code.startsWith("SQLITE_FULL")) return "full";
  if (code.startsWith("SQLITE_READONLY")) return "read-only";
  return code;
}

/** Classifies an error thrown by better-sqlite3 (or passes a storage error through). */
export function sqliteStorageError(cause: unknown): StorageError {
  if (cause instanceof StorageError) return cause;
  const code = sqliteCode(cause);
  if (code === "") return StorageError.from(cause);
  const transient = TRANSIENT.test(code);
  return new StorageError(
    transient ? "unavailable" : "internal",
    // SQLite's own words too ("database is locked"): the log and a failed start show them.
    `storage ${transient ? "unavailable" : "failure"}: ${code}: ${(cause as Error).message}`,
    { cause, busy: /^SQLITE_(BUSY|LOCKED)/.test(code), code, problem: problemOf(code) },
  );
}
