import { pgConnectionFailure } from "../../library-behaviour.js";
import { StorageError } from "../storage-error.js";

/**
 * PostgreSQL SQLSTATEs that pass by themselves: a lost or refused connection
 * (class 08), a server shutting down or starting (57P01-57P03), a statement
 * cancelled by its timeout (57014), a lock not available (55P03), insufficient
 * resources (class 53, 53100 being a full disk), a serialization failure or
 * deadlock (40001, 40P01), a read-only server (25006), an I/O error (58030).
 */
const TRANSIENT_SQLSTATE = /^(08|53|57P0[123]|57014|55P03|40001|40P01|25006|58030)/;

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

/** The code a pg error carries: a SQLSTATE, a socket code, `08000` for the driver's own connection failures, or empty. */
export function pgErrorCode(cause: unknown): string {
  if (!(cause instanceof Error)) return "";
  const code = (cause as { code?: unknown }).code;
  if (typeof code === "string" && code !== "") return code;
  return pgConnectionFailure(cause.message) ? "08000" : "";
}

/** A code's short name for readiness: `full`, `read-only`, `unreachable`, or the code. */
function problemOf(code: string): string {
  if (code === "53100") return "full";
  if (code === "25006") return "read-only";
  if (code.startsWith("08") || code.startsWith("57P0") || SOCKET_CODES.has(code)) {
    return "unreachable";
  }
  return code;
}

/**
 * Classifies an error of the pg driver by its SQLSTATE or socket code; only
 * the driver's own connection failures, which carry no code, are known by
 * their message (or passes a storage error through).
 */
export function pgStorageError(cause: unknown): StorageError {
  if (cause instanceof StorageError) return cause;
  const code = pgErrorCode(cause);
  const transient = TRANSIENT_SQLSTATE.test(code) || SOCKET_CODES.has(code);
  return new StorageError(
    transient ? "unavailable" : "internal",
    `storage ${transient ? "unavailable" : "failure"}: ${code || String(cause)}`,
    { cause, code, ...(code ? { problem: problemOf(code) } : {}) },
  );
}
