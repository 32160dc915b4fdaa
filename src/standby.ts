import { accessSync, constants } from "node:fs";
import type { AddressInfo } from "node:net";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { type RunningService, startService } from "./app.js";
import type { Config } from "./config.js";
import { errors } from "./errors.js";
import { createOnePortServer, DEFAULT_ONE_PORT_OPTIONS } from "./http/one-port.js";
import { answerHealth, answerLiveness, answerReadiness } from "./http/probe-answers.js";
import { pathOf } from "./http/respond.js";
import { answerUnread } from "./http/unread-answer.js";
import type { Logger } from "./log.js";
import { portTls } from "./server.js";
import { openDatabase, proveWritable } from "./storage/database.js";
import { redactedUrl } from "./storage/postgres/pool.js";
import { StorageError, storageProblemName } from "./storage/storage-error.js";

/** How often a service in standby tries its database again. */
const STANDBY_RETRY_MILLIS = 2000;
/** How long the standby's probe of the database waits for another process's lock. */
const PROBE_BUSY_WAIT_MILLIS = 100;
/** How long the standby port waits for its answers in flight when the service takes over. */
const STANDBY_CLOSE_MILLIS = 1000;

/** File-system errors that a database directory can give and later stop giving. */
const TRANSIENT_FS_CODES = new Set(["EROFS", "ENOSPC", "EDQUOT", "EIO"]);

/** SQLite results that pass by themselves: a read-only or full disk, a lock, an I/O error. */
const TRANSIENT_SQLITE = /^SQLITE_(READONLY|FULL|BUSY|LOCKED|IOERR)/;

/**
 * Why the service cannot start on its database now, if the reason may pass
 * (read-only, full, locked, I/O): `read-only`, `full`, or the error's code.
 * Undefined for anything else: a path that cannot be opened on a writable
 * file system, missing permissions or a newer schema are not waited for.
 */
export function transientStorageProblem(error: unknown, config: Config): string | undefined {
  if (config.databaseUrl !== undefined) {
    // PostgreSQL not answering yet (starting, restarting, out of connections) passes by itself.
    const failure = StorageError.from(error);
    return failure.failure === "unavailable" ? storageProblemName(failure.code) : undefined;
  }
  const databasePath = config.sqlitePath;
  const code = String((error as { code?: unknown } | undefined)?.code ?? "");
  if (TRANSIENT_FS_CODES.has(code)) {
    return code === "EROFS" ? "read-only" : code === "ENOSPC" ? "full" : code;
  }
  if (TRANSIENT_SQLITE.test(code)) return storageProblemName(code);
  // SQLite cannot create the WAL beside a database on a read-only file system.
  if (code.startsWith("SQLITE_CANTOPEN") && directoryReadOnly(databasePath)) return "read-only";
  return undefined;
}

/** Whether the database's directory is on a read-only file system. */
function directoryReadOnly(databasePath: string): boolean {
  try {
    accessSync(dirname(databasePath), constants.W_OK);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EROFS";
  }
}

/**
 * Whether PostgreSQL answers a query, asked on a connection of its own within
 * a few seconds: the standby port is kept until it does, so that clients and
 * load balancers get 503s, not refused connections, while it does not.
 */
async function postgresAnswers(url: string): Promise<unknown> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: PROBE_CONNECT_MILLIS,
    query_timeout: PROBE_CONNECT_MILLIS,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await client.end().catch(() => {});
  }
}

/** How long the standby's probe of PostgreSQL waits to connect, and then for its answer. */
const PROBE_CONNECT_MILLIS = 2000;

/** The database for logs: the SQLite file, or PostgreSQL's URL without its password. */
function databaseName(config: Config): string {
  return config.databaseUrl === undefined ? config.sqlitePath : redactedUrl(config.databaseUrl);
}

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

/** Whether the database opens, migrates and takes the start-up's proof write, tried on a connection of its own. */
async function databaseWritable(config: Config): Promise<unknown> {
  if (config.databaseUrl !== undefined) return postgresAnswers(config.databaseUrl);
  try {
    // A short lock wait: this runs on the standby's event loop, which must keep answering.
    const db = openDatabase(config.sqlitePath, {
      synchronous: config.sqliteSynchronous,
      busyTimeoutMillis: PROBE_BUSY_WAIT_MILLIS,
    });
    try {
      // The start-up's own proof: a one-row write passed on a volume where
      // every commit then failed, and the service would leave standby to say
      // ready there.
      proveWritable(db);
    } finally {
      db.close();
    }
    return undefined;
  } catch (error) {
    return error;
  }
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
  let reason: string | undefined;
  try {
    const running = await startService(config, log);
    events.onStarted(running);
    return running;
  } catch (error) {
    reason = transientStorageProblem(error, config);
    if (reason === undefined) throw error;
    log.error({ err: error, database: databaseName(config), reason }, "database not writable");
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
      const problem = await databaseWritable(config);
      if (problem !== undefined) {
        const now = transientStorageProblem(problem, config);
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
        reason = transientStorageProblem(error, config);
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
      log.info({ database: databaseName(config) }, "database writable: out of standby");
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
