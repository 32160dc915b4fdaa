import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { type RunningService, startService } from "./app.js";
import type { Config } from "./config.js";
import { errors } from "./errors.js";
import { createOnePortServer, DEFAULT_ONE_PORT_OPTIONS } from "./http/one-port.js";
import { answerHealth, answerLiveness, answerReadiness } from "./http/probe-answers.js";
import { pathOf } from "./http/respond.js";
import { answerUnread } from "./http/unread-answer.js";
import type { Logger } from "./log.js";
import { portTls } from "./server.js";
import { storageDriver } from "./storage/backend.js";

/** How often a service in standby tries its database again. */
const STANDBY_RETRY_MILLIS = 2000;
/** How long the standby port waits for its answers in flight when the service takes over. */
const STANDBY_CLOSE_MILLIS = 1000;

/** A service that may be waiting for its storage. */
export interface SupervisedService {
  /** Stops the service, or the standby and its retries. */
  close(): Promise<void>;
}

/** What {@link startSupervised} tells its caller. */
export interface SupervisorEvents {
  /** The service itself is up (at once, or out of standby). */
  onStarted(running: RunningService): void;
  /** Out of standby, the service failed to start for a reason that will not pass. */
  onFailed(error: unknown): void;
}

/**
 * Starts the service; when its database cannot be written at start-up (a
 * read-only or full file system, another process's lock), the port is served
 * in standby instead of the process failing: `/healthz` is alive, `/readyz`
 * and `/health` answer 503 with the reason, and every other request is
 * refused as storage unavailable (503 / UNAVAILABLE with `Retry-After`), in
 * its protocol. The database is tried again every few seconds, and the
 * service takes the port over as soon as it takes writes.
 */
export async function startSupervised(
  config: Config,
  log: Logger,
  events: SupervisorEvents,
): Promise<SupervisedService> {
  const driver = storageDriver(config);
  const database = driver.location(config);
  let reason: string | undefined;
  try {
    const running = await startService(config, log);
    events.onStarted(running);
    return running;
  } catch (error) {
    reason = driver.transientProblem(error, config);
    if (reason === undefined) throw error;
    log.error({ err: error, database, reason }, "database not writable");
  }

  const stop = new AbortController();
  let running: RunningService | undefined;
  let standby: Standby | undefined = await listenStandby(config, config.port, () => reason);
  const port = standby.address.port;
  log.warn({ host: standby.address.address, port, standby: true, reason }, "listening");
  const retries = (async () => {
    while (!stop.signal.aborted) {
      await sleep(STANDBY_RETRY_MILLIS, undefined, { signal: stop.signal }).catch(() => {});
      if (stop.signal.aborted) return;
      const problem = await driver.probeWritable(config);
      if (problem !== undefined) {
        const now = driver.transientProblem(problem, config);
        if (now === undefined) {
          events.onFailed(problem);
          return;
        }
        if (now !== reason) log.warn({ err: problem, reason: now }, "database still not writable");
        reason = now;
        continue;
      }
      await standby?.close();
      standby = undefined;
      try {
        running = await startService({ ...config, port }, log);
      } catch (error) {
        reason = driver.transientProblem(error, config);
        if (reason === undefined) {
          events.onFailed(error);
          return;
        }
        // It changed again between the probe and the start: back to standby.
        log.warn({ err: error, reason }, "database not writable");
        try {
          standby = await listenStandby(config, port, () => reason);
        } catch (listenError) {
          events.onFailed(listenError);
          return;
        }
        continue;
      }
      log.info({ database }, "database writable: out of standby");
      events.onStarted(running);
      return;
    }
  })();
  return {
    async close() {
      stop.abort();
      await retries;
      await running?.close();
      await standby?.close();
    },
  };
}

interface Standby {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/** The standby port: answers probes and refuses requests while the database is unavailable. */
async function listenStandby(
  config: Config,
  port: number,
  reason: () => string | undefined,
): Promise<Standby> {
  const server = createOnePortServer(
    (req, res) => {
      req.resume();
      const path = pathOf(req);
      const report = {
        ready: false,
        checks: { database: reason() ?? "unavailable", migrations: "pending", draining: false },
      };
      if (path === "/healthz") return answerLiveness(res);
      if (path === "/readyz") return answerReadiness(res, report);
      if (path === "/health") return answerHealth(res, report);
      answerUnread(req, res, errors.storageUnavailable(undefined));
    },
    {
      ...DEFAULT_ONE_PORT_OPTIONS,
      tls: portTls(config),
      // The same connection caps as the service it stands in for.
      maxConnections: config.maxConnections,
      maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    },
  );
  const address = await server.listen(port, config.host);
  return { address, close: () => server.close(STANDBY_CLOSE_MILLIS) };
}
