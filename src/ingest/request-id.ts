import { randomBytes } from "node:crypto";

/** A new request id, `req_` and 16 hex digits, as the Python service made them (docs/legacy-contract.md §1). */
export function newRequestId(): string {
  return `req_${randomBytes(8).toString("hex")}`;
}
