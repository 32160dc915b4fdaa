/**
 * Preloaded into a benchmarked server (`node --import .../loop-probe.js`):
 * measures its event-loop delay. On SIGUSR2 it writes what it measured since
 * the previous signal to the file named by `BENCH_PROBE_FILE`, then starts
 * over, so the benchmark can read one window per load step.
 */
import { writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

const file = process.env.BENCH_PROBE_FILE;
if (file !== undefined) {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let window = 0;
  process.on("SIGUSR2", () => {
    window++;
    writeFileSync(
      file,
      JSON.stringify({
        window,
        loopDelayP99Ms: histogram.percentile(99) / 1e6,
        loopDelayMaxMs: histogram.max / 1e6,
        cpu: process.cpuUsage(),
      }),
    );
    histogram.reset();
  });
}
