/**
 * Preloaded into a benchmarked server (`node --import .../loop-probe.js`):
 * measures its event-loop delay. On SIGUSR2 it writes what it measured since
 * the previous signal to the file named by `BENCH_PROBE_FILE`, then starts
 * over, so the benchmark can read one window per load step (and the soak one
 * per sample, with the heap beside it; `BENCH_PROBE_GC=1` also notes the
 * heap after each full collection).
 */
import { writeFileSync } from "node:fs";
import { constants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";

/** Sampling interval, ms. Node records each interval whole, so the delay is what exceeds it. */
const RESOLUTION_MS = 10;

/** One window of the probe, as written to `BENCH_PROBE_FILE`. */
export interface ProbeWindow {
  /** 1 for the first signal, then counting up. */
  readonly window: number;
  readonly loopDelayP50Ms: number;
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  readonly cpu: NodeJS.CpuUsage;
  /** V8 heap in use and committed, and memory of C++ objects bound to JS (Buffers), MiB, at the signal. */
  readonly heapUsedMiB: number;
  readonly heapTotalMiB: number;
  readonly externalMiB: number;
  /**
   * The full collections (mark-compact) since the previous signal: when they
   * ended (epoch ms) and the heap in use just after, the live set a leak grows.
   */
  readonly majorGcs: readonly { readonly atEpochMs: number; readonly heapUsedMiB: number }[];
}

const file = process.env.BENCH_PROBE_FILE;
if (file !== undefined) {
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  let window = 0;
  let majorGcs: { atEpochMs: number; heapUsedMiB: number }[] = [];
  // The observer runs shortly after each collection, before much is allocated
  // again. Only when asked: the bench's CPU figures are measured without it.
  const gcs = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // `detail` (Node 16+) is missing from @types/node 20's PerformanceEntry.
      const { detail } = entry as unknown as { detail?: { kind?: number } };
      if (detail?.kind !== constants.NODE_PERFORMANCE_GC_MAJOR) continue;
      majorGcs.push({
        atEpochMs: performance.timeOrigin + entry.startTime + entry.duration,
        heapUsedMiB: process.memoryUsage().heapUsed / 2 ** 20,
      });
    }
  });
  if (process.env.BENCH_PROBE_GC === "1") gcs.observe({ entryTypes: ["gc"] });
  const beyond = (nanos: number) => Math.max(0, nanos / 1e6 - RESOLUTION_MS);
  process.on("SIGUSR2", () => {
    window++;
    const memory = process.memoryUsage();
    const read: ProbeWindow = {
      window,
      loopDelayP50Ms: beyond(histogram.percentile(50)),
      loopDelayP99Ms: beyond(histogram.percentile(99)),
      loopDelayMaxMs: beyond(histogram.max),
      cpu: process.cpuUsage(),
      heapUsedMiB: memory.heapUsed / 2 ** 20,
      heapTotalMiB: memory.heapTotal / 2 ** 20,
      externalMiB: memory.external / 2 ** 20,
      majorGcs,
    };
    majorGcs = [];
    writeFileSync(file, JSON.stringify(read));
    histogram.reset();
  });
}
