import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** A legacy timestamp, parsed: the instant, and how Python's `isoformat()` prints the value. */
export type ParsedTimestamp =
  | { readonly ok: true; readonly timestamp: Timestamp; readonly display: string }
  | { readonly ok: false; readonly type: string; readonly msg: string };

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt _](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/** Unix times beyond ±2e10 are milliseconds, as pydantic reads them. */
const SECONDS_LIMIT = 2e10;

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

function fromEpoch(value: number): ParsedTimestamp {
  if (!Number.isFinite(value)) {
    return {
      ok: false,
      type: "datetime_parsing",
      msg: "Input should be a valid datetime, invalid number",
    };
  }
  const ms = Math.abs(value) > SECONDS_LIMIT ? value : value * 1000;
  const date = new Date(ms);
  if (Number.isNaN(date.getTime()) || date.getUTCFullYear() < 1 || date.getUTCFullYear() > 9999) {
    return {
      ok: false,
      type: "datetime_parsing",
      msg: "Input should be a valid datetime, dates after 9999 are not supported as unix timestamps",
    };
  }
  const seconds = Math.floor(ms / 1000);
  const micros = Math.round((ms - seconds * 1000) * 1000);
  const timestamp = { seconds: BigInt(seconds), nanos: micros * 1000 } as Timestamp;
  const base = date.toISOString().slice(0, 19);
  return { ok: true, timestamp, display: `${base}${micros > 0 ? `.${pad(micros, 6)}` : ""}+00:00` };
}

/**
 * Parses a legacy `timestamp` the way the Python service's pydantic model did
 * (docs/legacy-contract.md §1): an ISO 8601 string (date only, `T`/space separator, optional
 * fraction and zone) or a Unix time in seconds or milliseconds, as a number or
 * a numeric string. A time without a zone is read as UTC (the Python client
 * sends `utcnow().isoformat()`; the Python service read it as local time, docs/legacy-contract.md W20).
 */
export function parseLegacyTimestamp(input: unknown): ParsedTimestamp {
  if (typeof input === "number") return fromEpoch(input);
  if (typeof input !== "string") {
    return { ok: false, type: "datetime_type", msg: "Input should be a valid datetime" };
  }
  const text = input.trim();
  if (/^[+-]?\d+(\.\d+)?$/.test(text)) return fromEpoch(Number(text));
  const m = ISO.exec(text);
  if (m === null) {
    return {
      ok: false,
      type: "datetime_parsing",
      msg: "Input should be a valid datetime, invalid character in date",
    };
  }
  const [, y, mo, d, h = "0", mi = "0", s = "0", fraction = "", zone] = m;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const micros = Number(fraction.slice(0, 6).padEnd(6, "0"));
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    return {
      ok: false,
      type: "datetime_parsing",
      msg: "Input should be a valid datetime, value out of range",
    };
  }
  let offsetMinutes = 0;
  let offsetText = "";
  if (zone !== undefined) {
    if (zone === "Z" || zone === "z") {
      offsetText = "+00:00";
    } else {
      const digits = zone.slice(1).replace(":", "");
      const oh = Number(digits.slice(0, 2));
      const om = Number(digits.slice(2, 4) || "0");
      if (oh > 23 || om > 59) {
        return {
          ok: false,
          type: "datetime_parsing",
          msg: "Input should be a valid datetime, invalid timezone sign",
        };
      }
      offsetMinutes = (zone.startsWith("-") ? -1 : 1) * (oh * 60 + om);
      offsetText = `${zone[0]}${pad(oh)}:${pad(om)}`;
    }
  }
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  date.setUTCFullYear(year);
  const ms = date.getTime() - offsetMinutes * 60_000;
  const seconds = Math.floor(ms / 1000);
  const timestamp = { seconds: BigInt(seconds), nanos: micros * 1000 } as Timestamp;
  const local = `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(hour)}:${pad(minute)}:${pad(second)}`;
  return {
    ok: true,
    timestamp,
    display: `${local}${micros > 0 ? `.${pad(micros, 6)}` : ""}${offsetText}`,
  };
}
