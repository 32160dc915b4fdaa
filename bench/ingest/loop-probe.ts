/**
 * Preloaded into a benchmarked server (`node --import .../loop-probe.js`):
 * measures its event-loop delay. On SIGUSR2 it writes what it measured since
 * the previous signal to the file named by `BENCH_PROBE_FILE`, then starts
 * over, so the benchmark can read one window per load step.
 */
import { writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

/** Sampling interval, ms. Node records each interval whole, so the delay is what exceeds it. */
const RESOLUTION_MS = 10;

const file = process.env.BENCH_PROBE_FILE;
if (file !== undefined) {
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  let window = 0;
  process.on("SIGUSR2", () => {
    window++;
    writeFileSync(
      file,
      JSON.stringify({
        window,
        loopDelayP99Ms: Math.max(0, histogram.percentile(99) / 1e6 - RESOLUTION_MS),
        loopDelayMaxMs: Math.max(0, histogram.max / 1e6 - RESOLUTION_MS),
        cpu: process.cpuUsage(),
      }),
    );
    histogram.reset();
  });
}
