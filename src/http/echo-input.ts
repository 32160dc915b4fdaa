/**
 * How deep an input echoed in a 422 may nest, as the validator bounds
 * dimension and metadata values (docs/legacy-contract.md §2). FastAPI never echoed deeper
 * input: Python's parser stops near 1,000 levels (a 400), while `JSON.parse`
 * takes a 1 MiB body a million levels deep and `JSON.stringify`, which
 * recurses, overflows the stack near 5,000.
 */
export const MAX_ECHO_DEPTH = 32;

/** What stands for the part of an echoed input nested deeper than {@link MAX_ECHO_DEPTH}. */
export const ELIDED = "<nested too deeply to show>";

function nestsDeeper(value: unknown, depth: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (depth === 0) return true;
  for (const child of Object.values(value)) {
    if (nestsDeeper(child, depth - 1)) return true;
  }
  return false;
}

function elide(value: unknown, depth: number): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (depth === 0) return ELIDED;
  if (Array.isArray(value)) return value.map((child: unknown) => elide(child, depth - 1));
  // fromEntries defines its keys, so a "__proto__" key stays a key.
  return Object.fromEntries(
    Object.entries(value).map(([key, child]) => [key, elide(child, depth - 1)]),
  );
}

/**
 * An error's `input` as it can be sent: the value itself, or, when it nests
 * deeper than {@link MAX_ECHO_DEPTH}, a copy cut off there, so that
 * answering a deeply nested body cannot overflow the stack (a 500).
 * Both walks stop at that depth; the copy is made only when needed.
 */
export function echoInput(value: unknown): unknown {
  return nestsDeeper(value, MAX_ECHO_DEPTH) ? elide(value, MAX_ECHO_DEPTH) : value;
}
