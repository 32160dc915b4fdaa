import { setTimeout as sleep } from "node:timers/promises";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { StorageDriver } from "../storage/backend.js";
import type { StartRetry } from "./components.js";
import type { ServicePort } from "./port.js";

/** How often a service in standby tries its database again. */
export const STANDBY_RETRY_MILLIS = 2000;

/** Options of {@link createStandby}. */
export interface StandbyOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly driver: StorageDriver;
  /** The port, listening by the time a start fails after it: not ready while the service waits. */
  readonly port: () => ServicePort;
  /** The first component started again once the storage takes writes. */
  readonly from: string;
  /** Told once, when the service first goes into standby. */
  readonly onStandby?: () => void;
  readonly retryMillis?: number;
}

/** The standby: a {@link StartRetry} for the component runner, and the end of the wait. */
export interface Standby extends StartRetry {
  /** The start went through: says so if it had waited in standby. */
  ended(): void;
}

/**
 * The standby, a not-ready mode of the one port: when the storage cannot be
 * written at start-up for a reason that may pass (the driver's
 * `transientProblem`: a read-only or full file system, another process's
 * lock, PostgreSQL not answering), the port stays up, not ready and saying
 * why (see {@link ServicePort.notReady}), instead of the process failing.
 * The storage is tried again every few seconds (the driver's
 * `probeWritable`), and once it takes writes the components start again
 * behind the same listening port. Any other failure fails the start.
 */
export function createStandby(options: StandbyOptions): Standby {
  const { config, log, driver } = options;
  const database = driver.location(config);
  const retryMillis = options.retryMillis ?? STANDBY_RETRY_MILLIS;
  let waited = false;

  return {
    from: options.from,
    async recover(error, signal) {
      let reason = driver.transientProblem(error, config);
      if (reason === undefined) throw error;
      const port = options.port();
      port.notReady(reason);
      if (!waited) {
        waited = true;
        log.error({ err: error, database, reason }, "database not writable");
        const { address, port: number } = port.address;
        log.warn({ host: address, port: number, standby: true, reason }, "listening");
        options.onStandby?.();
      } else {
        // It changed again between the probe and the start: back to standby.
        log.warn({ err: error, reason }, "database not writable");
      }
      for (;;) {
        await sleep(retryMillis, undefined, { signal });
        const problem = await driver.probeWritable(config);
        if (problem === undefined) break;
        const now = driver.transientProblem(problem, config);
        if (now === undefined) throw problem;
        if (now !== reason) log.warn({ err: problem, reason: now }, "database still not writable");
        reason = now;
        port.notReady(reason);
      }
      // Writable again: the start is tried again, the port still not ready meanwhile.
      port.notReady("unproven");
    },
    ended() {
      if (waited) log.info({ database }, "database writable: out of standby");
    },
  };
}
