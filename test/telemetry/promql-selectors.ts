/** One label matcher of a series selector: `server_name=~"$tool_server"`. */
export interface Matcher {
  readonly label: string;
  readonly op: "=" | "!=" | "=~" | "!~";
  readonly value: string;
}

/** One series selector of a PromQL expression, and what reads it. */
export interface Selector {
  /** The metric name as written (`mcp_tool_execution_duration_seconds_bucket`), or `__name__`'s value. */
  readonly name: string;
  readonly matchers: readonly Matcher[];
  /** The range of a range vector (`5m`, `$__range`); undefined for an instant vector. */
  readonly range: string | undefined;
  /** The functions and aggregations it is an argument of, innermost first. */
  readonly enclosing: readonly string[];
}

/** Keywords followed by a list of label names, not of expressions. */
const LABEL_LISTS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
/** Keywords and literals that are no metric name. */
const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"]);
/** Aggregations, which may take a `by (...)` clause between their name and their argument. */
const AGGREGATIONS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
]);

const MATCHER =
  /\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*,?/y;
const NAME = /[A-Za-z_:][A-Za-z0-9_:]*/y;
const NUMBER = /(?:0x[0-9a-f]+|\d*\.?\d+(?:e[+-]?\d+)?)(?:ms|[smhdwy])*/iy;

type Frame = { kind: "call"; name: string } | { kind: "labels" } | { kind: "parentheses" };

/** The index just past the string literal that starts at `start`. */
function skipString(expr: string, start: number): number {
  const quote = expr[start];
  let i = start + 1;
  while (i < expr.length && expr[i] !== quote) i += expr[i] === "\\" ? 2 : 1;
  return i + 1;
}

/** The index just past the bracket that closes the one at `start`, skipping string literals. */
function skipBlock(expr: string, start: number, close: string): number {
  let i = start + 1;
  while (i < expr.length && expr[i] !== close) {
    i = expr[i] === '"' || expr[i] === "'" ? skipString(expr, i) : i + 1;
  }
  if (i >= expr.length) throw new Error(`unclosed ${expr[start]} at ${start} in ${expr}`);
  return i + 1;
}

function parseMatchers(block: string): Matcher[] {
  const matchers: Matcher[] = [];
  MATCHER.lastIndex = 0;
  for (let match = MATCHER.exec(block); match; match = MATCHER.exec(block)) {
    const [, label, op, quoted] = match as unknown as [string, string, Matcher["op"], string];
    matchers.push({ label, op, value: quoted.slice(1, -1).replace(/\\(.)/g, "$1") });
    if (MATCHER.lastIndex >= block.length) break;
  }
  if (block.trim() !== "" && MATCHER.lastIndex !== block.length) {
    throw new Error(`cannot read the matchers {${block}}`);
  }
  return matchers;
}

/**
 * The series selectors of a PromQL expression, each with its matchers, its
 * range and the functions around it. A reader for the dashboard's own
 * queries (selectors, ranges, function calls, aggregations with `by`,
 * binary operators with `on`/`group_left`), not a full PromQL parser: no
 * subqueries, `@` or `offset` are needed there, and it throws on what it
 * cannot read rather than skip it.
 */
export function selectorsOf(expr: string): Selector[] {
  const selectors: Selector[] = [];
  const stack: Frame[] = [];
  let aggregation: string | undefined;
  const skipSpace = (from: number) => {
    let j = from;
    while (j < expr.length && /\s/.test(expr[j] as string)) j++;
    return j;
  };
  const enclosing = () =>
    stack
      .filter((f): f is Frame & { kind: "call" } => f.kind === "call")
      .map((f) => f.name)
      .reverse();
  /** Reads the `{...}` and `[...]` after a metric name at `at`; returns where it ends. */
  const selector = (name: string | undefined, at: number): number => {
    let i = skipSpace(at);
    let matchers: Matcher[] = [];
    if (expr[i] === "{") {
      const end = skipBlock(expr, i, "}");
      matchers = parseMatchers(expr.slice(i + 1, end - 1));
      i = skipSpace(end);
    }
    let range: string | undefined;
    if (expr[i] === "[") {
      const end = skipBlock(expr, i, "]");
      range = expr.slice(i + 1, end - 1).trim();
      i = end;
    }
    const metric = name ?? matchers.find((m) => m.label === "__name__")?.value;
    if (metric === undefined) throw new Error(`a selector without a metric name in ${expr}`);
    selectors.push({ name: metric, matchers, range, enclosing: enclosing() });
    return i;
  };

  let i = 0;
  while (i < expr.length) {
    const c = expr[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === "'" || c === "`") {
      i = skipString(expr, i);
    } else if (/[0-9.]/.test(c)) {
      NUMBER.lastIndex = i;
      if (!NUMBER.exec(expr)) throw new Error(`cannot read a number at ${i} in ${expr}`);
      i = NUMBER.lastIndex;
    } else if (/[A-Za-z_:]/.test(c)) {
      NAME.lastIndex = i;
      const word = (NAME.exec(expr) as RegExpExecArray)[0];
      i = NAME.lastIndex;
      const next = skipSpace(i);
      if (stack.at(-1)?.kind === "labels") continue; // a label name in by (...), on (...)
      if (LABEL_LISTS.has(word)) {
        if (expr[next] === "(") {
          stack.push({ kind: "labels" });
          i = next + 1;
        }
      } else if (KEYWORDS.has(word.toLowerCase())) {
        // an operator or literal
      } else if (expr[next] === "(") {
        stack.push({ kind: "call", name: word });
        aggregation = undefined;
        i = next + 1;
      } else if (AGGREGATIONS.has(word)) {
        aggregation = word; // sum by (le) (...): the call's parenthesis comes after the clause
      } else {
        i = selector(word, i);
      }
    } else if (c === "{") {
      i = selector(undefined, i);
    } else if (c === "(") {
      if (aggregation !== undefined) {
        stack.push({ kind: "call", name: aggregation });
        aggregation = undefined;
      } else stack.push({ kind: "parentheses" });
      i++;
    } else if (c === ")") {
      if (stack.pop() === undefined) throw new Error(`unbalanced ) at ${i} in ${expr}`);
      i++;
    } else {
      i++;
    }
  }
  if (stack.length > 0) throw new Error(`unclosed ( in ${expr}`);
  return selectors;
}
