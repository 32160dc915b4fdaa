import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** `YYYY-MM-DDTHH:MM:SS` of a Timestamp, in UTC. */
function utcSeconds(ts: Timestamp): string {
  return new Date(Number(ts.seconds) * 1000).toISOString().slice(0, 19);
}

function micros(ts: Timestamp): string {
  return String(Math.floor(ts.nanos / 1000)).padStart(6, "0");
}

/**
 * Fixed-width ISO 8601 in UTC with microseconds (`2026-11-25T14:16:00.123456Z`),
 * the stored form: text order is time order in the timestamp indexes (fixes
 * W20's mixed formats).
 */
export function formatTimestamp(ts: Timestamp): string {
  return `${utcSeconds(ts)}.${micros(ts)}Z`;
}

/** {@link formatTimestamp} of a millisecond time. */
export function formatMillis(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  return formatTimestamp({ seconds: BigInt(seconds), nanos } as Timestamp);
}

/** Python's `datetime.isoformat()` of an aware UTC time, as the legacy messages print it. */
export function pyIsoFormat(ts: Timestamp): string {
  return `${utcSeconds(ts)}${ts.nanos >= 1000 ? `.${micros(ts)}` : ""}+00:00`;
}
