/**
 * One row of the soak's time series: the service's memory and event loop,
 * what the generators had acknowledged and how fast, a scrape, and the
 * database, taken one after the other so that no probe times another.
 */

import { loadavg } from "node:os";
import type { ProbeWindow } from "../ingest/loop-probe.js";
import { cpuSecondsOf, rssMiB, type Server } from "../ingest/processes.js";
import { quantile } from "../ingest/quantile.js";
import { EVENTS_PER_BATCH } from "../ingest/workload.js";
import { timeHealth } from "./calls.js";
import type { RunningLoad } from "./load-process.js";
import { type DatabaseGlance, type Scrape, scrape } from "./probes.js";
import type { ServiceLog } from "./service-log.js";

/** Health requests per sample. */
const HEALTH_REQUESTS = 5;

/** One sample. Rates and latencies cover the time since the previous sample. */
export interface Sample {
  readonly elapsedSeconds: number;
  /** The service process's VmRSS, and its V8 heap in use and committed and external memory (the probe). */
  readonly rssMiB: number;
  readonly heapUsedMiB: number;
  readonly heapTotalMiB: number;
  readonly externalMiB: number;
  /** Heap in use after the last full collection in the window (NaN when none ran). */
  readonly liveHeapMiB: number;
  /** Full collections in the window. */
  readonly majorGcs: number;
  /** Event-loop delay measured in the service (the preloaded probe, 10 ms resolution). */
  readonly loopDelayP50Ms: number;
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  /** `GET /health` from outside, median and max of a few in a row. */
  readonly healthMedianMs: number;
  readonly healthMaxMs: number;
  readonly healthFailures: number;
  /** The service's CPU (user + system, % of one core), and per event acknowledged, µs. */
  readonly cpuPercent: number;
  readonly cpuMicrosPerEvent: number;
  /** Mean group-commit time, ms (the service's `mcp_metrics_commit_duration_seconds`). */
  readonly commitMeanMs: number;
  /** The machine's 1-minute load average: other work competes for the cores. */
  readonly machineLoad: number;
  /** Events acknowledged per second by all generators, and in all so far. */
  readonly eventsPerSecond: number;
  readonly ackedEvents: number;
  /** Ingest request latency over all generators (from when each request was due). */
  readonly requestP50Ms: number;
  readonly requestP99Ms: number;
  /** Requests failed so far, and HTTP/2 sessions lost (GOAWAY or error), all generators. */
  readonly loadErrors: number;
  readonly sessionsLost: number;
  readonly scrapeMs: number;
  readonly series: number;
  readonly scrapeBytes: number;
  readonly queueRows: number;
  /** Rows in `metrics`: ids issued minus rows deleted by retention so far. */
  readonly rows: number;
  /** Rows of the expired service still in `metrics`. */
  readonly expiredRows: number;
  /** Rows deleted by retention so far, all tables. */
  readonly deletedRows: number;
  readonly dbMiB: number;
  readonly walMiB: number;
}

/** What a sample reads from. */
export interface SampleSources {
  readonly server: Server;
  readonly scrapeUrl: string;
  readonly loads: readonly RunningLoad[];
  readonly glance: () => DatabaseGlance;
  readonly log: () => ServiceLog;
}

/** One sample taken, with what the soak keeps beside the row. */
export interface Taken {
  readonly sample: Sample;
  readonly scrape: Scrape;
  readonly loadErrorSamples: string[];
  /** The window's full collections: when (epoch ms) and the heap in use after. */
  readonly majorGcs: ProbeWindow["majorGcs"];
}

/** Where the previous sample left the cumulative figures. */
interface Marks {
  readonly at: number;
  readonly cpu: number;
  readonly commitSum: number;
  readonly commitCount: number;
  /** Per generator: its acknowledged requests and clock. */
  readonly loads: ReadonlyMap<string, { ok: number; seconds: number }>;
}

/**
 * A sampler: `take` reads everything once; rates and means cover the time
 * since the previous `take` (or since the sampler was made).
 */
export function createSampler(sources: SampleSources): {
  take(elapsedSeconds: number): Promise<Taken>;
} {
  const pid = sources.server.child.pid ?? 0;
  let marks: Marks = {
    at: performance.now(),
    cpu: cpuSecondsOf(pid),
    commitSum: 0,
    commitCount: 0,
    loads: new Map(),
  };
  return {
    async take(elapsedSeconds) {
      const { next, ...taken } = await takeSample(sources, elapsedSeconds, marks);
      marks = next;
      return taken;
    },
  };
}

async function takeSample(
  sources: SampleSources,
  elapsedSeconds: number,
  previous: Marks,
): Promise<Taken & { next: Marks }> {
  const { server } = sources;
  const pid = server.child.pid ?? 0;
  const health = await timeHealth(server.url, HEALTH_REQUESTS);
  const scraped = await scrape(sources.scrapeUrl);
  const probe = await server.window();
  const rss = rssMiB(pid);
  const cpu = cpuSecondsOf(pid);
  const at = performance.now();
  const db = sources.glance();
  const log = sources.log();

  const loads = new Map(previous.loads);
  let windowEvents = 0;
  let eventsPerSecond = 0;
  let ackedEvents = 0;
  let loadErrors = 0;
  let sessionsLost = 0;
  const latencies: number[] = [];
  const loadErrorSamples: string[] = [];
  for (const load of sources.loads) {
    const { latest, latenciesMs, errorSamples } = load.drain();
    latencies.push(...latenciesMs);
    loadErrorSamples.push(...errorSamples.map((e) => `${load.name}: ${e}`));
    if (latest === undefined) continue;
    const mark = loads.get(load.name) ?? { ok: 0, seconds: 0 };
    if (latest.seconds > mark.seconds) {
      eventsPerSecond +=
        ((latest.ok - mark.ok) * EVENTS_PER_BATCH) / (latest.seconds - mark.seconds);
    }
    windowEvents += (latest.ok - mark.ok) * EVENTS_PER_BATCH;
    loads.set(load.name, { ok: latest.ok, seconds: latest.seconds });
    ackedEvents += latest.ok * EVENTS_PER_BATCH;
    loadErrors += latest.errors;
    sessionsLost += latest.sessionsLost;
  }
  latencies.sort((a, b) => a - b);
  const deletedRows = Object.values(log.deletedByTable).reduce((s, n) => s + n, 0);
  const sample: Sample = {
    elapsedSeconds,
    rssMiB: rss,
    heapUsedMiB: probe.heapUsedMiB,
    heapTotalMiB: probe.heapTotalMiB,
    externalMiB: probe.externalMiB,
    liveHeapMiB: probe.majorGcs.at(-1)?.heapUsedMiB ?? Number.NaN,
    majorGcs: probe.majorGcs.length,
    loopDelayP50Ms: probe.loopDelayP50Ms,
    loopDelayP99Ms: probe.loopDelayP99Ms,
    loopDelayMaxMs: probe.loopDelayMaxMs,
    healthMedianMs: health.medianMs,
    healthMaxMs: health.maxMs,
    healthFailures: health.failures,
    cpuPercent: ((cpu - previous.cpu) / ((at - previous.at) / 1000)) * 100,
    cpuMicrosPerEvent: windowEvents > 0 ? ((cpu - previous.cpu) * 1e6) / windowEvents : Number.NaN,
    commitMeanMs:
      scraped.commitCount > previous.commitCount
        ? ((scraped.commitSeconds - previous.commitSum) * 1000) /
          (scraped.commitCount - previous.commitCount)
        : Number.NaN,
    machineLoad: loadavg()[0] ?? Number.NaN,
    eventsPerSecond,
    ackedEvents,
    requestP50Ms: quantile(latencies, 0.5),
    requestP99Ms: quantile(latencies, 0.99),
    loadErrors,
    sessionsLost,
    scrapeMs: scraped.ms,
    series: scraped.series,
    scrapeBytes: scraped.bytes,
    queueRows: scraped.queueRows,
    rows: db.metricsIdsIssued - (log.deletedByTable.metrics ?? 0),
    expiredRows: db.expiredRows,
    deletedRows,
    dbMiB: db.dbMiB,
    walMiB: db.walMiB,
  };
  return {
    sample,
    scrape: scraped,
    loadErrorSamples,
    majorGcs: probe.majorGcs,
    next: { at, cpu, commitSum: scraped.commitSeconds, commitCount: scraped.commitCount, loads },
  };
}
