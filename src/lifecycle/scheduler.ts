import type { Logger } from "../log.js";
import type { Component } from "./components.js";

/** A named periodic job. */
export interface Job {
  /** For logs: `key reload`, `retention sweep`, ... */
  readonly name: string;
  /** From the end of one run to the start of the next, in ms. */
  readonly intervalMillis: number;
  /** Before the first run, in ms (default: the interval). */
  readonly firstDelayMillis?: number;
  /**
   * One run. `signal` is aborted when the shutdown begins: a run that loops
   * stops at its next step. A failure is logged with the job's name.
   */
  run(signal: AbortSignal): Promise<void>;
  /** The log line of a failed run (default: `<name> failed`), and its level (default warn). */
  readonly failure?: { readonly message: string; readonly level?: "warn" | "error" };
}

/**
 * One scheduler for the service's periodic jobs, as one component: each job
 * runs `firstDelayMillis` after the start, then `intervalMillis` after the
 * end of its previous run, so that it never overlaps itself; a failed run is
 * logged (with the job's name) and the job runs again at its next interval.
 * Its timers never keep the process alive. Once the shutdown begins no run
 * starts, and the stop waits for the runs under way.
 */
export function createScheduler(
  name: string,
  /** The jobs, decided as the scheduler starts (some depend on what started before it). */
  jobs: () => readonly Job[],
  log: Logger,
): Component {
  const timers = new Set<NodeJS.Timeout>();
  const running = new Set<Promise<void>>();
  let abort = new AbortController();

  const runOnce = async (job: Job, signal: AbortSignal): Promise<void> => {
    try {
      await job.run(signal);
    } catch (error) {
      const { message = `${job.name} failed`, level = "warn" } = job.failure ?? {};
      log[level]({ job: job.name, err: error }, message);
    }
  };
  const arm = (job: Job, delay: number, signal: AbortSignal): void => {
    if (signal.aborted) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      const run = runOnce(job, signal).finally(() => {
        running.delete(run);
        arm(job, job.intervalMillis, signal);
      });
      running.add(run);
    }, delay);
    timer.unref();
    timers.add(timer);
  };

  /** No run starts from now on, and the loops of those under way end at their next step. */
  const halt = (): void => {
    abort.abort();
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
  };

  return {
    name,
    async start() {
      abort = new AbortController();
      for (const job of jobs()) arm(job, job.firstDelayMillis ?? job.intervalMillis, abort.signal);
    },
    beginStop: halt,
    /**
     * Waits for the runs under way within the scheduler's share of the
     * shutdown: a run stuck on a database that does not answer must not take
     * the budget of the components stopped after it (the event store's last
     * commits, the final export). A run still going is left to end by itself.
     */
    async stop(budget) {
      halt();
      const left = Math.max(0, budget.millis());
      let timer: NodeJS.Timeout | undefined;
      const outOfTime = new Promise<"late">((done) => {
        timer = setTimeout(() => done("late"), left);
      });
      const outcome = await Promise.race([
        Promise.all(running).then(() => "done" as const),
        outOfTime,
      ]);
      clearTimeout(timer);
      if (outcome === "late")
        log.warn({ jobs: running.size }, "scheduled jobs still running at stop");
    },
  };
}
