import fc from "fast-check";
import { expect } from "vitest";
import type { TestDb } from "../support/database.js";

/**
 * Runs of each property: `FUZZ_RUNS` for the long fuzz (`npm run test:fuzz`),
 * `quick` for `npm test`. Properties weigh their runs by what one costs.
 */
export function fuzzRuns(quick: number, weight = 1): number {
  const configured = Number(process.env.FUZZ_RUNS);
  return Number.isInteger(configured) && configured > 0
    ? Math.max(1, Math.round(configured * weight))
    : quick;
}

/**
 * fast-check's parameters for a property: its runs, and the seed and path of
 * a failure to replay (`FUZZ_SEED`, `FUZZ_PATH`; fast-check prints both when
 * a property fails).
 */
export function fuzzParams<T>(runs: number): fc.Parameters<T> {
  const seed = Number(process.env.FUZZ_SEED);
  const path = process.env.FUZZ_PATH;
  return {
    numRuns: runs,
    ...(Number.isInteger(seed) ? { seed } : {}),
    ...(path ? { path } : {}),
  };
}

/** A test timeout for `runs` runs of about `millisPerRun` each (this machine is slow). */
export function timeoutFor(runs: number, millisPerRun: number): number {
  return 30_000 + runs * millisPerRun * 4;
}

/** A fragment of JSON text, spliced in verbatim (deep nesting, NaN, numbers JSON.stringify cannot write). */
export class Raw {
  constructor(readonly text: string) {}
}

/**
 * JSON text for a value that may hold {@link Raw} fragments. The values built
 * here are shallow; deep nesting only ever comes in as a fragment.
 */
export function toJsonText(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return `[${value.map(toJsonText).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const members = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${toJsonText(v)}`);
    return `{${members.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** Arrays or objects nested `depth` levels deep, as text (JSON.stringify could not write them). */
export function deepJson(depth: number, kind: "array" | "object", leaf = "1"): string {
  return kind === "array"
    ? `${"[".repeat(depth)}${leaf}${"]".repeat(depth)}`
    : `${'{"a":'.repeat(depth)}${leaf}${"}".repeat(depth)}`;
}

/** Values that have broken parsers and validators: edges of numbers, odd strings, odd shapes. */
export const nastyScalar: fc.Arbitrary<unknown> = fc.constantFrom<unknown>(
  1e308,
  -1e308,
  5e-324,
  Number.MAX_SAFE_INTEGER + 2,
  1e12,
  1e12 + 1,
  -1e12 - 1,
  86_400_000,
  86_400_001,
  0,
  -1,
  0.1,
  true,
  false,
  null,
  "",
  " ",
  "NaN",
  "nan",
  "Infinity",
  "-inf",
  "+inf",
  "1e999",
  "-1e999",
  "0x10",
  "1_000",
  " 1 ",
  "1.5",
  "١٢٣",
  "\u0000",
  "\ud800",
  "\ufeff",
  "a\u202eb",
  "2099-01-01T00:00:00Z",
  "1970-01-01",
  "0000-00-00T00:00:00",
  "yesterday",
  "__proto__",
  {},
  [],
  [[]],
  { __proto__: null, a: 1 },
  JSON.parse('{"__proto__":{"polluted":1}}') as unknown,
);

/** Number tokens and Python's extensions, as raw text. */
export const rawNumber: fc.Arbitrary<Raw> = fc
  .constantFrom(
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "1e400",
    "-1e400",
    "1E+308",
    "4.9e-325",
    "123456789012345678901234567890",
    "0.00000000000000000000000000001",
    "-0.0",
    "1.7976931348623157e309",
  )
  .map((text) => new Raw(text));

/** A value nested up to 20,000 levels deep, as raw text. */
export const rawDeep: fc.Arbitrary<Raw> = fc
  .tuple(
    fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 64, max: 20_000 })),
    fc.constantFrom<"array" | "object">("array", "object"),
    fc.constantFrom("1", "NaN", '"x"', "null", "{}", "[]"),
  )
  .map(([depth, kind, leaf]) => new Raw(deepJson(depth, kind, leaf)));

/** Strings from short odd ones to 100,000 characters. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.integer({ min: 51, max: 100_000 }).map((n) => "x".repeat(n)),
  fc.constantFrom("test-service", "Test_Service", "test service", "tést", "a/b", "a.b", "-"),
);

/** Anything a client might put where a value belongs. */
export const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: nastyScalar, weight: 4 },
  { arbitrary: nastyString, weight: 2 },
  { arbitrary: rawNumber, weight: 2 },
  { arbitrary: rawDeep, weight: 1 },
  { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 2 },
);

/** One change to a JSON tree: where (an index into its paths, taken modulo) and what. */
export interface TreeMutation {
  readonly at: number;
  readonly op: "drop" | "replace" | "wrap" | "add";
  readonly key: string;
  readonly value: unknown;
}

/** A few changes to a JSON tree, with keys the service knows among random ones. */
export function treeMutations(knownKeys: readonly string[]): fc.Arbitrary<TreeMutation[]> {
  return fc.array(
    fc.record({
      at: fc.nat(),
      op: fc.constantFrom<TreeMutation["op"]>("drop", "replace", "replace", "wrap", "add"),
      key: fc.oneof(fc.constantFrom(...knownKeys), fc.string({ maxLength: 8 })),
      value: nastyValue,
    }),
    { minLength: 1, maxLength: 3 },
  );
}

type Container = Record<string, unknown> | unknown[];

/** A deep copy of a shallow JSON tree; {@link Raw} fragments are immutable and shared. */
function cloneValue(value: unknown): unknown {
  if (value instanceof Raw || typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map(cloneValue);
  const copy: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    // defineProperty, so that a "__proto__" key stays an own key.
    Object.defineProperty(copy, key, {
      value: cloneValue(child),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return copy;
}

/** Every place in a tree a value sits, as [container, key], the root's container first. */
function places(root: { v: unknown }): [Container, string | number][] {
  const out: [Container, string | number][] = [[root as Record<string, unknown>, "v"]];
  const walk = (node: unknown): void => {
    if (node instanceof Raw || typeof node !== "object" || node === null) return;
    const container = node as Container;
    for (const key of Array.isArray(container)
      ? container.map((_, i) => i)
      : Object.keys(container)) {
      out.push([container, key]);
      walk((container as Record<string | number, unknown>)[key]);
    }
  };
  walk(root.v);
  return out;
}

/** Applies mutations to a copy of a JSON-safe tree. */
export function mutateTree(tree: unknown, mutations: readonly TreeMutation[]): unknown {
  const root = { v: cloneValue(tree) };
  for (const m of mutations) {
    const all = places(root);
    const [container, key] = all[m.at % all.length] as [Container, string | number];
    const slot = container as Record<string | number, unknown>;
    switch (m.op) {
      case "drop":
        if (Array.isArray(container)) container.splice(key as number, 1);
        else if (container !== (root as unknown)) delete slot[key];
        break;
      case "replace":
        Object.defineProperty(slot, key, {
          value: cloneValue(m.value),
          enumerable: true,
          writable: true,
          configurable: true,
        });
        break;
      case "wrap":
        slot[key] = [slot[key]];
        break;
      case "add": {
        const target = slot[key];
        if (Array.isArray(target)) target.push(cloneValue(m.value));
        else if (typeof target === "object" && target !== null && !(target instanceof Raw)) {
          Object.defineProperty(target, m.key, {
            value: cloneValue(m.value),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else slot[key] = cloneValue(m.value);
        break;
      }
    }
  }
  return root.v;
}

/** Byte sequences that are not UTF-8: stray continuation bytes, overlong forms, surrogates, 0xFF. */
export const invalidUtf8: fc.Arbitrary<Uint8Array> = fc.constantFrom(
  Uint8Array.of(0xff),
  Uint8Array.of(0xfe, 0xff),
  Uint8Array.of(0x80),
  Uint8Array.of(0xc3),
  Uint8Array.of(0xc0, 0xaf),
  Uint8Array.of(0xe0, 0x80, 0xaf),
  Uint8Array.of(0xed, 0xa0, 0x80),
  Uint8Array.of(0xf4, 0x90, 0x80, 0x80),
  Uint8Array.of(0xf8, 0x88, 0x80, 0x80, 0x80),
  Uint8Array.of(0xe2, 0x82),
);

/** One change to the bytes of a body. */
export type ByteMutation =
  | { readonly op: "truncate"; readonly at: number }
  | { readonly op: "flip"; readonly at: number; readonly bit: number }
  | { readonly op: "insert"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly op: "delete"; readonly at: number; readonly length: number }
  | { readonly op: "duplicate"; readonly at: number; readonly length: number };

/** A few changes to the bytes of an encoded message or body. */
export const byteMutations: fc.Arbitrary<ByteMutation[]> = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
    fc.record({
      op: fc.constant("flip" as const),
      at: fc.nat(),
      bit: fc.integer({ min: 0, max: 7 }),
    }),
    fc.record({
      op: fc.constant("insert" as const),
      at: fc.nat(),
      bytes: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 8 }), invalidUtf8),
    }),
    fc.record({
      op: fc.constant("delete" as const),
      at: fc.nat(),
      length: fc.integer({ min: 1, max: 16 }),
    }),
    fc.record({
      op: fc.constant("duplicate" as const),
      at: fc.nat(),
      length: fc.integer({ min: 1, max: 32 }),
    }),
  ),
  { minLength: 1, maxLength: 4 },
);

/** Applies byte mutations to a copy of `bytes`; positions are taken modulo its length. */
export function mutateBytes(bytes: Uint8Array, mutations: readonly ByteMutation[]): Buffer {
  let out = Buffer.from(bytes);
  for (const m of mutations) {
    const at = out.length === 0 ? 0 : m.at % (out.length + 1);
    switch (m.op) {
      case "truncate":
        out = out.subarray(0, at);
        break;
      case "flip":
        if (at < out.length) out[at] = (out[at] as number) ^ (1 << m.bit);
        break;
      case "insert":
        out = Buffer.concat([out.subarray(0, at), m.bytes, out.subarray(at)]);
        break;
      case "delete":
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + m.length)]);
        break;
      case "duplicate":
        out = Buffer.concat([out.subarray(0, at + m.length), out.subarray(at)]);
        break;
    }
  }
  return out;
}

/**
 * The end of a fuzz run: every answer that said "accepted N" has exactly N
 * rows, a rejected request none, the batch stored before the run is still
 * there, and no row is there that no answer accounts for.
 */
export async function expectStoredAsAnswered(
  db: TestDb,
  baseline: { readonly requestId: string; readonly rows: number },
  accepted: ReadonlyMap<string, number>,
  rejected: Iterable<string> = [],
): Promise<void> {
  const stored = new Map(
    (
      await db.all<{ id: string; n: number }>(
        "SELECT request_id AS id, count(*) AS n FROM metrics GROUP BY request_id",
      )
    ).map((row) => [row.id, row.n]),
  );
  expect(stored.get(baseline.requestId)).toBe(baseline.rows);
  for (const [requestId, n] of accepted) expect(stored.get(requestId), requestId).toBe(n);
  for (const requestId of rejected) expect(stored.get(requestId), requestId).toBeUndefined();
  const others = [...stored.keys()].filter((id) => id !== baseline.requestId && !accepted.has(id));
  expect(others, "rows no answer accounted for").toEqual([]);
}
