/**
 * The analytics benchmark (see `bench/ingest/analytics.ts`): builds a
 * database of 10 million events spread over 90 days in a temporary directory,
 * times the operators' questions on it and prints a Markdown table of their
 * median times, rows, whether every table was reached through an index, and
 * their query plans. The temporary directory is removed afterwards.
 *
 * Usage (after `npm run build`):
 *   node dist/bench/analytics.js [--quick] [--events N]
 * `--quick` stores 1 million events; `--events` any number.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type AnalyticsResult, LIMIT_MS, runAnalytics } from "./ingest/analytics.js";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    events: { type: "string" },
  },
});
const EVENTS = Number(args.events ?? (args.quick === true ? 1_000_000 : 10_000_000));
if (!Number.isSafeInteger(EVENTS) || EVENTS < 1) {
  throw new Error(`--events must be a positive integer, got ${args.events}`);
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
    process.stdout.write(out.join("\n"));
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
