/**
 * What the soaked service says on stdout (JSON lines, pino's numeric levels):
 * the rows each retention cleanup deleted per table, the sweeps, the batches
 * accepted with warnings (the old timestamps), and every line at error level
 * or above, which fails the soak.
 */

import { createInterface } from "node:readline";
import type { Readable } from "node:stream";

/** pino's `error` level. */
const ERROR_LEVEL = 50;

/** Totals read from the service's log so far. */
export interface ServiceLog {
  /** Rows deleted by retention (scheduled sweeps and admin cleanups), per table. */
  readonly deletedByTable: Readonly<Record<string, number>>;
  /** Scheduled sweeps finished, and how many of them deleted something. */
  readonly sweeps: number;
  readonly sweepsThatDeleted: number;
  /** Longest sweep, seconds. */
  readonly longestSweepSeconds: number;
  /** "batch accepted with warnings" lines (each an expired batch: "Timestamp is very old"). */
  readonly batchesWithWarnings: number;
  /** Lines at error level or above, and the first few of them. */
  readonly errorLines: number;
  readonly errorSamples: readonly string[];
  /** Lines that were not JSON (the service writes only JSON lines to stdout). */
  readonly otherLines: number;
}

/** Reads `stdout` until it ends; `snapshot()` gives the totals so far. */
export function watchServiceLog(stdout: Readable): {
  snapshot(): ServiceLog;
  ended: Promise<void>;
} {
  const deletedByTable: Record<string, number> = {};
  let sweeps = 0;
  let sweepsThatDeleted = 0;
  let longestSweepSeconds = 0;
  let batchesWithWarnings = 0;
  let errorLines = 0;
  const errorSamples: string[] = [];
  let otherLines = 0;
  const lines = createInterface({ input: stdout });
  lines.on("line", (line) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      otherLines++;
      return;
    }
    const level = Number(entry.level);
    if (level >= ERROR_LEVEL) {
      errorLines++;
      if (errorSamples.length < 5) errorSamples.push(line.slice(0, 500));
    }
    switch (entry.msg) {
      case "retention cleanup": {
        const table = String(entry.table);
        deletedByTable[table] = (deletedByTable[table] ?? 0) + Number(entry.recordsDeleted);
        break;
      }
      case "retention sweep done":
        sweeps++;
        if (Number(entry.deleted) > 0) sweepsThatDeleted++;
        longestSweepSeconds = Math.max(longestSweepSeconds, Number(entry.durationSeconds));
        break;
      case "batch accepted with warnings":
        batchesWithWarnings++;
        break;
    }
  });
  return {
    snapshot: () => ({
      deletedByTable: { ...deletedByTable },
      sweeps,
      sweepsThatDeleted,
      longestSweepSeconds,
      batchesWithWarnings,
      errorLines,
      errorSamples: [...errorSamples],
      otherLines,
    }),
    ended: new Promise((resolve) => lines.once("close", () => resolve())),
  };
}
