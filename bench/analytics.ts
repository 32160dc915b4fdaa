/**
 * The analytics benchmark (see `bench/ingest/analytics.ts`): builds a
 * database of 10 million events spread over 90 days in a temporary directory,
 * times the operators' questions on it and prints a Markdown table of their
 * median times, rows, whether every table was reached through an index, and
 * their query plans. The temporary directory is removed afterwards.
 *
 * Verdict (bench/verdict.ts), printed last and written into its result,
 * `analytics-<timestamp>.json` in bench/results (quick runs:
 * bench/results/quick); the run exits 1 when it is FAIL. Judged in every run:
 * every question through an index (its plan; a question that finds nothing
 * fails the run outright). Judged in a full run only: every operators'
 * question under the limit, the 30-day cut-off count aside (an admin preview
 * after lowering retention, over by design, as README says).
 *
 * Usage (after `npm run build`):
 *   node dist/bench/analytics.js [--quick] [--events N] [--out DIR]
 * `--quick` stores 1 million events; `--events` any number.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type AnalyticsResult, LIMIT_MS, runAnalytics } from "./ingest/analytics.js";
import {
  commitOf,
  judged,
  judgedInFullRun,
  type Verdict,
  verdictLines,
  verdictOf,
} from "./verdict.js";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    events: { type: "string" },
    out: { type: "string" },
  },
});
const QUICK = args.quick === true;
const OUT = resolve(args.out ?? (QUICK ? "bench/results/quick" : "bench/results"));
const EVENTS = Number(args.events ?? (QUICK ? 1_000_000 : 10_000_000));
if (!Number.isSafeInteger(EVENTS) || EVENTS < 1) {
  throw new Error(`--events must be a positive integer, got ${args.events}`);
}

/** Whether a question is the admin preview of a 30-day cut-off (over the limit by design). */
const isPreview = (name: string): boolean => name.includes("now-30 d");

/** The run's verdict (see the header). */
function verdictOfRun(result: AnalyticsResult): Verdict {
  const unindexed = result.queries.filter((q) => !q.usesIndex);
  const asked = result.queries.filter((q) => !isPreview(q.name));
  const slow = asked.filter((q) => !q.underLimit);
  return verdictOf("analytics", QUICK, [
    judged(
      "every question through an index",
      "no full scan in any question's plan",
      unindexed.length === 0
        ? `${result.queries.length} questions, all through an index`
        : `full scans: ${unindexed.map((q) => q.name).join("; ")}`,
      unindexed.length === 0,
    ),
    judgedInFullRun(
      QUICK,
      "an absolute time on a shared machine, on a smaller history",
      `every operators' question under ${LIMIT_MS} ms`,
      `median under ${LIMIT_MS} ms on ${result.events.toLocaleString("en-US")} events, the 30-day cut-off preview aside`,
      slow.length === 0
        ? `slowest ${Math.max(...asked.map((q) => q.medianMs)).toFixed(1)} ms`
        : `over: ${slow.map((q) => `${q.name} ${q.medianMs.toFixed(0)} ms`).join("; ")}`,
      slow.length === 0,
    ),
  ]);
}

/** The results as a Markdown table. */
function markdownTable(result: AnalyticsResult): string {
  const lines = ["| question | median ms | rows | index used | plan |", "|---|---:|---:|---|---|"];
  for (const q of result.queries) {
    const rows = q.value === null ? `${q.rows}` : `${q.rows} (${q.value.toLocaleString("en-US")})`;
    const ms = `${q.medianMs.toFixed(2)}${q.underLimit ? "" : ` (> ${LIMIT_MS})`}`;
    lines.push(
      `| ${q.name} | ${ms} | ${rows} | ${q.usesIndex ? "yes" : "**no**"} | ${q.plan.join("; ")} |`,
    );
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const started = new Date();
  const dir = mkdtempSync(join(tmpdir(), "mcp-metrics-analytics-"));
  try {
    const result = await runAnalytics({
      events: EVENTS,
      dir,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    const changed = result.queries.filter(
      (q) => q.planWithoutStats.join("; ") !== q.plan.join("; "),
    );
    const out = [
      `analytics: ${result.events.toLocaleString("en-US")} events over 90 days, ${process.version}`,
      `build ${result.buildSeconds.toFixed(1)} s (${Math.round(result.eventsPerSecond).toLocaleString("en-US")} events/s), ` +
        `database ${(result.databaseBytes / 2 ** 30).toFixed(2)} GiB, ANALYZE ${result.analyzeSeconds.toFixed(1)} s`,
      "",
      markdownTable(result),
      "",
      "rows: rows returned (the count, for a one-row count).",
      ...changed.map((q) => `without ANALYZE, ${q.name}: ${q.planWithoutStats.join("; ")}`),
      "",
    ];
    const verdict = verdictOfRun(result);
    mkdirSync(OUT, { recursive: true });
    const file = join(OUT, `analytics-${started.toISOString().replace(/[:.]/g, "-")}.json`);
    const report = {
      benchmark: "analytics",
      commit: commitOf(),
      mode: QUICK ? "quick" : "full",
      started: started.toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "unknown", node: process.version },
      result,
      verdict,
    };
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    out.push(`results: ${file}`, "", ...verdictLines(verdict), "");
    process.stdout.write(out.join("\n"));
    if (verdict.status === "FAIL") process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => {},
  (error: unknown) => {
    process.stderr.write(
      `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
