import { randomBytes } from "node:crypto";

/** A body that is not JSON, located the way FastAPI reports it. */
export interface JsonSyntaxError {
  readonly position: number;
  readonly message: string;
}

const PY_TOKENS = /NaN|-?Infinity/;

/**
 * Parses JSON as Python's `json` module does, which also accepts the tokens
 * `NaN`, `Infinity` and `-Infinity` (docs/legacy-contract.md §2: emitters may send them, and
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
  let value: unknown;
  try {
    value = JSON.parse(out);
  } catch (error) {
    return { ok: false, error: syntaxError(error) };
  }
  return restoreTokens(value, sentinel);
}

const PY_VALUES = new Map([
  ["NaN", Number.NaN],
  ["Infinity", Infinity],
  ["-Infinity", -Infinity],
]);

/**
 * Puts the numbers back where their sentinels stand. It walks the value with
 * its own stack, not recursion (nor a `JSON.parse` reviver, which recurses):
 * a body may nest thousands of levels deep, and the reviver overflowed the
 * stack near 5,000 levels, turning valid JSON into a "JSON decode error".
 */
function restoreTokens(
  root: unknown,
  sentinel: string,
): { ok: true; value: unknown } | { ok: false; error: JsonSyntaxError } {
  const restore = (v: unknown): number | undefined =>
    typeof v === "string" && v.startsWith(sentinel)
      ? PY_VALUES.get(v.slice(sentinel.length))
      : undefined;
  const top = restore(root);
  if (top !== undefined) return { ok: true, value: top };
  const pending: unknown[] = [root];
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    if (typeof node !== "object" || node === null) continue;
    const container = node as Record<string, unknown>;
    for (const key of Object.keys(container)) {
      // A token where a key belongs is not JSON to Python either.
      if (key.startsWith(sentinel)) {
        return { ok: false, error: { position: 0, message: "JSON decode error" } };
      }
      const child = container[key];
      const number = restore(child);
      if (number !== undefined) {
        // Not an assignment: a "__proto__" key must stay an own property.
        Object.defineProperty(container, key, {
          value: number,
          writable: true,
          enumerable: true,
          configurable: true,
        });
      } else if (typeof child === "object" && child !== null) {
        pending.push(child);
      }
    }
  }
  return { ok: true, value: root };
}

function syntaxError(error: unknown): JsonSyntaxError {
  const message = error instanceof Error ? error.message : String(error);
  const at = /position (\d+)/.exec(message)?.[1];
  return { position: at === undefined ? 0 : Number(at), message: "JSON decode error" };
}
