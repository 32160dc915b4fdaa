// backends: sqlite only: the crash harness kills and restarts a process on its SQLite file and checks it with PRAGMA integrity_check
import { writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { runCrashRounds } from "../crash/harness.js";
import { writeResult } from "../support/results.js";

/*
 * The crash harness of issue 10. `npm test` runs a few rounds; `npm run
 * test:crash` runs CRASH_ROUNDS=20 and writes its result to bench/results
 * (RESULTS_DIR; and to CRASH_REPORT if set).
 * CRASH_SERVICE_ENV adds service settings, as JSON: with
 * {"METRICS_IDEMPOTENCY_WINDOW_SECONDS":"0"} the resent batches are stored
 * twice and the test fails.
 */
const rounds = Number(process.env.CRASH_ROUNDS ?? 3);
const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
const serviceEnv = JSON.parse(process.env.CRASH_SERVICE_ENV ?? "{}") as Record<string, string>;

describe("crash recovery", () => {
  it(
    `should store every acknowledged event exactly once across ${rounds} SIGKILLs (seed ${seed})`,
    async () => {
      const report = await runCrashRounds({ rounds, seed, serviceEnv });
      console.log(`crash harness: ${JSON.stringify(report)}`);
      if (process.env.CRASH_REPORT) {
        writeFileSync(process.env.CRASH_REPORT, `${JSON.stringify(report, null, 2)}\n`);
      }
      // npm run test:crash: bench/results/crash-sqlite-<timestamp>.json (the docs' figures).
      writeResult("crash", { serviceEnv, ...report });
      expect(report.unexpectedErrors).toEqual([]);
      expect(report.kills).toBe(rounds);
      expect(report.eventsAcknowledged).toBeGreaterThan(rounds * 100);
      expect(report.missing).toBe(0);
      expect(report.duplicates).toBe(0);
      expect(report.unknownRows).toBe(0);
      expect(report.unacknowledged).toBe(0);
      expect(report.eventsFound).toBe(report.eventsAcknowledged);
      expect(report.integrity).toBe("ok");
      // The rollups are committed with the raw rows: never off by one after a kill.
      expect(report.rollupMismatches).toEqual([]);
    },
    120_000 + rounds * 15_000,
  );
});
