import { randomFillSync } from "node:crypto";

/**
 * A new batch id: a UUIDv7 (RFC 9562), 48 bits of Unix milliseconds then 74
 * random bits. Time-ordered, so the service's index of batch ids takes each
 * new one at its right edge instead of at a random page.
 */
export function newBatchId(nowMillis = Date.now()): string {
  const bytes = randomFillSync(new Uint8Array(16));
  let ms = nowMillis;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x70; // version 7
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // variant 10
  const hex = Buffer.from(bytes).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
