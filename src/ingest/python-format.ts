import type { JsonValue } from "@bufbuild/protobuf";

/*
 * The legacy service's validation messages and length limits are defined in
 * terms of Python's str(), repr() and json.dumps() (docs/legacy-contract.md §2). These helpers
 * reproduce them for the values JSON and protobuf can carry.
 */

/** Python's `repr(float(x))`: `5.0`, `1e+16`, `nan`, `-inf`. */
export function pyFloat(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (Object.is(x, -0)) return "-0.0";
  // Shortest round-trip digits, then Python's layout: positional for
  // exponents in [-4, 16), scientific otherwise.
  const [mantissa = "0", exp = "0"] = x.toExponential().split("e");
  const exponent = Number(exp);
  if (exponent < -4 || exponent >= 16) {
    const sign = exponent < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  const text = String(x);
  return text.includes(".") ? text : `${text}.0`;
}

/** Python's `len(str)`: counts code points, not UTF-16 units. */
export function pyLen(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function pyQuote(text: string): string {
  return `'${text.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/** Python's `str(value)` for a value decoded from JSON (`True`, `None`, `{'a': 1}`). */
export function pyStr(value: JsonValue, nested = false): string {
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : pyFloat(value);
  if (typeof value === "string") return nested ? pyQuote(value) : value;
  if (Array.isArray(value)) return `[${value.map((v) => pyStr(v, true)).join(", ")}]`;
  const entries = Object.entries(value).map(([k, v]) => `${pyQuote(k)}: ${pyStr(v, true)}`);
  return `{${entries.join(", ")}}`;
}

/** Python's `json.dumps(value)` with its defaults (`", "`/`": "` separators, ASCII-only). */
export function pyJsonDumps(value: JsonValue): string {
  if (value === null || typeof value !== "object") {
    const text = JSON.stringify(value) ?? "null";
    return typeof value === "string"
      ? text.replace(
          /[\u007f-\uffff]/g,
          (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
        )
      : text;
  }
  if (Array.isArray(value)) return `[${value.map(pyJsonDumps).join(", ")}]`;
  const entries = Object.entries(value).map(([k, v]) => `${pyJsonDumps(k)}: ${pyJsonDumps(v)}`);
  return `{${entries.join(", ")}}`;
}
