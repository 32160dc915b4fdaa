/**
 * The ingest benchmark: the service against the physical limit, in one run.
 *
 * Arms, each on a fresh database with the service's schema and indexes:
 * - A, the ceiling: in-process inserts of the same events, no network;
 * - B, a bare `node:http` server: `JSON.parse` and one transaction per request;
 * - the service over JSON `POST /metrics`, Connect binary over HTTP/1.1, gRPC
 *   over h2c, and the client-streaming RPC.
 *
 * Servers run on core 0 and the load generator on core 1 (`taskset`). The
 * rates are stepped up, open loop, and every arm still passing is measured at
 * each rate before the next rate, so machine noise falls on all arms alike.
 * An arm's sustained rate is the highest step with p99 under 50 ms and no
 * error; a failed step is measured once more before the arm is dropped.
 * Results go to a JSON file, a Markdown table and an SVG chart; the ratios of
 * the service to A and to B are printed last.
 *
 * Batch size: nginx-shaped legacy batches of 1,024 events against 100, the same
 * events/s, interleaved rounds on a service of their own; the ratio of their
 * CPU per event and a `batch-size verdict:` line are printed last (see
 * ingest/batch-size.ts). `--only batch-size` runs that part alone;
 * `--batch-sizes BIG,SMALL` changes the sizes (e.g. `100,50` where the service
 * takes no more than 100).
 *
 * Verdict (bench/verdict.ts), printed last and written into the JSON and
 * Markdown results; the run exits 1 when it is FAIL. Judged in every run,
 * quick ones included (ratios measured in the same run, plans, answers): the
 * own overhead within the issue's 20% of B's CPU per event, on the JSON and
 * binary paths; the batch-size verdict; every analytics question through an
 * index; every refusal answered as expected. Judged in a full run only (an
 * absolute time on a shared machine): every analytics question under its
 * limit. Reported: the issue's 100,000 events/s.
 *
 * Usage: npm run bench [-- --quick] [-- --out DIR] [-- --only batch-size] [-- --batch-sizes 1024,100]
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import BetterSqlite3 from "better-sqlite3";
import { LIMIT_MS, runAnalytics } from "./ingest/analytics.js";
import {
  type BatchSizeResult,
  batchSizeMarkdown,
  batchSizeSummary,
  measureBatchSize,
} from "./ingest/batch-size.js";
import { type Breakdown, breakdownTable } from "./ingest/breakdown.js";
import { latencyChart } from "./ingest/chart.js";
import type { LoadResult, LoadSpec } from "./ingest/load.js";
import {
  cpuSecondsOf,
  DIST,
  firstJsonLine,
  KEY,
  LOAD_CORE,
  nodeOn,
  peakRssMiB,
  pinnable,
  runLoad,
  SERVER_CORE,
  type Server,
  startServer,
} from "./ingest/processes.js";
import { measureRejections } from "./ingest/rejections.js";
import { measureScrapes } from "./ingest/scrape.js";
import { EVENTS_PER_BATCH } from "./ingest/workload.js";
import {
  type Check,
  commitOf,
  judged,
  judgedInFullRun,
  reportedOnly,
  type Verdict,
  verdictLines,
  verdictMarkdown,
  verdictOf,
} from "./verdict.js";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    out: { type: "string" },
    only: { type: "string" },
    "batch-sizes": { type: "string", default: "1024,100" },
  },
});
const QUICK = args.quick === true;
if (args.only !== undefined && args.only !== "batch-size") {
  throw new Error(`--only ${args.only}: the only part that runs alone is batch-size`);
}
const ONLY_BATCH_SIZE = args.only === "batch-size";
const [BATCH_BIG, BATCH_SMALL] = (args["batch-sizes"] ?? "").split(",").map(Number);
if (
  !Number.isInteger(BATCH_BIG) ||
  !Number.isInteger(BATCH_SMALL) ||
  (BATCH_BIG ?? 0) < 1 ||
  (BATCH_SMALL ?? 0) < 1
) {
  throw new Error(`--batch-sizes ${args["batch-sizes"]}: want two event counts, BIG,SMALL`);
}
/**
 * Events/s offered to both batch sizes: half of what the JSON arm sustains with
 * 100-event batches on a 2-core machine (20,000), so that neither size runs
 * near saturation, where queueing would dominate the CPU and the latency.
 */
const BATCH_EVENTS_PER_SECOND = 10_000;
const OUT = resolve(args.out ?? (QUICK ? "bench/results/quick" : "bench/results"));
const STEP_SECONDS = QUICK ? 1.5 : 10;
/**
 * The offered rates, lowest first. They start at 2,500 events/s: on a slow
 * shared machine (one of these 2-core machines spent 136-150 µs of CPU per
 * event in the bare server, where the run of 2026-12-01 spent 36) every arm
 * must still sustain a step, or there is no CPU per event to compare.
 */
const RATES = QUICK
  ? [2_500, 5_000, 10_000, 20_000, 30_000, 45_000, 60_000, 80_000, 100_000, 130_000]
  : [
      2_500, 5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000,
      90_000, 100_000, 115_000, 130_000, 150_000,
    ];
const P99_LIMIT_MS = 50;
/** Rows stored in `metrics` and bytes of the database file with its WAL. */
function storedOf(dbPath: string): { rows: number; bytes: number } {
  const size = (p: string) => {
    try {
      return statSync(p).size;
    } catch {
      return 0;
    }
  };
  const db = new BetterSqlite3(dbPath, { readonly: true });
  const { n } = db.prepare("SELECT count(*) AS n FROM metrics").get() as { n: number };
  db.close();
  return { rows: n, bytes: size(dbPath) + size(`${dbPath}-wal`) };
}

interface Step {
  readonly offeredEventsPerSecond: number;
  /** 2 when the step was measured again after failing once. */
  readonly attempt: number;
  readonly load: LoadResult;
  readonly cpuSecondsPerMillion: number;
  readonly loopDelayP99Ms: number;
  readonly passed: boolean;
}

interface ArmResult {
  readonly arm: string;
  readonly ingress: LoadSpec["ingress"];
  readonly steps: Step[];
  sustainedEventsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  cpuSecondsPerMillion: number;
  loopDelayP99Ms: number;
  bytesPerEvent: number;
  peakRssMiB: number;
}

const ARMS: { arm: string; ingress: LoadSpec["ingress"] }[] = [
  { arm: "B: bare node:http", ingress: "bare" },
  { arm: "service: JSON POST /metrics", ingress: "json" },
  { arm: "service: Connect binary, HTTP/1.1", ingress: "connect" },
  { arm: "service: gRPC, h2c", ingress: "grpc" },
  { arm: "service: gRPC client stream", ingress: "stream" },
];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mcp-metrics-bench-"));
  const started = new Date();
  console.log(
    `ingest benchmark (${QUICK ? "quick" : "full"}): ${cpus().length} cores (${cpus()[0]?.model}), ` +
      `servers on core ${SERVER_CORE}, load on core ${LOAD_CORE}${pinnable ? "" : " (not pinned: taskset unavailable)"}`,
  );
  const stamp = started.toISOString().replace(/[:.]/g, "-");

  if (ONLY_BATCH_SIZE) {
    const batchSize = await measureBatchSizes(dir);
    rmSync(dir, { recursive: true, force: true });
    const report = {
      benchmark: "ingest",
      only: "batch-size",
      commit: commitOf(),
      mode: QUICK ? "quick" : "full",
      started: started.toISOString(),
      machine: machineOf(),
      batchSize,
      verdict: verdictOf("ingest (batch size)", QUICK, [batchSizeCheck(batchSize)]),
    };
    mkdirSync(OUT, { recursive: true });
    // Named apart, so that a partial run is never read as a whole one.
    const base = join(OUT, `ingest-batch-size-${stamp}`);
    writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    const markdown = [batchSizeMarkdown(batchSize), verdictMarkdown(report.verdict)].join("\n\n");
    writeFileSync(`${base}.md`, `${markdown}\n`);
    console.log(`\n${markdown}\n`);
    console.log(`results: ${base}.json\n`);
    for (const line of batchSizeSummary(batchSize)) console.log(line);
    finish(report.verdict);
    return;
  }

  // A, the ceiling, at the request size and at a group-commit size.
  const ceiling: Record<string, { eventsPerSecond: number; cpuSecondsPerMillion: number }> = {};
  for (const perCommit of [EVENTS_PER_BATCH, 1000]) {
    const child = nodeOn(SERVER_CORE, [
      join(DIST, "ingest", "ceiling.js"),
      join(dir, `ceiling-${perCommit}.db`),
      String(perCommit),
      String(QUICK ? 2 : 10),
    ]);
    ceiling[perCommit] = await firstJsonLine(child, (l: string) => l.startsWith("{"));
    console.log(
      `A ceiling, ${perCommit} events per commit: ${Math.round(ceiling[perCommit]?.eventsPerSecond ?? 0)} events/s`,
    );
  }

  // The service's own work per event (auth, validation, instruments), in process.
  const breakdown = await firstJsonLine<Breakdown>(
    nodeOn(SERVER_CORE, [
      join(DIST, "ingest", "breakdown.js"),
      "--json",
      "--rounds",
      QUICK ? "3" : "15",
    ]),
    (l: string) => l.startsWith("{"),
  );
  console.log(
    `service's own work beyond B's, in process: JSON ${breakdown.jsonOwnMicrosPerEvent.toFixed(1)} µs per event, ` +
      `binary ${breakdown.binaryOwnMicrosPerEvent.toFixed(1)} µs per event beyond the protobuf decode`,
  );

  const servers = new Map<string, Server>();
  const results = new Map<string, ArmResult>();
  for (const { arm, ingress } of ARMS) {
    servers.set(arm, await startServer(arm, ingress, dir));
    results.set(arm, {
      arm,
      ingress,
      steps: [],
      sustainedEventsPerSecond: 0,
      p50Ms: Number.NaN,
      p99Ms: Number.NaN,
      cpuSecondsPerMillion: Number.NaN,
      loopDelayP99Ms: Number.NaN,
      bytesPerEvent: Number.NaN,
      peakRssMiB: Number.NaN,
    });
  }
  // Warm-up: JIT, page cache, connections.
  for (const { arm, ingress } of ARMS) {
    const server = servers.get(arm) as Server;
    await runLoad({
      ingress,
      url: server.url,
      key: KEY,
      eventsPerSecond: 5000,
      seconds: QUICK ? 1 : 3,
    });
  }

  const alive = new Set(ARMS.map((a) => a.arm));
  for (const rate of RATES) {
    if (alive.size === 0) break;
    for (const { arm, ingress } of ARMS) {
      if (!alive.has(arm)) continue;
      const server = servers.get(arm) as Server;
      const result = results.get(arm) as ArmResult;
      const pid = server.child.pid ?? 0;
      // A failed step is measured once more before the arm is dropped: on a
      // shared machine one stall elsewhere can spoil a single step's p99.
      let passed = false;
      let step: Step | undefined;
      for (let attempt = 1; attempt <= 2 && !passed; attempt++) {
        await server.window();
        const cpuBefore = cpuSecondsOf(pid);
        const load = await runLoad({
          ingress,
          url: server.url,
          key: KEY,
          eventsPerSecond: rate,
          seconds: STEP_SECONDS,
        });
        const cpu = cpuSecondsOf(pid) - cpuBefore;
        const { loopDelayP99Ms } = await server.window();
        passed = load.errors === 0 && load.p99Ms < P99_LIMIT_MS;
        step = {
          offeredEventsPerSecond: rate,
          attempt,
          load,
          cpuSecondsPerMillion: (cpu / Math.max(1, load.ok * EVENTS_PER_BATCH)) * 1e6,
          loopDelayP99Ms,
          passed,
        };
        result.steps.push(step);
        console.log(
          `${arm.padEnd(36)} ${String(rate).padStart(7)}/s offered${attempt > 1 ? " (again)" : ""}: ${Math.round(load.eventsPerSecond)}/s acked, ` +
            `p50 ${load.p50Ms.toFixed(1)} ms, p99 ${load.p99Ms.toFixed(1)} ms, errors ${load.errors}, ` +
            `CPU ${step.cpuSecondsPerMillion.toFixed(1)} s/M, loop p99 ${loopDelayP99Ms.toFixed(1)} ms` +
            (load.errorSamples.length > 0 ? ` [${load.errorSamples[0]}]` : ""),
        );
      }
      if (step === undefined) continue;
      const { load, loopDelayP99Ms } = step;
      if (passed) {
        result.sustainedEventsPerSecond = rate;
        result.p50Ms = load.p50Ms;
        result.p99Ms = load.p99Ms;
        result.cpuSecondsPerMillion = step.cpuSecondsPerMillion;
        result.loopDelayP99Ms = loopDelayP99Ms;
      } else {
        alive.delete(arm);
      }
    }
  }

  // Refusals against acceptances, on the JSON and gRPC arms' servers.
  const serverOf = (ingress: LoadSpec["ingress"]) =>
    servers.get(ARMS.find((a) => a.ingress === ingress)?.arm ?? "") as Server;
  const rejections = await measureRejections(
    { json: serverOf("json"), grpc: serverOf("grpc") },
    dir,
    QUICK ? 1 : 10,
    QUICK ? 0.3 : 2,
  );
  for (const r of rejections) {
    console.log(
      `${r.ingress.padEnd(5)} ${r.outcome.padEnd(13)} ${String(r.requestsPerSecond).padStart(5)}/s ${r.cpuMicrosPerRequest.toFixed(0).padStart(6)} µs CPU per request ` +
        `(${r.asExpected}/${r.requests} as expected, p50 ${r.p50Ms.toFixed(1)} ms)`,
    );
  }

  for (const { arm } of ARMS) {
    const server = servers.get(arm) as Server;
    const result = results.get(arm) as ArmResult;
    result.peakRssMiB = peakRssMiB(server.child.pid ?? 0);
    await server.stop();
    const stored = storedOf(server.dbPath);
    result.bytesPerEvent = stored.bytes / Math.max(1, stored.rows);
  }

  // After the arms' servers have stopped, so that its server has core 0 to itself.
  const batchSize = await measureBatchSizes(dir);

  const scrapes = await measureScrapes(dir, QUICK ? 2 : 20);
  for (const s of scrapes) {
    console.log(
      `scrape of ${s.series} series while ingesting: median ${s.medianMs.toFixed(1)} ms, p99 ${s.p99Ms.toFixed(1)} ms (${s.scrapes} scrapes)`,
    );
  }

  // The operators' questions on a history of 10 million events (300,000 in quick mode).
  const analytics = await runAnalytics({
    events: QUICK ? 300_000 : 10_000_000,
    dir,
    log: (line) => console.log(`analytics: ${line}`),
  });
  rmSync(dir, { recursive: true, force: true });

  const arms = [...results.values()];
  const bare = results.get("B: bare node:http") as ArmResult;
  const ceilingBest = Math.max(...Object.values(ceiling).map((c) => c.eventsPerSecond));
  const verdict = verdictOf(
    "ingest",
    QUICK,
    ingestChecks({ arms, bare, breakdown, batchSize, analytics, rejections }),
  );
  const report = {
    benchmark: "ingest",
    commit: commitOf(),
    mode: QUICK ? "quick" : "full",
    started: started.toISOString(),
    machine: machineOf(),
    settings: {
      stepSeconds: STEP_SECONDS,
      rates: RATES,
      p99LimitMs: P99_LIMIT_MS,
      eventsPerBatch: EVENTS_PER_BATCH,
    },
    ceiling,
    arms,
    breakdown,
    rejections,
    batchSize,
    scrapes,
    analytics,
    verdict,
  };
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, `ingest-${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
  const table = [
    "| Arm | Sustained events/s | p50 ms | p99 ms | CPU s per M events | Loop delay p99 ms | Bytes per event | Peak RSS MiB |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
    `| A: in-process inserts, ${EVENTS_PER_BATCH} per commit | ${Math.round(ceiling[EVENTS_PER_BATCH]?.eventsPerSecond ?? 0)} (max) | – | – | ${ceiling[EVENTS_PER_BATCH]?.cpuSecondsPerMillion.toFixed(1)} | – | – | – |`,
    `| A: in-process inserts, 1000 per commit | ${Math.round(ceiling[1000]?.eventsPerSecond ?? 0)} (max) | – | – | ${ceiling[1000]?.cpuSecondsPerMillion.toFixed(1)} | – | – | – |`,
    ...arms.map(
      (a) =>
        `| ${a.arm} | ${a.sustainedEventsPerSecond} | ${a.p50Ms.toFixed(1)} | ${a.p99Ms.toFixed(1)} | ${a.cpuSecondsPerMillion.toFixed(1)} | ${a.loopDelayP99Ms.toFixed(1)} | ${Math.round(a.bytesPerEvent)} | ${Math.round(a.peakRssMiB)} |`,
    ),
  ].join("\n");
  const questions = [
    `Analytics on ${analytics.events.toLocaleString("en-US")} events over 90 days (limit ${LIMIT_MS} ms):`,
    "",
    "| Question | Median ms | Rows | Through an index |",
    "|---|---:|---:|---|",
    ...analytics.queries.map(
      (q) =>
        `| ${q.name} | ${q.medianMs.toFixed(2)}${q.underLimit ? "" : " (over)"} | ${q.value ?? q.rows} | ${q.usesIndex ? "yes" : "**no**"} |`,
    ),
  ].join("\n");
  const accepted = (ingress: string) =>
    rejections.find((r) => r.ingress === ingress && r.outcome === "accepted");
  const refusals = [
    "Refused requests against accepted ones (the same 100-event bodies; server CPU per request, net of the server's idle background):",
    "",
    "| Ingress | Outcome | Requests/s | CPU µs per request | Cheaper than accepted | Answered as expected |",
    "|---|---|---:|---:|---:|---:|",
    ...rejections.map(
      (r) =>
        `| ${r.ingress} | ${r.outcome} | ${r.requestsPerSecond} | ${r.cpuMicrosPerRequest.toFixed(0)} | ${((accepted(r.ingress)?.cpuMicrosPerRequest ?? 0) / r.cpuMicrosPerRequest).toFixed(1)}x | ${r.asExpected}/${r.requests} |`,
    ),
  ].join("\n");
  const scrapeTable = [
    "Prometheus scrape while ingesting:",
    "",
    "| Series | Median ms | p99 ms | Max ms | Bytes | Scrapes | Ingesting events/s |",
    "|---:|---:|---:|---:|---:|---:|---:|",
    ...scrapes.map(
      (t) =>
        `| ${t.series} | ${t.medianMs.toFixed(1)} | ${t.p99Ms.toFixed(1)} | ${t.maxMs.toFixed(1)} | ${t.bytes} | ${t.scrapes} | ${Math.round(t.ingestingEventsPerSecond)} |`,
    ),
  ].join("\n");
  const ownWork = [
    "The service's own work per event besides the transport and the inserts (auth, validation, instruments), in process, against B's `JSON.parse` and row mapping:",
    "",
    breakdownTable(breakdown),
  ].join("\n");
  const markdown = [
    verdictMarkdown(verdict),
    table,
    ownWork,
    refusals,
    batchSizeMarkdown(batchSize),
    scrapeTable,
    questions,
  ].join("\n\n");
  writeFileSync(join(OUT, `ingest-${stamp}.md`), `${markdown}\n`);
  const chart = await latencyChart(
    arms.flatMap((a) =>
      a.steps.map((step) => ({
        arm: a.arm,
        eventsPerSecond: step.load.eventsPerSecond,
        p99Ms: step.load.p99Ms,
      })),
    ),
    P99_LIMIT_MS,
    `Ingest: p99 latency against throughput (${QUICK ? "quick" : "full"} run, ${stamp.slice(0, 10)})`,
  );
  writeFileSync(join(OUT, `ingest-${stamp}.svg`), chart);
  console.log(`\n${markdown}\n`);
  console.log(`results: ${join(OUT, `ingest-${stamp}.json`)}`);
  console.log(
    "\nratios (sustained events/s; CPU per event against B at the highest rate both sustained):",
  );
  for (const a of arms.filter((x) => x.ingress !== "bare")) {
    console.log(
      `  ${a.arm.padEnd(36)} service/A ${(a.sustainedEventsPerSecond / ceilingBest).toFixed(2)}  service/B ${(a.sustainedEventsPerSecond / Math.max(1, bare.sustainedEventsPerSecond)).toFixed(2)}  CPU service/B ${cpuRatio(a, bare).toFixed(2)}`,
    );
  }
  // The issue's "own overhead (auth, validation, instruments) against B": B's CPU
  // per event where it sustained most, plus what the service adds to it in process.
  const bareCpu = cpuPerEventOf(bare);
  console.log(
    `  own overhead (auth, validation, instruments) against B's ${bareCpu.toFixed(1)} µs per event: ` +
      `JSON ${((bareCpu + breakdown.jsonOwnMicrosPerEvent) / bareCpu).toFixed(2)}, ` +
      `binary ingresses ${((bareCpu + breakdown.binaryOwnMicrosPerEvent) / bareCpu).toFixed(2)} (beyond the protobuf decode)`,
  );
  for (const line of batchSizeSummary(batchSize)) console.log(line);
  finish(verdict);
}

/** The issue's bound on the service's own overhead: its CPU per event at most 1.20 times B's. */
const OWN_OVERHEAD_LIMIT = 1.2;

/** The batch-size part's own verdict, as a check. */
function batchSizeCheck(batchSize: BatchSizeResult): Check {
  return judged(
    `batch size: ${batchSize.big.eventsPerBatch}-event requests no dearer per event than ${batchSize.small.eventsPerBatch}-event ones`,
    "CPU per event ratio ≤ 1 + the rounds' noise margin (paired rounds of the same run)",
    `${batchSize.ratio.toFixed(3)} (${batchSize.reason})`,
    batchSize.verdict === "PASS",
  );
}

/** The targets this run is judged against (see the header). */
function ingestChecks(run: {
  arms: readonly ArmResult[];
  bare: ArmResult;
  breakdown: Breakdown;
  batchSize: BatchSizeResult;
  analytics: Awaited<ReturnType<typeof runAnalytics>>;
  rejections: Awaited<ReturnType<typeof measureRejections>>;
}): Check[] {
  const bareCpu = cpuPerEventOf(run.bare);
  const overhead = (own: number, path: string): Check => {
    const ratio = (bareCpu + own) / bareCpu;
    return judged(
      `own overhead (auth, validation, instruments), ${path}`,
      `≤ ${OWN_OVERHEAD_LIMIT.toFixed(2)} × B's CPU per event (README: within the issue's 20%; both measured in this run)`,
      Number.isFinite(ratio)
        ? `${ratio.toFixed(3)} (B ${bareCpu.toFixed(1)} µs per event + ${own.toFixed(2)} µs in process)`
        : "not measured (B acknowledged no step in full)",
      ratio <= OWN_OVERHEAD_LIMIT,
    );
  };
  const unindexed = run.analytics.queries.filter((q) => !q.usesIndex);
  // The 30-day cut-off count is an admin preview after lowering retention,
  // over the limit by design (README: an index still reads every entry it counts).
  const slow = run.analytics.queries.filter((q) => !q.underLimit && !isPreview(q.name));
  const unexpected = run.rejections.filter((r) => r.asExpected !== r.requests);
  const best = Math.max(...run.arms.map((a) => a.sustainedEventsPerSecond));
  return [
    overhead(run.breakdown.jsonOwnMicrosPerEvent, "JSON path"),
    overhead(run.breakdown.binaryOwnMicrosPerEvent, "binary path, beyond the protobuf decode"),
    batchSizeCheck(run.batchSize),
    judged(
      "analytics: every question through an index",
      "no full scan in any question's plan",
      unindexed.length === 0
        ? `${run.analytics.queries.length} questions, all through an index`
        : `full scans: ${unindexed.map((q) => q.name).join("; ")}`,
      unindexed.length === 0,
    ),
    judgedInFullRun(
      QUICK,
      "an absolute time on a shared machine",
      `analytics: every operators' question under ${LIMIT_MS} ms`,
      `median under ${LIMIT_MS} ms on ${run.analytics.events.toLocaleString("en-US")} events, the 30-day cut-off preview aside`,
      slow.length === 0
        ? `slowest ${Math.max(...run.analytics.queries.filter((q) => !isPreview(q.name)).map((q) => q.medianMs)).toFixed(1)} ms`
        : `over: ${slow.map((q) => `${q.name} ${q.medianMs.toFixed(0)} ms`).join("; ")}`,
      slow.length === 0,
    ),
    judged(
      "refusals answered as the contract says",
      "every refused request (wrong key, rate-limited) and every accepted one answered as expected",
      unexpected.length === 0
        ? `${run.rejections.reduce((n, r) => n + r.requests, 0)} requests`
        : unexpected
            .map((r) => `${r.ingress} ${r.outcome}: ${r.asExpected}/${r.requests}`)
            .join("; "),
      unexpected.length === 0,
    ),
    reportedOnly(
      "the issue's 100,000 events/s",
      "100,000 events/s",
      `best arm ${best} events/s`,
      "not judged: README records it as out of reach on this hardware (the in-process ceiling A is below it)",
    ),
  ];
}

/** Whether an analytics question is the admin preview of a 30-day cut-off. */
const isPreview = (name: string): boolean => name.includes("now-30 d");

/** Prints the verdict's lines last, and exits 1 on a FAIL. */
function finish(verdict: Verdict): void {
  console.log("");
  for (const line of verdictLines(verdict)) console.log(line);
  if (verdict.status === "FAIL") process.exitCode = 1;
}

/** The batch-size part with this run's settings. */
function measureBatchSizes(dir: string): Promise<BatchSizeResult> {
  return measureBatchSize({
    dir,
    big: BATCH_BIG as number,
    small: BATCH_SMALL as number,
    eventsPerSecond: BATCH_EVENTS_PER_SECOND,
    // Quick (CI): about 25 s in all, three rounds per arm being the fewest
    // whose spread says something. Full: six rounds of a full step's length.
    rounds: QUICK ? 3 : 6,
    seconds: QUICK ? 2.5 : STEP_SECONDS,
    warmUpSeconds: QUICK ? 2.5 : 5,
    idleSeconds: QUICK ? 1 : 3,
    log: (line) => console.log(`batch size: ${line}`),
  });
}

/** What the run ran on, for the report. */
function machineOf(): {
  cpus: number;
  model: string;
  memoryGiB: number;
  node: string;
  pinned: boolean;
} {
  return {
    cpus: cpus().length,
    model: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    pinned: pinnable,
  };
}

/**
 * An arm's CPU seconds per million events: at its highest passed step, else
 * (a loaded machine's latency failed every step) at the highest step where it
 * acknowledged at least 95% of the offered events without an error, since CPU
 * per event does not depend on the latency bound.
 */
function cpuPerEventOf(arm: ArmResult): number {
  if (Number.isFinite(arm.cpuSecondsPerMillion)) return arm.cpuSecondsPerMillion;
  const kept = arm.steps.filter(
    (s) => s.load.errors === 0 && s.load.eventsPerSecond >= 0.95 * s.offeredEventsPerSecond,
  );
  return kept.at(-1)?.cpuSecondsPerMillion ?? Number.NaN;
}

/** CPU per event of an arm over B's, at the highest rate both passed. */
function cpuRatio(arm: ArmResult, bare: ArmResult): number {
  const rate = Math.min(arm.sustainedEventsPerSecond, bare.sustainedEventsPerSecond);
  const at = (r: ArmResult) =>
    r.steps.find((s) => s.offeredEventsPerSecond === rate && s.passed)?.cpuSecondsPerMillion ??
    Number.NaN;
  return at(arm) / at(bare);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
