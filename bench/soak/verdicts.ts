/**
 * The soak's checks: memory and event-loop delay bounded and not growing
 * after warm-up, the load sustained, no failure other than the deliberate
 * ones, retention really deleting, and every acknowledged event stored.
 */
import type { LoadResult } from "../ingest/load.js";
import { quantile } from "../ingest/quantile.js";
import type { Workload } from "../ingest/workload.js";
import { EVENTS_PER_BATCH } from "../ingest/workload.js";
import type { AdminCleanup, DeliberateOutcome } from "./calls.js";
import type { MixPart } from "./capacity.js";
import type { Verdict } from "./report.js";
import type { Sample } from "./sample.js";
import type { ServiceLog } from "./service-log.js";
import { fitTrend, HORIZON_SECONDS, type Trend } from "./trend.js";

/** Most RSS the service may reach at half its capacity, MiB (idle ~80, the bench's peaks 135-190). */
export const RSS_LIMIT_MIB = 400;
/** Growth allowed per 10 minutes after warm-up, as a fraction of the mean. */
export const GROWTH_FRACTION = 0.1;
/** Loop-delay growth allowed per 10 minutes at least, ms: below it, 10% of a few ms is noise. */
export const LOOP_GROWTH_FLOOR_MS = 2;
/** The loop-delay p99 that 95% of the samples must stay under, ms. */
export const LOOP_P99_LIMIT_MS = 100;
/** Share of the offered rate the generators must have had acknowledged. */
export const SUSTAINED_FRACTION = 0.95;
/**
 * Codes of `mcp_metrics_requests_total` the soak causes: the RPCs' `ok` and
 * the deliberate `invalid_argument`; the JSON route counts HTTP statuses, and
 * answers its invalid batch 200 too.
 */
const EXPECTED_CODES = new Set(["ok", "invalid_argument", "200"]);

/** The event tables typed events also go to, by legacy type. */
const TABLE_OF_TYPE: Readonly<Record<string, string>> = {
  auth_request: "auth_metrics",
  tool_execution: "tool_metrics",
  tool_discovery: "discovery_metrics",
};
const TABLES = ["metrics", "auth_metrics", "tool_metrics", "discovery_metrics"];

/** What the checks look at. */
export interface SoakOutcome {
  readonly quick: boolean;
  readonly offeredEventsPerSecond: number;
  readonly loadSeconds: number;
  readonly samples: readonly Sample[];
  /** The service's full collections, and the heap in use after each. */
  readonly gcs: readonly { readonly elapsedSeconds: number; readonly heapUsedMiB: number }[];
  readonly parts: readonly { part: MixPart; result: LoadResult; workload: Workload }[];
  readonly deliberate: readonly DeliberateOutcome[];
  readonly cleanups: readonly AdminCleanup[];
  /** Batch ids in `ingest_batches` once the service stopped, and how long it kept them. */
  readonly batchIds: { readonly recorded: number; readonly windowSeconds: number };
  readonly requestsByCode: Readonly<Record<string, number>>;
  readonly storageErrors: number;
  readonly log: ServiceLog;
  readonly exitCode: number | null;
  /** Rows per table and service once the service stopped. */
  readonly rows: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly currentService: string;
  readonly expiredService: string;
}

/**
 * The trends after warm-up (the second half of the run). A quick run's half is
 * under a minute: one GC cycle extrapolated to 10 minutes would look like a
 * leak, so there the growth within the window itself is held to the limit.
 */
export function trendsOf(
  samples: readonly Sample[],
  gcs: SoakOutcome["gcs"],
  loadSeconds: number,
  quick: boolean,
) {
  const late = samples.filter((s) => s.elapsedSeconds >= loadSeconds / 2);
  const windowSeconds = Math.max(
    1,
    (late.at(-1)?.elapsedSeconds ?? 0) - (late[0]?.elapsedSeconds ?? 0),
  );
  const scale = quick ? HORIZON_SECONDS / windowSeconds : 1;
  const fitted = (
    xs: readonly number[],
    ys: readonly number[],
    limit: (mean: number) => number,
  ) => {
    const finite = ys.filter(Number.isFinite);
    const mean = finite.reduce((a, b) => a + b, 0) / Math.max(1, finite.length);
    return fitTrend(xs, ys, limit(mean) * scale);
  };
  const xs = late.map((s) => s.elapsedSeconds);
  const trendOf = (read: (s: Sample) => number, limit: (mean: number) => number): Trend =>
    fitted(xs, late.map(read), limit);
  const lateGcs = gcs.filter((g) => g.elapsedSeconds >= loadSeconds / 2);
  return {
    fromSeconds: late[0]?.elapsedSeconds ?? Number.NaN,
    windowSeconds,
    fits: {
      native: trendOf(
        (s) => s.rssMiB - s.heapTotalMiB,
        (m) => GROWTH_FRACTION * m,
      ),
      liveHeap: fitted(
        lateGcs.map((g) => g.elapsedSeconds),
        lateGcs.map((g) => g.heapUsedMiB),
        (m) => GROWTH_FRACTION * m,
      ),
      rss: trendOf(
        (s) => s.rssMiB,
        (m) => GROWTH_FRACTION * m,
      ),
      heapUsed: trendOf(
        (s) => s.heapUsedMiB,
        (m) => GROWTH_FRACTION * m,
      ),
      loopDelayP99: trendOf(
        (s) => s.loopDelayP99Ms,
        (m) => Math.max(GROWTH_FRACTION * m, LOOP_GROWTH_FLOOR_MS),
      ),
      healthMedian: trendOf(
        (s) => s.healthMedianMs,
        (m) => Math.max(GROWTH_FRACTION * m, 1),
      ),
      cpuMicrosPerEvent: trendOf(
        (s) => s.cpuMicrosPerEvent,
        (m) => GROWTH_FRACTION * m,
      ),
      commitMeanMs: trendOf(
        (s) => s.commitMeanMs,
        (m) => GROWTH_FRACTION * m,
      ),
      scrapeMs: trendOf(
        (s) => s.scrapeMs,
        (m) => GROWTH_FRACTION * m,
      ),
      series: trendOf(
        (s) => s.series,
        (m) => GROWTH_FRACTION * m,
      ),
    },
  };
}

const describe = (t: Trend, unit: string) =>
  `${t.growthPerHorizon >= 0 ? "+" : ""}${t.growthPerHorizon.toFixed(2)} ${unit} per 10 min ` +
  `(± ${(2 * t.slopeStandardError * HORIZON_SECONDS).toFixed(2)}, residual autocorrelation ${t.residualAutocorrelation.toFixed(2)}, limit ${t.limitPerHorizon.toFixed(2)}, mean ${t.mean.toFixed(2)}, ${t.points} samples)`;

/** Rows each table should hold for `batches` batches of `workload` (sent as `batch % 64`). */
function expectedRows(workload: Workload, batches: number): Record<string, number> {
  const perBatch = workload.events.map((events) => {
    const counts: Record<string, number> = { metrics: events.length };
    for (const e of events) {
      const table = TABLE_OF_TYPE[String(e.type)];
      if (table !== undefined) counts[table] = (counts[table] ?? 0) + 1;
    }
    return counts;
  });
  const total: Record<string, number> = Object.fromEntries(TABLES.map((t) => [t, 0]));
  for (let b = 0; b < batches; b++) {
    const counts = perBatch[b % perBatch.length] ?? {};
    for (const t of TABLES) total[t] = (total[t] ?? 0) + (counts[t] ?? 0);
  }
  return total;
}

/** Every check, in the order the report lists them. */
export function verdictsOf(outcome: SoakOutcome): {
  verdicts: Verdict[];
  trends: ReturnType<typeof trendsOf>;
} {
  const { samples, log } = outcome;
  const trends = trendsOf(samples, outcome.gcs, outcome.loadSeconds, outcome.quick);
  const verdicts: Verdict[] = [];
  const add = (name: string, passed: boolean, detail: string) =>
    verdicts.push({ name, passed, status: passed ? "PASS" : "FAIL", detail });
  // A trend needs the long run, and an absolute latency bound measures the
  // machine as much as the service: a quick run (CI, on a shared 2-core
  // machine) reports both without failing on them, and still fails on every
  // other check. (The event-loop bound: a commit whose quick run passed it in
  // CI gave a p99 of 158 ms on another machine, at the same half capacity.)
  const addFullRunOnly = (name: string, passed: boolean, detail: string, why: string) =>
    outcome.quick
      ? verdicts.push({
          name,
          passed: true,
          status: "REPORTED",
          reason: `not judged in quick mode: ${why}${passed ? "" : "; a full run would FAIL it"}`,
          detail,
        })
      : add(name, passed, detail);
  const TREND = "45 s cannot tell a trend on a shared machine";

  const maxRss = Math.max(...samples.map((s) => s.rssMiB));
  add(
    "RSS bounded",
    maxRss <= RSS_LIMIT_MIB,
    `max ${maxRss.toFixed(1)} MiB (limit ${RSS_LIMIT_MIB})`,
  );
  // RSS is V8's committed heap plus native memory; its two parts are judged
  // too, the heap by what survives a full collection (the sawtooth between
  // collections is the collector's, not a leak).
  addFullRunOnly(
    "RSS: no growth trend after warm-up",
    !trends.fits.rss.growing,
    describe(trends.fits.rss, "MiB"),
    TREND,
  );
  addFullRunOnly(
    "Native memory: no growth trend after warm-up",
    !trends.fits.native.growing,
    `RSS minus V8's committed heap ${describe(trends.fits.native, "MiB")}`,
    TREND,
  );
  addFullRunOnly(
    "Live heap: no growth trend after warm-up",
    trends.fits.liveHeap.points >= 3 && !trends.fits.liveHeap.growing,
    `heap after each full collection ${describe(trends.fits.liveHeap, "MiB")}`,
    TREND,
  );
  const p99s = samples
    .map((s) => s.loopDelayP99Ms)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  const p99Of95 = quantile(p99s, 0.95);
  addFullRunOnly(
    "Event-loop delay bounded",
    p99s.length === samples.length && p99Of95 <= LOOP_P99_LIMIT_MS,
    `p99 under ${p99Of95.toFixed(1)} ms in 95% of samples (limit ${LOOP_P99_LIMIT_MS}), worst sample's p99 ${(p99s.at(-1) ?? Number.NaN).toFixed(1)} ms` +
      (p99s.length === samples.length
        ? ""
        : `; the probe did not answer ${samples.length - p99s.length} times`),
    "an absolute delay on a shared two-core machine measures the machine (a quick run that passed under 100 ms in CI gave 158 ms on another machine)",
  );
  addFullRunOnly(
    "Event-loop delay: no growth trend after warm-up",
    !trends.fits.loopDelayP99.growing,
    `p99 ${describe(trends.fits.loopDelayP99, "ms")}`,
    TREND,
  );

  const acked = outcome.parts.reduce((s, p) => s + p.result.ok * EVENTS_PER_BATCH, 0);
  const achieved = acked / outcome.loadSeconds;
  add(
    "Load sustained",
    achieved >= SUSTAINED_FRACTION * outcome.offeredEventsPerSecond,
    `${Math.round(achieved)} of ${outcome.offeredEventsPerSecond} events/s acknowledged (at least ${SUSTAINED_FRACTION * 100}%)`,
  );

  // Every request carried a batch id: the ledger holds those of the last
  // window (plus up to a minute until the next prune), never the whole run.
  const batchesPerSecond = achieved / EVENTS_PER_BATCH;
  const { recorded, windowSeconds } = outcome.batchIds;
  const ledgerBound = Math.ceil(batchesPerSecond * (windowSeconds + 120));
  const sent = outcome.parts.reduce((s, p) => s + p.result.ok, 0);
  add(
    "Batch ids recorded and pruned",
    recorded > 0 && recorded <= Math.min(ledgerBound, sent),
    `${recorded} ids in ingest_batches at the end of ${sent} batches (window ${windowSeconds} s; bound ${ledgerBound})`,
  );

  const failed = outcome.parts.filter((p) => p.result.errors > 0 || p.result.sessionsLost > 0);
  add(
    "No ingest request failed",
    failed.length === 0,
    failed.length === 0
      ? `${outcome.parts.reduce((s, p) => s + p.result.ok, 0)} requests, all acknowledged; no HTTP/2 session lost`
      : failed
          .map(
            (p) =>
              `${p.part.name}: ${p.result.errors} failed, ${p.result.sessionsLost} HTTP/2 sessions lost, e.g. ${p.result.errorSamples[0]}`,
          )
          .join("; "),
  );
  const wrong = outcome.deliberate.filter((d) => !d.asExpected);
  add(
    "Deliberate rejections answered as the contract says",
    outcome.deliberate.length > 0 && wrong.length === 0,
    wrong.length === 0
      ? `${outcome.deliberate.length} invalid batches (legacy JSON 200 rejected, Connect 400 invalid_argument)`
      : `${wrong.length} of ${outcome.deliberate.length} not, e.g. ${wrong[0]?.call}: ${wrong[0]?.answer}`,
  );
  const unexpected = Object.entries(outcome.requestsByCode).filter(
    ([code, n]) => !EXPECTED_CODES.has(code) && n > 0,
  );
  add(
    "Service counted no unexpected outcome",
    unexpected.length === 0 && outcome.storageErrors === 0,
    `mcp_metrics_requests_total by code: ${JSON.stringify(outcome.requestsByCode)}; storage errors ${outcome.storageErrors}`,
  );
  add(
    "No error in the service's log",
    log.errorLines === 0,
    log.errorLines === 0
      ? "none at level error or above"
      : `${log.errorLines} lines, e.g. ${log.errorSamples[0]}`,
  );
  const healthFailures = samples.reduce((s, x) => s + x.healthFailures, 0);
  const badCleanups = outcome.cleanups.filter((c) => c.status !== 200);
  add(
    "Health and admin calls answered",
    healthFailures === 0 && badCleanups.length === 0,
    `GET /health failures ${healthFailures}; admin cleanups ${outcome.cleanups.length}, not 200: ${badCleanups.length}` +
      (badCleanups[0] === undefined ? "" : ` (${badCleanups[0].status} ${badCleanups[0].answer})`),
  );
  add("Clean shutdown", outcome.exitCode === 0, `exit code ${outcome.exitCode} after SIGTERM`);

  const current = outcome.parts.filter((p) => !p.part.expired);
  const expired = outcome.parts.filter((p) => p.part.expired);
  const remainingExpired = TABLES.map((t) => outcome.rows[t]?.[outcome.expiredService] ?? 0);
  add(
    "Retention swept the expired events",
    log.sweepsThatDeleted > 0 && remainingExpired.every((n) => n === 0),
    `${log.sweeps} scheduled sweeps (${log.sweepsThatDeleted} of them deleted rows, longest ${log.longestSweepSeconds.toFixed(2)} s), ` +
      `${outcome.cleanups.length} admin cleanups; deleted per table ${JSON.stringify(log.deletedByTable)}; expired rows left after the last cleanup ${remainingExpired.reduce((a, b) => a + b, 0)}`,
  );

  // Stored against acknowledged. With no failure every batch sent was
  // acknowledged, so each table's count is known exactly; otherwise only
  // `metrics` can be held to the acknowledged events (a failed request may
  // still have been committed).
  const exact = failed.length === 0;
  const sumExpected = (parts: typeof current) => {
    const total: Record<string, number> = Object.fromEntries(TABLES.map((t) => [t, 0]));
    for (const p of parts) {
      const rows = expectedRows(p.workload, p.result.ok);
      for (const t of TABLES) total[t] = (total[t] ?? 0) + (rows[t] ?? 0);
    }
    return total;
  };
  const wantCurrent = sumExpected(current);
  const wantExpired = sumExpected(expired);
  const mismatches: string[] = [];
  for (const t of TABLES) {
    const stored = outcome.rows[t]?.[outcome.currentService] ?? 0;
    const accounted =
      (outcome.rows[t]?.[outcome.expiredService] ?? 0) + (log.deletedByTable[t] ?? 0);
    const want = [wantCurrent[t] ?? 0, wantExpired[t] ?? 0];
    const ok = exact
      ? stored === want[0] && accounted === want[1]
      : t !== "metrics" || (stored >= (want[0] ?? 0) && accounted >= (want[1] ?? 0));
    if (!ok)
      mismatches.push(
        `${t}: current ${stored} (want ${want[0]}), expired stored + deleted ${accounted} (want ${want[1]})`,
      );
  }
  const otherServices = TABLES.flatMap((t) =>
    Object.keys(outcome.rows[t] ?? {})
      .filter((s) => s !== outcome.currentService && s !== outcome.expiredService)
      .map((s) => `${t}/${s}`),
  );
  if (otherServices.length > 0)
    mismatches.push(`rows of unexpected services: ${otherServices.join(", ")}`);
  add(
    "Every acknowledged event stored",
    mismatches.length === 0,
    mismatches.length === 0
      ? `${wantCurrent.metrics} current events in metrics (+ typed tables) as acknowledged; ${wantExpired.metrics} expired events all stored, then deleted by retention${exact ? "" : " (only metrics checked: some requests failed)"}`
      : mismatches.join("; "),
  );
  return { verdicts, trends };
}
