import { createHash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";

/** SHA-256 of a key, as raw bytes. Unsalted, as the contract's `api_keys.key_hash` requires. */
export function digestApiKey(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/** Lowercase hex SHA-256 of a key: the `api_keys.key_hash` column. */
export function hashApiKey(key: string): string {
  return digestApiKey(key).toString("hex");
}

const PREFIX = "mcpm_";
/** `mcpm_`, 43 base64url characters (256 random bits), 8 hex digits of CRC-32. */
const GENERATED_LENGTH = PREFIX.length + 43 + 8;

function checksumOf(body: string): string {
  return crc32(body).toString(16).padStart(8, "0");
}

/**
 * Mints a new key: a recognisable prefix (secret scanners and people can tell
 * what leaked), 256 bits of entropy, and a CRC-32 checksum so that a mistyped
 * key is refused without a lookup.
 */
export function generateApiKey(): string {
  const body = randomBytes(32).toString("base64url");
  return `${PREFIX}${body}${checksumOf(body)}`;
}

/**
 * False only for a key shaped like a generated one whose checksum does not
 * match. Keys from the environment (any text) and keys generated before the
 * checksum existed pass, and are checked against the store as usual.
 */
export function checksumPlausible(key: string): boolean {
  if (!key.startsWith(PREFIX) || key.length !== GENERATED_LENGTH) return true;
  const body = key.slice(PREFIX.length, -8);
  return checksumOf(body) === key.slice(-8);
}
