import type { Logger } from "../log.js";
import type { Retention } from "./retention.js";
import { StorageError } from "./storage-error.js";

/** Options of {@link scheduleRetention}. */
export interface RetentionScheduleOptions {
  /** Delay before the first sweep after start-up, in ms. */
  readonly startDelayMillis: number;
  /** Time between the end of one sweep and the start of the next, in ms. */
  readonly intervalMillis: number;
  readonly log: Logger;
}

/** A running schedule of retention sweeps. */
export interface RetentionSchedule {
  /**
   * Starts no more sweeps; resolves when the one in progress, if any, has
   * ended (closing the retention ends it after its current batch).
   */
  stop(): Promise<void>;
}

/**
 * Runs every active policy's cleanup soon after start-up and then
 * periodically (the Python service waited 24 h first, so a pod restarted
 * daily never cleaned, W18). A failed sweep is logged and tried again at the
 * next interval.
 */
export function scheduleRetention(
  retention: Retention,
  options: RetentionScheduleOptions,
): RetentionSchedule {
  const { log } = options;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const sweep = async () => {
    try {
      const summary = await retention.cleanupAll(false);
      log.info(
        { deleted: summary.totalRecordsProcessed, durationSeconds: summary.durationSeconds },
        "retention sweep done",
      );
    } catch (error) {
      if (error instanceof StorageError && error.failure === "closed") {
        log.info("retention sweep stopped for shutdown");
      } else {
        log.error({ err: error }, "retention sweep failed; next try at the next interval");
      }
    }
  };
  const arm = (delay: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = sweep().finally(() => {
        running = undefined;
        arm(options.intervalMillis);
      });
    }, delay);
    timer.unref();
  };
  arm(options.startDelayMillis);

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
