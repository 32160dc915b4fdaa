/**
 * The soak: the service as its own process, fed at half its benchmarked
 * capacity for 10 minutes or more, scraped, swept by retention, and watched.
 *
 * - Load: the ingest bench's generators (batches of 100, open loop), one per
 *   share of the mix ({@link MIX}: JSON, Connect, unary gRPC, the client
 *   stream, and 5% of events stamped 100 days back under their own service,
 *   which retention must delete). Default rate: half of what the newest full
 *   `bench/results/ingest-*.json` says the mix sustains.
 * - Retention: scheduled sweeps every 30 s (10 s in quick mode) and an admin
 *   cleanup every minute (15 s).
 * - Every 5 s (2 s): RSS from /proc, the event-loop delay from the bench's
 *   preloaded probe (the service exports no loop-delay metric), `GET /health`
 *   timed from outside, a Prometheus scrape (time, series, the service's own
 *   outcome counters), the database's rows, and two invalid batches.
 * - At the end: the service stopped with SIGTERM, every table counted.
 *
 * It fails (exit 1) when RSS or the loop delay is unbounded or grows after
 * warm-up (a least-squares slope over the second half, held to 10% of its
 * mean per 10 minutes and to twice its standard error; the same for RSS's
 * parts, native memory and the heap left after full collections), when the
 * load was not sustained, when any request failed other than the deliberate
 * rejections, or when an acknowledged event is missing from the database.
 * Results: `soak-<timestamp>.{json,md,svg}` in bench/results (quick runs,
 * 45 s of load: bench/results/quick).
 *
 * Usage: npm run test:soak [-- --quick] [-- --minutes N] [-- --rate EVENTS_PER_S] [-- --out DIR]
 *        [-- --capacity-from DIR]  (an ingest bench's result of this run, full or quick: the
 *                                   rate is half the lower of its capacity and the committed one)
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { freePort, KEY, pinnable, startServer } from "./ingest/processes.js";
import { quantile } from "./ingest/quantile.js";
import { buildWorkload } from "./ingest/workload.js";
import {
  type AdminCleanup,
  adminCleanup,
  closeCalls,
  type DeliberateOutcome,
  sendDeliberate,
} from "./soak/calls.js";
import { defaultRate, MIX, sameRunRate } from "./soak/capacity.js";
import { startLoad } from "./soak/load-process.js";
import { countBatchIds, countRows, openGlance, type Scrape } from "./soak/probes.js";
import { sampleTable, soakChart, trendTable, verdictTable } from "./soak/report.js";
import { createSampler, type Sample } from "./soak/sample.js";
import { watchServiceLog } from "./soak/service-log.js";
import { verdictsOf } from "./soak/verdicts.js";
import { verdictLines, verdictOf } from "./verdict.js";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    minutes: { type: "string" },
    rate: { type: "string" },
    out: { type: "string" },
    "capacity-from": { type: "string" },
  },
});
const QUICK = args.quick === true;
const MINUTES = Number(args.minutes ?? 10);
/** The load's length: a quick run fits in about a minute with start-up and the report. */
const LOAD_SECONDS = QUICK ? 45 : MINUTES * 60;
const SAMPLE_EVERY_SECONDS = QUICK ? 2 : 5;
const ADMIN_CLEANUP_EVERY_SECONDS = QUICK ? 15 : 60;
const SWEEP_START_DELAY_MS = QUICK ? 5_000 : 15_000;
const SWEEP_INTERVAL_MS = QUICK ? 10_000 : 30_000;
/** How long the service remembers batch ids here (a day by default): expired ids are pruned each minute. */
const IDEMPOTENCY_WINDOW_SECONDS = 120;
const OUT = resolve(args.out ?? (QUICK ? "bench/results/quick" : "bench/results"));
const DEFAULT_RATE =
  args["capacity-from"] === undefined
    ? defaultRate(resolve("bench/results"))
    : sameRunRate(resolve("bench/results"), resolve(args["capacity-from"]));
const RATE = args.rate === undefined ? DEFAULT_RATE.eventsPerSecond : Number(args.rate);

/** The service of the events retention deletes, with its own key (keys are bound to services). */
const EXPIRED_SERVICE = "soak-expired";
const EXPIRED_KEY = "soak-expired-key-0123456789abcdef";
const ADMIN_KEY = "soak-admin-key-0123456789abcdef01";
const CURRENT_SERVICE = "bench-gateway";
/** How old the expired events are: past the default 90-day retention. */
const EXPIRED_AGE_DAYS = 100;

/** What to end if the soak fails on the way, so that no process outlives it. */
const onFailure: (() => void)[] = [];

async function main(): Promise<void> {
  if (!(Number.isFinite(MINUTES) && MINUTES > 0 && Number.isFinite(RATE) && RATE >= 100)) {
    throw new Error("--minutes must be positive and --rate at least 100 events/s");
  }
  const started = new Date();
  const dir = mkdtempSync(join(tmpdir(), "mcp-metrics-soak-"));
  onFailure.push(() => rmSync(dir, { recursive: true, force: true }));
  const prometheusPort = await freePort();
  console.log(
    `soak (${QUICK ? "quick" : `${MINUTES} min`}): ${RATE} events/s` +
      (args.rate === undefined
        ? ` (half of ${Math.round(DEFAULT_RATE.mixCapacity)}, the mix's capacity from ${DEFAULT_RATE.source})`
        : "") +
      `; mix ${MIX.map((p) => `${p.name} ${p.share * 100}%`).join(", ")}; ${cpus().length} cores${pinnable ? "" : " (not pinned)"}`,
  );
  const server = await startServer("soak", "json", dir, {
    OTEL_PROMETHEUS_PORT: String(prometheusPort),
    METRICS_RETENTION_ENABLED: "true",
    METRICS_RETENTION_START_DELAY_MS: String(SWEEP_START_DELAY_MS),
    METRICS_RETENTION_INTERVAL_MS: String(SWEEP_INTERVAL_MS),
    METRICS_API_KEY_SOAK_EXPIRED: EXPIRED_KEY,
    METRICS_ADMIN_API_KEY: ADMIN_KEY,
    // Short, so that expired batch ids are pruned during the run too.
    METRICS_IDEMPOTENCY_WINDOW_SECONDS: String(IDEMPOTENCY_WINDOW_SECONDS),
    BENCH_PROBE_GC: "1",
  });
  onFailure.push(() => {
    if (server.child.exitCode === null) server.child.kill("SIGTERM");
  });
  const exitCode = new Promise<number | null>((r) => server.child.once("exit", (code) => r(code)));
  const log = watchServiceLog(server.child.stdout as Readable);
  const glance = openGlance(server.dbPath, EXPIRED_SERVICE);
  const scrapeUrl = `http://127.0.0.1:${prometheusPort}/metrics`;

  const expiredStamp = Math.floor(Date.now() / 1000) - EXPIRED_AGE_DAYS * 86_400;
  const workloadOf = (expired: boolean) =>
    expired ? { service: EXPIRED_SERVICE, timestampSeconds: expiredStamp } : undefined;
  const loads = MIX.map((part) => {
    const workload = workloadOf(part.expired);
    return startLoad(part.name, {
      ingress: part.ingress,
      url: server.url,
      key: part.expired ? EXPIRED_KEY : KEY,
      eventsPerSecond: RATE * part.share,
      seconds: LOAD_SECONDS,
      // A batch id on every request, as the generated clients send.
      batchIds: true,
      ...(workload === undefined ? {} : { workload }),
    });
  });
  for (const load of loads) onFailure.push(load.kill);
  const results = Promise.all(loads.map((l) => l.done));
  // A generator that dies ends the soak at the next sample, not at the end.
  let loadFailure: unknown;
  results.catch((error: unknown) => {
    loadFailure = error;
  });
  const sampler = createSampler({
    server,
    scrapeUrl,
    loads,
    glance: glance.glance,
    log: log.snapshot,
  });
  const t0 = performance.now();
  const t0Epoch = Date.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  /** The service's full collections: when, and the live heap after each. */
  const gcs: { elapsedSeconds: number; heapUsedMiB: number }[] = [];

  const cleanups: AdminCleanup[] = [];
  let cleanupRunning: Promise<void> = Promise.resolve();
  let nextCleanup = ADMIN_CLEANUP_EVERY_SECONDS;
  const samples: Sample[] = [];
  const deliberate: DeliberateOutcome[] = [];
  let lastScrape: Scrape | undefined;
  const loadErrorSamples: string[] = [];
  for (let k = 1; k * SAMPLE_EVERY_SECONDS <= LOAD_SECONDS - 0.5; k++) {
    await sleep(Math.max(0, k * SAMPLE_EVERY_SECONDS - elapsed()) * 1000);
    if (loadFailure !== undefined) throw loadFailure;
    const taken = await sampler.take(elapsed());
    const s = taken.sample;
    samples.push(s);
    for (const gc of taken.majorGcs) {
      gcs.push({ elapsedSeconds: (gc.atEpochMs - t0Epoch) / 1000, heapUsedMiB: gc.heapUsedMiB });
    }
    lastScrape = taken.scrape;
    loadErrorSamples.push(
      ...taken.loadErrorSamples.slice(0, Math.max(0, 5 - loadErrorSamples.length)),
    );
    console.log(
      `${s.elapsedSeconds.toFixed(0).padStart(5)} s  RSS ${s.rssMiB.toFixed(1)} MiB (heap ${s.heapUsedMiB.toFixed(1)}/${s.heapTotalMiB.toFixed(1)}, live ${s.liveHeapMiB.toFixed(1)})  ` +
        `loop p50/p99 ${s.loopDelayP50Ms.toFixed(1)}/${s.loopDelayP99Ms.toFixed(1)} ms  health ${s.healthMedianMs.toFixed(2)} ms  ` +
        `CPU ${s.cpuPercent.toFixed(0)}% (${s.cpuMicrosPerEvent.toFixed(1)} µs/event, commit ${s.commitMeanMs.toFixed(1)} ms)  load ${s.machineLoad.toFixed(1)}  ` +
        `${Math.round(s.eventsPerSecond)} ev/s (req p99 ${s.requestP99Ms.toFixed(1)} ms, errors ${s.loadErrors}, sessions lost ${s.sessionsLost})  ` +
        `scrape ${s.scrapeMs.toFixed(1)} ms/${s.series} series  rows ${s.rows} (expired ${s.expiredRows}, deleted ${s.deletedRows})  WAL ${s.walMiB.toFixed(1)} MiB`,
    );
    for (const e of taken.loadErrorSamples.slice(0, 3)) console.log(`        load error: ${e}`);
    deliberate.push(...(await sendDeliberate(server.url, EXPIRED_KEY, EXPIRED_SERVICE)));
    if (s.elapsedSeconds >= nextCleanup) {
      nextCleanup += ADMIN_CLEANUP_EVERY_SECONDS;
      const at = s.elapsedSeconds;
      cleanupRunning = cleanupRunning.then(async () => {
        cleanups.push(await adminCleanup(server.url, ADMIN_KEY, at));
      });
    }
  }
  const loadResults = await results;
  await cleanupRunning;
  // The last word on retention: whatever expired arrived after the last sweep.
  cleanups.push(await adminCleanup(server.url, ADMIN_KEY, elapsed()));
  const final = await sampler.take(elapsed());
  lastScrape = final.scrape;
  glance.close();
  closeCalls();
  await server.stop();
  const code = await exitCode;
  await log.ended;
  const rows = countRows(server.dbPath);
  const batchIds = countBatchIds(server.dbPath);
  rmSync(dir, { recursive: true, force: true });

  const outcome = {
    quick: QUICK,
    offeredEventsPerSecond: RATE,
    loadSeconds: LOAD_SECONDS,
    samples,
    gcs,
    parts: MIX.map((part, i) => ({
      part,
      result: loadResults[i] as (typeof loadResults)[number],
      workload: buildWorkload(64, 42, workloadOf(part.expired)),
    })),
    deliberate,
    cleanups,
    batchIds: { recorded: batchIds, windowSeconds: IDEMPOTENCY_WINDOW_SECONDS },
    requestsByCode: lastScrape?.requestsByCode ?? {},
    storageErrors: lastScrape?.storageErrors ?? Number.NaN,
    log: log.snapshot(),
    exitCode: code,
    rows,
    currentService: CURRENT_SERVICE,
    expiredService: EXPIRED_SERVICE,
  };
  const { verdicts, trends } = verdictsOf(outcome);
  // One verdict line, as every bench prints it (bench/verdict.ts): a quick run
  // judges every check but the trends and the delay bound, which it reports.
  const verdict = verdictOf(
    "soak",
    QUICK,
    verdicts.map((v) => ({
      name: v.name,
      measured: v.detail,
      status: v.status,
      ...(v.reason === undefined ? {} : { reason: v.reason }),
    })),
  );
  const passed = verdict.status === "PASS";

  const report = {
    benchmark: "soak",
    commit: commitOf(),
    mode: QUICK ? "quick" : "full",
    started: started.toISOString(),
    passed,
    verdict: { status: verdict.status, line: verdict.line },
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? "unknown",
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      pinned: pinnable,
    },
    settings: {
      eventsPerSecond: RATE,
      defaultRate: DEFAULT_RATE,
      mix: MIX,
      loadSeconds: LOAD_SECONDS,
      sampleEverySeconds: SAMPLE_EVERY_SECONDS,
      adminCleanupEverySeconds: ADMIN_CLEANUP_EVERY_SECONDS,
      sweepStartDelayMs: SWEEP_START_DELAY_MS,
      sweepIntervalMs: SWEEP_INTERVAL_MS,
      expiredAgeDays: EXPIRED_AGE_DAYS,
    },
    verdicts,
    trends,
    loads: MIX.map((part, i) => ({
      name: part.name,
      ingress: part.ingress,
      result: loadResults[i],
    })),
    cleanups,
    deliberate: {
      sent: deliberate.length,
      notAsExpected: deliberate.filter((d) => !d.asExpected),
    },
    serviceLog: outcome.log,
    requestsByCode: outcome.requestsByCode,
    rows,
    samples,
    gcs,
  };
  mkdirSync(OUT, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  const base = join(OUT, `soak-${stamp}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
  const summary = [
    `Soak (${QUICK ? "quick" : `${MINUTES} min`}) at ${RATE} events/s, ${started.toISOString()}, commit ${report.commit}: **${passed ? "passed" : "FAILED"}**.`,
    `**${verdict.line}**`,
    `Mix: ${MIX.map((p) => `${p.name} ${p.share * 100}%`).join(", ")}; batches of 100; trends fitted from ${trends.fromSeconds.toFixed(0)} s (the second half).`,
    `Loop delay is the service's own (a preloaded \`monitorEventLoopDelay\` probe, 10 ms resolution, the resolution subtracted); "health ms" is \`GET /health\` timed from outside. ` +
      `Longest single stall: ${Math.max(...samples.map((s) => s.loopDelayMaxMs)).toFixed(0)} ms; a scrape of ${samples.at(-1)?.series} series (${((samples.at(-1)?.scrapeBytes ?? 0) / 2 ** 20).toFixed(1)} MiB) takes ${quantile(
        samples.map((s) => s.scrapeMs).sort((a, b) => a - b),
        0.5,
      ).toFixed(0)} ms (median).`,
  ].join("\n\n");
  const markdown = [
    summary,
    verdictTable(verdicts),
    `Trends after warm-up (from ${trends.fromSeconds.toFixed(0)} s, over ${trends.windowSeconds.toFixed(0)} s${QUICK ? "; quick run: limits scaled to the window" : ""}):`,
    trendTable(trends.fits),
    sampleTable(samples),
  ].join("\n\n");
  writeFileSync(`${base}.md`, `${markdown}\n`);
  writeFileSync(
    `${base}.svg`,
    await soakChart(
      samples,
      `Soak at ${RATE} events/s (${QUICK ? "quick" : `${MINUTES} min`}, ${stamp.slice(0, 10)})`,
    ),
  );

  console.log(`\n${verdictTable(verdicts)}\n`);
  if (loadErrorSamples.length > 0) console.log(`load errors: ${loadErrorSamples.join("; ")}`);
  console.log(`results: ${base}.{json,md,svg}`);
  console.log("");
  for (const line of verdictLines(verdict)) console.log(line);
  process.exit(passed ? 0 : 1);
}

/** The checkout's commit, so that a committed result says what it measured. */
function commitOf(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

// Ctrl-C reaches the service and the generators too (one process group); the
// soak only has to remove its database.
process.once("SIGINT", () => {
  for (const end of onFailure.reverse()) end();
  process.exit(130);
});

main().catch((error: unknown) => {
  console.error(error);
  for (const end of onFailure.reverse()) end();
  process.exit(1);
});
