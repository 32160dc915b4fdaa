import { randomBytes } from "node:crypto";

/** A body that is not JSON, located the way FastAPI reports it. */
export interface JsonSyntaxError {
  readonly position: number;
  readonly message: string;
}

const PY_TOKENS = /NaN|-?Infinity/;

/**
 * Parses JSON as Python's `json` module does, which also accepts the tokens
 * `NaN`, `Infinity` and `-Infinity` (contract §2: emitters may send them, and
 * the validator then rejects the value). Plain JSON takes the native fast path.
 */
export function parseLegacyJson(
  text: string,
): { ok: true; value: unknown } | { ok: false; error: JsonSyntaxError } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    if (!PY_TOKENS.test(text)) return { ok: false, error: syntaxError(error) };
  }
  // Replace the tokens outside strings with sentinels no string of the body contains.
  let sentinel = "";
  do sentinel = `\u0000py-${randomBytes(6).toString("hex")}-`;
  while (text.includes(sentinel));
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (inString) {
      out += c;
      if (c === "\\") out += text[++i] ?? "";
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      continue;
    }
    const token = /^(NaN|-Infinity|Infinity)/.exec(text.slice(i, i + 9))?.[1];
    if (token) {
      out += JSON.stringify(sentinel + token);
      i += token.length - 1;
      continue;
    }
    out += c;
  }
  const values = new Map([
    ["NaN", Number.NaN],
    ["Infinity", Infinity],
    ["-Infinity", -Infinity],
  ]);
  try {
    const value: unknown = JSON.parse(out, (key, v: unknown) => {
      // A token where a key belongs is not JSON to Python either.
      if (key.startsWith(sentinel)) throw new SyntaxError("NaN or Infinity as an object key");
      return typeof v === "string" && v.startsWith(sentinel)
        ? values.get(v.slice(sentinel.length))
        : v;
    });
    return { ok: true, value };
  } catch (error) {
    return { ok: false, error: syntaxError(error) };
  }
}

function syntaxError(error: unknown): JsonSyntaxError {
  const message = error instanceof Error ? error.message : String(error);
  const at = /position (\d+)/.exec(message)?.[1];
  return { position: at === undefined ? 0 : Number(at), message: "JSON decode error" };
}
