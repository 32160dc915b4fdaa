// backends: sqlite only: the scheduler alone, with stand-in jobs and no storage
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { stopBudget } from "../../src/lifecycle/components.js";
import { createScheduler, type Job } from "../../src/lifecycle/scheduler.js";
import { createLogger } from "../../src/log.js";

function capturedLog() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("info", {
    write: (line: string) => {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { log, lines };
}

describe("the scheduler", () => {
  it("should run each job after its first delay, then at its interval", async () => {
    const { log } = capturedLog();
    const runs: Record<string, number[]> = { fast: [], slow: [] };
    const began = performance.now();
    const jobs: Job[] = [
      {
        name: "fast",
        firstDelayMillis: 0,
        intervalMillis: 50,
        run: async () => {
          runs.fast?.push(performance.now() - began);
        },
      },
      {
        name: "slow",
        intervalMillis: 200,
        run: async () => {
          runs.slow?.push(performance.now() - began);
        },
      },
    ];
    const scheduler = createScheduler("scheduler", () => jobs, log);
    await scheduler.start(new AbortController().signal);
    await sleep(330);
    await scheduler.stop(stopBudget(1000));
    expect(runs.fast?.[0]).toBeLessThan(150);
    expect(runs.fast?.length).toBeGreaterThanOrEqual(3);
    expect(runs.slow).toHaveLength(1);
    expect(runs.slow?.[0]).toBeGreaterThanOrEqual(195);
  });

  it("should never run a job over itself: its interval counts from the end of its last run", async () => {
    const { log } = capturedLog();
    let running = 0;
    let most = 0;
    let runs = 0;
    const scheduler = createScheduler(
      "scheduler",
      () => [
        {
          name: "long",
          firstDelayMillis: 0,
          intervalMillis: 10,
          run: async () => {
            running++;
            runs++;
            most = Math.max(most, running);
            await sleep(60);
            running--;
          },
        },
      ],
      log,
    );
    await scheduler.start(new AbortController().signal);
    await sleep(300);
    await scheduler.stop(stopBudget(1000));
    expect(most).toBe(1);
    // 60 ms each, 10 ms apart: at most 5 in 300 ms, where overlapping runs every 10 ms would be 30.
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(runs).toBeLessThanOrEqual(5);
  });

  it("should log a failed run with the job's name, and run the job again at its interval", async () => {
    const { log, lines } = capturedLog();
    let runs = 0;
    const scheduler = createScheduler(
      "scheduler",
      () => [
        {
          name: "key reload",
          firstDelayMillis: 0,
          intervalMillis: 30,
          run: async () => {
            runs++;
            throw new Error("database is locked");
          },
          failure: { message: "could not reload api keys; keeping the ones loaded" },
        },
        {
          name: "retention sweep",
          firstDelayMillis: 0,
          intervalMillis: 1000,
          run: async () => {
            throw new Error("disk I/O error");
          },
          failure: { message: "retention sweep failed", level: "error" },
        },
        {
          name: "unnamed failure",
          firstDelayMillis: 0,
          intervalMillis: 1000,
          run: async () => {
            throw new Error("no");
          },
        },
      ],
      log,
    );
    await scheduler.start(new AbortController().signal);
    await sleep(100);
    await scheduler.stop(stopBudget(1000));
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 40,
        job: "key reload",
        msg: "could not reload api keys; keeping the ones loaded",
        err: expect.objectContaining({ message: "database is locked" }),
      }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 50, job: "retention sweep", msg: "retention sweep failed" }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 40, job: "unnamed failure", msg: "unnamed failure failed" }),
    );
  });

  it("should start no run once the shutdown begins, and stop after the runs under way, their loops told", async () => {
    const { log } = capturedLog();
    let runs = 0;
    let steps = 0;
    let sawAbort = false;
    const scheduler = createScheduler(
      "scheduler",
      () => [
        {
          name: "ledger prune",
          firstDelayMillis: 0,
          intervalMillis: 10,
          run: async (signal) => {
            runs++;
            while (!signal.aborted) {
              steps++;
              await sleep(20);
            }
            sawAbort = true;
          },
        },
      ],
      log,
    );
    await scheduler.start(new AbortController().signal);
    await sleep(70);
    scheduler.beginStop?.(stopBudget(1000));
    const began = performance.now();
    await scheduler.stop(stopBudget(1000));
    expect(performance.now() - began).toBeLessThan(500);
    expect(sawAbort).toBe(true);
    const after = { runs, steps };
    await sleep(100);
    expect({ runs, steps }).toEqual(after);
    expect(runs).toBe(1);
  });
});
