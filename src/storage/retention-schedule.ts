import type { Logger } from "../log.js";
import type { Retention } from "./retention.js";
import { StorageError } from "./storage-error.js";

/**
 * One retention sweep: every active policy's cleanup, logged. The service
 * runs it on its scheduler (src/lifecycle/scheduler.ts, the `retention
 * sweep` job) soon after start-up and then periodically (the Python service
 * waited 24 h first, so a pod restarted daily never cleaned, W18). A sweep
 * cut short by the shutdown (after its current batch) is logged as such; any
 * other failure is thrown, for the scheduler to log and try again at the
 * next interval.
 */
export async function sweepRetention(retention: Retention, log: Logger): Promise<void> {
  try {
    const summary = await retention.cleanupAll(false);
    log.info(
      { deleted: summary.totalRecordsProcessed, durationSeconds: summary.durationSeconds },
      "retention sweep done",
    );
  } catch (error) {
    if (error instanceof StorageError && error.failure === "closed") {
      log.info("retention sweep stopped for shutdown");
      return;
    }
    throw error;
  }
}
