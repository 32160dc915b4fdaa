/**
 * Batch size: whether a big legacy batch costs the service more per event than
 * a small one. The gateway's nginx flushes up to 1,024 tool calls in one
 * `POST /metrics`; the generated clients send 100. Both arms send batches
 * shaped like nginx's flush (legacy JSON, service `nginx`) at the same events
 * per second, a rate the service sustains with either size, to one service
 * process started for this part alone.
 *
 * The arms are measured in interleaved rounds, A/B then B/A and so on, so
 * that machine noise and the server's drift (its database growing, the JIT,
 * garbage one round leaves to the next) fall on both arms, and neither
 * always follows the other. Per round: the server's CPU (user + system, from
 * the loop probe's `process.cpuUsage()`, in µs) less its idle background over
 * as long, per event acknowledged; and the latency per request (p50, p99,
 * from when each request was due: the load is open loop).
 *
 * Each round pairs the two arms measured back to back; its ratio is the big
 * arm's CPU per event over the small arm's. The ratio reported is the median
 * of the rounds' ratios, and the noise margin their spread, (max − min) /
 * median: how much the measured ratio itself differs between rounds of one
 * run. Not the spread of one arm's own rounds: that also holds the server's
 * drift over the run (in a trial on a machine busy with other work, one
 * arm's CPU per event fell by a third from the first round to the third),
 * which pairing cancels; it is reported beside. PASS when the ratio is at most 1 + the noise margin.
 * Requests not wholly accepted, or an offered rate not sustained, fail it: the
 * comparison would not be of the same work below saturation.
 */
import type { LoadResult } from "./load.js";
import { cpuSecondsOf, runLoad, type Server, startServer } from "./processes.js";
import { NGINX_SERVICE } from "./workload.js";

/**
 * The key nginx reports with. A key of service `nginx` (`METRICS_API_KEY_NGINX`)
 * may report as `nginx` whatever `METRICS_KEY_SERVICE_BINDING` says (`true`,
 * `false`, or the newer `audit`, `enforce`, `off`), so the bench needs no flag.
 */
const NGINX_KEY = "bench-nginx-key-0123456789abcdef";

/** The batch limit the issue makes the default (`METRICS_MAX_BATCH_EVENTS`). */
const MAX_BATCH_EVENTS = 5000;

/** Below this share of the offered events acknowledged per second, an arm was saturated. */
const SUSTAINED_SHARE = 0.9;

/** What to measure. */
export interface BatchSizeOptions {
  /** Directory for the server's database. */
  readonly dir: string;
  /** Events per request of the arm under test (1,024: nginx's largest flush). */
  readonly big: number;
  /** Events per request of the reference arm (100: the generated clients' batches). */
  readonly small: number;
  /** Events per second offered to both arms. */
  readonly eventsPerSecond: number;
  /** Rounds per arm. */
  readonly rounds: number;
  /** Seconds of load per round. */
  readonly seconds: number;
  /** Seconds of load per arm before the rounds, not counted (JIT, connections). */
  readonly warmUpSeconds: number;
  /** Seconds the server is watched with no load, for its idle background. */
  readonly idleSeconds: number;
  /** Progress lines. */
  readonly log: (line: string) => void;
}

/** One arm's round. */
export interface BatchSizeRound {
  /** 1-based, counted per pair of arms. */
  readonly round: number;
  readonly eventsPerBatch: number;
  readonly load: LoadResult;
  /** Server CPU per event acknowledged, net of the idle background; NaN when none was. */
  readonly cpuMicrosPerEvent: number;
  /** The server's event-loop delay p99 over the round (NaN when the probe did not answer). */
  readonly loopDelayP99Ms: number;
}

/** One round's pair of arms. */
export interface BatchSizePair {
  readonly round: number;
  /** The big arm's CPU per event over the small arm's in this round. */
  readonly ratio: number;
}

/** One arm over its rounds. */
export interface BatchSizeArm {
  readonly eventsPerBatch: number;
  readonly requestsPerSecond: number;
  /** Median over the rounds. */
  readonly cpuMicrosPerEvent: number;
  /** (max − min) / median of the rounds' CPU per event (drift included). */
  readonly spread: number;
  /** Medians over the rounds of each round's latencies per request. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The highest round p99. */
  readonly worstP99Ms: number;
  /** Lowest share over the rounds of the offered events acknowledged per second. */
  readonly sustainedShare: number;
  readonly requests: number;
  /** Requests failed or not wholly accepted, over all rounds. */
  readonly errors: number;
  readonly errorSample: string | undefined;
}

/** The batch-size comparison. */
export interface BatchSizeResult {
  readonly settings: Omit<BatchSizeOptions, "dir" | "log"> & {
    readonly service: string;
    readonly maxBatchEvents: number;
    readonly cpuSource: "loop probe" | "/proc";
  };
  /** The server's CPU with no load, subtracted from each round. */
  readonly idleMicrosPerSecond: number;
  readonly big: BatchSizeArm;
  readonly small: BatchSizeArm;
  /** Every arm's round, in the order measured. */
  readonly rounds: BatchSizeRound[];
  /** Each round's ratio. */
  readonly pairs: BatchSizePair[];
  /** The median of the rounds' ratios. */
  readonly ratio: number;
  /** (max − min) / median of the rounds' ratios. */
  readonly noiseMargin: number;
  readonly verdict: "PASS" | "FAIL";
  /** Why, in a few words. */
  readonly reason: string;
}

const median = (values: readonly number[]): number => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/**
 * The server's CPU so far, µs. The loop probe's `process.cpuUsage()` counts
 * µs, where /proc counts 10 ms ticks: a quick round uses well under a CPU
 * second, and a tick at each end would be a percent or two of it, as much as
 * the difference measured. /proc only when the probe does not answer.
 */
function cpuReader(server: Server): {
  read(): Promise<{ micros: number; loopDelayP99Ms: number }>;
  source(): "loop probe" | "/proc";
} {
  let viaProbe: boolean | undefined;
  return {
    async read() {
      const window = await server.window();
      const probed = window.cpu.user + window.cpu.system;
      // Decided once: the two counters do not start from the same zero.
      viaProbe ??= Number.isFinite(probed);
      return {
        micros: viaProbe ? probed : cpuSecondsOf(server.child.pid ?? 0) * 1e6,
        loopDelayP99Ms: window.loopDelayP99Ms,
      };
    },
    source: () => (viaProbe === false ? "/proc" : "loop probe"),
  };
}

/** Measures the big and the small arm in interleaved rounds on a service of their own. */
export async function measureBatchSize(options: BatchSizeOptions): Promise<BatchSizeResult> {
  const { big, small, eventsPerSecond, rounds, seconds, log } = options;
  const maxBatchEvents = Math.max(MAX_BATCH_EVENTS, big, small);
  const server = await startServer("batch-size", "json", options.dir, {
    METRICS_API_KEY_NGINX: NGINX_KEY,
    METRICS_MAX_BATCH_EVENTS: String(maxBatchEvents),
  });
  const cpu = cpuReader(server);
  const loadOf = (eventsPerBatch: number, forSeconds: number) =>
    runLoad({
      ingress: "json",
      url: server.url,
      key: NGINX_KEY,
      eventsPerSecond,
      seconds: forSeconds,
      workload: { shape: "nginx", eventsPerBatch },
    });
  const measured: BatchSizeRound[] = [];
  let idleMicrosPerSecond = Number.NaN;
  try {
    for (const size of [small, big]) await loadOf(size, options.warmUpSeconds);
    // The idle background (timers, the probe, the exporter), after the warm-up's
    // last commits and collections have settled.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const idleStart = await cpu.read();
    const idleStarted = performance.now();
    await new Promise((resolve) => setTimeout(resolve, options.idleSeconds * 1000));
    const idleEnd = await cpu.read();
    idleMicrosPerSecond =
      (idleEnd.micros - idleStart.micros) / ((performance.now() - idleStarted) / 1000);
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? [small, big] : [big, small];
      for (const eventsPerBatch of order) {
        const before = await cpu.read();
        const started = performance.now();
        const load = await loadOf(eventsPerBatch, seconds);
        // Wall time includes the load generator's start-up, when the server
        // is idle: the idle background is subtracted over all of it.
        const wallSeconds = (performance.now() - started) / 1000;
        const after = await cpu.read();
        const events = load.ok * eventsPerBatch;
        const netMicros = after.micros - before.micros - idleMicrosPerSecond * wallSeconds;
        const entry: BatchSizeRound = {
          round,
          eventsPerBatch,
          load,
          cpuMicrosPerEvent: events > 0 ? netMicros / events : Number.NaN,
          loopDelayP99Ms: after.loopDelayP99Ms,
        };
        measured.push(entry);
        log(
          `round ${round}, ${String(eventsPerBatch).padStart(5)} events per request: ` +
            `${Math.round(load.eventsPerSecond)} events/s acked, ${entry.cpuMicrosPerEvent.toFixed(2)} µs CPU per event, ` +
            `p50 ${load.p50Ms.toFixed(1)} ms, p99 ${load.p99Ms.toFixed(1)} ms, errors ${load.errors}` +
            (load.errorSamples.length > 0 ? ` [${load.errorSamples[0]}]` : ""),
        );
      }
    }
  } finally {
    await server.stop();
  }

  const armOf = (eventsPerBatch: number): BatchSizeArm => {
    const own = measured.filter((r) => r.eventsPerBatch === eventsPerBatch);
    const costs = own.map((r) => r.cpuMicrosPerEvent);
    const cost = median(costs);
    const finite = costs.filter(Number.isFinite);
    return {
      eventsPerBatch,
      requestsPerSecond: eventsPerSecond / eventsPerBatch,
      cpuMicrosPerEvent: cost,
      spread:
        finite.length === own.length && finite.length > 0
          ? (Math.max(...finite) - Math.min(...finite)) / cost
          : Number.NaN,
      p50Ms: median(own.map((r) => r.load.p50Ms)),
      p99Ms: median(own.map((r) => r.load.p99Ms)),
      worstP99Ms: Math.max(...own.map((r) => r.load.p99Ms)),
      sustainedShare: Math.min(...own.map((r) => r.load.eventsPerSecond / eventsPerSecond)),
      requests: own.reduce((sum, r) => sum + r.load.requests, 0),
      errors: own.reduce((sum, r) => sum + r.load.errors, 0),
      errorSample: own.flatMap((r) => r.load.errorSamples)[0],
    };
  };
  const bigArm = armOf(big);
  const smallArm = armOf(small);
  const costOf = (round: number, size: number) =>
    measured.find((r) => r.round === round && r.eventsPerBatch === size)?.cpuMicrosPerEvent ??
    Number.NaN;
  const pairs = Array.from({ length: rounds }, (_, i) => ({
    round: i + 1,
    ratio: costOf(i + 1, big) / costOf(i + 1, small),
  }));
  const ratios = pairs.map((p) => p.ratio);
  const ratio = median(ratios);
  const noiseMargin = ratios.every(Number.isFinite)
    ? (Math.max(...ratios) - Math.min(...ratios)) / ratio
    : Number.NaN;
  const { verdict, reason } = judge(bigArm, smallArm, ratio, noiseMargin);
  return {
    settings: {
      big,
      small,
      eventsPerSecond,
      rounds,
      seconds,
      warmUpSeconds: options.warmUpSeconds,
      idleSeconds: options.idleSeconds,
      service: NGINX_SERVICE,
      maxBatchEvents,
      cpuSource: cpu.source(),
    },
    idleMicrosPerSecond,
    big: bigArm,
    small: smallArm,
    rounds: measured,
    pairs,
    ratio,
    noiseMargin,
    verdict,
    reason,
  };
}

/** PASS only for the same work, all of it accepted and sustained, no dearer per event beyond the noise. */
function judge(
  big: BatchSizeArm,
  small: BatchSizeArm,
  ratio: number,
  noiseMargin: number,
): { verdict: "PASS" | "FAIL"; reason: string } {
  for (const arm of [big, small]) {
    if (arm.errors > 0) {
      return {
        verdict: "FAIL",
        reason: `${arm.errors} of ${arm.requests} ${arm.eventsPerBatch}-event requests not wholly accepted (${arm.errorSample ?? "no sample"})`,
      };
    }
    if (!(arm.sustainedShare >= SUSTAINED_SHARE)) {
      return {
        verdict: "FAIL",
        reason: `${arm.eventsPerBatch}-event requests acknowledged ${(arm.sustainedShare * 100).toFixed(0)}% of the offered events/s: saturated, not comparable`,
      };
    }
  }
  if (!Number.isFinite(ratio) || !Number.isFinite(noiseMargin)) {
    return { verdict: "FAIL", reason: "no CPU per event measured" };
  }
  const bound = 1 + noiseMargin;
  return ratio <= bound
    ? { verdict: "PASS", reason: `ratio ${ratio.toFixed(3)} ≤ ${bound.toFixed(3)}` }
    : { verdict: "FAIL", reason: `ratio ${ratio.toFixed(3)} > ${bound.toFixed(3)}` };
}

/** The "Batch size" section of the Markdown report. */
export function batchSizeMarkdown(result: BatchSizeResult): string {
  const { settings: s } = result;
  const roundsOf = (size: number) =>
    result.rounds
      .filter((r) => r.eventsPerBatch === size)
      .map((r) => r.cpuMicrosPerEvent.toFixed(2))
      .join(", ");
  const row = (arm: BatchSizeArm) =>
    `| ${arm.eventsPerBatch} | ${arm.requestsPerSecond.toFixed(1)} | ${arm.cpuMicrosPerEvent.toFixed(2)} | ${roundsOf(arm.eventsPerBatch)} | ${(arm.spread * 100).toFixed(1)}% | ${arm.p50Ms.toFixed(1)} | ${arm.p99Ms.toFixed(1)} | ${arm.worstP99Ms.toFixed(1)} | ${arm.errors}/${arm.requests} |`;
  return [
    `Batch size: legacy JSON \`POST /metrics\` batches shaped like the gateway's nginx flush (service \`${s.service}\`, ` +
      `\`METRICS_MAX_BATCH_EVENTS=${s.maxBatchEvents}\`), ${s.big} against ${s.small} events per request, both at ` +
      `${s.eventsPerSecond} events/s offered, in ${s.rounds} interleaved rounds of ${s.seconds} s per arm. ` +
      `Server CPU (${s.cpuSource}) per event acknowledged, net of the server's idle ${Math.round(result.idleMicrosPerSecond)} µs per second; ` +
      "latency per request, open loop:",
    "",
    "| Events per request | Requests/s | CPU µs per event (median) | Rounds' CPU µs per event | Spread | p50 ms | p99 ms (median) | p99 ms (worst) | Errors/requests |",
    "|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    row(result.big),
    row(result.small),
    "",
    `CPU per event, ${s.big}-event over ${s.small}-event requests: ${result.ratio.toFixed(3)}, the median of the rounds' ` +
      `${result.pairs.map((p) => p.ratio.toFixed(3)).join(", ")}; noise margin ${(result.noiseMargin * 100).toFixed(1)}%, ` +
      "the spread, (max − min) / median, of the rounds' ratios (an arm's own spread, above, also holds the server's drift over the run, which pairing cancels). " +
      `batch-size verdict: ${result.verdict} (${result.reason}).`,
  ].join("\n");
}

/** The lines printed at the end of the run with the other ratios; the last is the verdict. */
export function batchSizeSummary(result: BatchSizeResult): string[] {
  const { big, small } = result;
  return [
    `  batch size, CPU per event ${big.eventsPerBatch}-event / ${small.eventsPerBatch}-event requests: ${result.ratio.toFixed(3)} ` +
      `(${big.cpuMicrosPerEvent.toFixed(2)} / ${small.cpuMicrosPerEvent.toFixed(2)} µs; noise margin ${(result.noiseMargin * 100).toFixed(1)}%; ` +
      `p99 ${big.p99Ms.toFixed(1)} / ${small.p99Ms.toFixed(1)} ms per request)`,
    `batch-size verdict: ${result.verdict} (${result.reason})`,
  ];
}
