import { ConnectError } from "@connectrpc/connect";
import type { Principal } from "../auth/principal.js";
import { errors } from "../errors.js";
import { RetentionOutOfRangeError, UnknownTableError } from "../storage/retention.js";
import { StorageError } from "../storage/storage-error.js";

/** Refuses a principal without the admin scope (docs/legacy-contract.md W10: the Python service let any key in). */
export function requireAdmin(principal: Principal | undefined): void {
  if (principal?.scope !== "admin") throw errors.adminRequired();
}

/**
 * The answer for a failed admin operation: an unknown table is NOT_FOUND and a
 * too-short retention INVALID_ARGUMENT (both before any SQL runs), a storage
 * failure UNAVAILABLE or INTERNAL, anything else INTERNAL with the detail
 * logged only (docs/legacy-contract.md W17: the Python service echoed exception text, or a 200).
 */
export function adminErrorOf(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof UnknownTableError) return errors.unknownTable(error.message);
  if (error instanceof RetentionOutOfRangeError) return errors.retentionOutOfRange(error.message);
  if (error instanceof StorageError) {
    // A sweep may have committed batches before storage failed: never say "nothing stored".
    return error.failure === "unavailable"
      ? errors.storageUnavailable(error, "partial")
      : errors.storage(error);
  }
  return errors.internal(error);
}
