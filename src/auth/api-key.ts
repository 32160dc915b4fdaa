import { createHash, randomBytes } from "node:crypto";

/** SHA-256 of a key, as raw bytes. Unsalted, as the contract's `api_keys.key_hash` requires. */
export function digestApiKey(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/** Lowercase hex SHA-256 of a key: the `api_keys.key_hash` column. */
export function hashApiKey(key: string): string {
  return digestApiKey(key).toString("hex");
}

/** Mints a new random key with 256 bits of entropy and a recognisable prefix. */
export function generateApiKey(): string {
  return `mcpm_${randomBytes(32).toString("base64url")}`;
}
