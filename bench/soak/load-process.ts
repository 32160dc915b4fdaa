/**
 * A load generator of the soak: the ingest bench's (`bench/ingest/load.ts`),
 * run as its own process on the load core for the whole soak, reporting its
 * progress every second so that each sample can tell what was acknowledged
 * and how fast.
 */
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { LoadProgress, LoadResult, LoadSpec } from "../ingest/load.js";
import { DIST, LOAD_CORE, nodeOn } from "../ingest/processes.js";

/** How often the generators report, ms. */
export const PROGRESS_MILLIS = 1000;

/** A generator running. */
export interface RunningLoad {
  readonly name: string;
  readonly spec: LoadSpec;
  /**
   * What was reported since the previous call: the latest totals, and the
   * latencies and error samples of every line in between.
   */
  drain(): { latest: LoadProgress | undefined; latenciesMs: number[]; errorSamples: string[] };
  /** The generator's final result, once its run is over. */
  readonly done: Promise<LoadResult>;
  /** Ends the generator early (a soak that failed on the way). */
  kill(): void;
}

/** Starts a generator for `spec` (its progress reporting switched on). */
export function startLoad(name: string, spec: LoadSpec): RunningLoad {
  const full: LoadSpec = { ...spec, progressMillis: PROGRESS_MILLIS };
  const child = nodeOn(LOAD_CORE, [join(DIST, "ingest", "load.js"), JSON.stringify(full)]);
  let latest: LoadProgress | undefined;
  let latencies: number[] = [];
  let errorSamples: string[] = [];
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const done = new Promise<LoadResult>((resolve, reject) => {
    let result: LoadResult | undefined;
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      if (line.startsWith("progress ")) {
        const progress = JSON.parse(line.slice("progress ".length)) as LoadProgress;
        latest = progress;
        latencies.push(...progress.latenciesMs);
        errorSamples.push(...progress.errorSamples);
      } else if (line.startsWith("{")) {
        result = JSON.parse(line) as LoadResult;
      }
    });
    // "close", not "exit": the result line may still be in the pipe at exit.
    child.once("close", (code) => {
      if (result !== undefined && code === 0) resolve(result);
      else reject(new Error(`load generator ${name} exited with ${code}: ${stderr}`));
    });
  });
  return {
    name,
    spec,
    drain() {
      const drained = { latest, latenciesMs: latencies, errorSamples: errorSamples.slice(0, 20) };
      latencies = [];
      errorSamples = [];
      return drained;
    },
    done,
    kill: () => {
      if (child.exitCode === null) child.kill("SIGTERM");
    },
  };
}
