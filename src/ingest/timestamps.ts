import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { storedTime } from "../storage/stored-time.js";

/** The stored form of a millisecond time (the format is storage's). */
export { storedTimeOfMillis as formatMillis } from "../storage/stored-time.js";

/** `YYYY-MM-DDTHH:MM:SS` of a Timestamp, in UTC. */
function utcSeconds(ts: Timestamp): string {
  return new Date(Number(ts.seconds) * 1000).toISOString().slice(0, 19);
}

function micros(ts: Timestamp): string {
  return String(Math.floor(ts.nanos / 1000)).padStart(6, "0");
}

/** The stored form of a Timestamp (see `storedTime`). */
export function formatTimestamp(ts: Timestamp): string {
  return storedTime(Number(ts.seconds), Math.floor(ts.nanos / 1000));
}

/** Python's `datetime.isoformat()` of an aware UTC time, as the legacy messages print it. */
export function pyIsoFormat(ts: Timestamp): string {
  return `${utcSeconds(ts)}${ts.nanos >= 1000 ? `.${micros(ts)}` : ""}+00:00`;
}
