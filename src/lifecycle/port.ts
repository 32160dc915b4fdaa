import type { AddressInfo } from "node:net";
import type { Config } from "../config.js";
import { errors } from "../errors.js";
import {
  createOnePortServer,
  DEFAULT_ONE_PORT_OPTIONS,
  type RequestHandler,
} from "../http/one-port.js";
import { answerHealth, answerLiveness, answerReadiness } from "../http/probe-answers.js";
import { pathOf } from "../http/respond.js";
import { answerUnread } from "../http/unread-answer.js";
import type { Logger } from "../log.js";
import { type MetricsRoutes, portTls } from "../server.js";

/**
 * The service's one port, listening before anything else starts and until
 * everything else stopped: not ready while the service starts (or waits for
 * its storage in standby), then serving the service's routes, with no moment
 * where it is closed in between.
 */
export interface ServicePort {
  /** Listens on the configured host and port. */
  listen(): Promise<AddressInfo>;
  /** Where it listens (once it does). */
  readonly address: AddressInfo;
  /** Aborted when a shutdown begins: new requests are refused with a retryable error. */
  readonly draining: AbortSignal;
  /** Aborted once the drain's time is over, to cut handlers still running. */
  readonly hardStop: AbortSignal;
  /** Requests being handled right now, on every ingress (the event store's group commit waits for them). */
  readonly inFlight: number;
  /**
   * Not ready, for `database` (`unproven` while starting, or why the storage
   * cannot be written): `/healthz` answers alive, `/readyz` and `/health` 503
   * with that reason, and every other request is refused as storage
   * unavailable (503 / UNAVAILABLE with `Retry-After`), in its protocol.
   */
  notReady(database: string): void;
  /** Serves the service's routes from now on. */
  serve(routes: MetricsRoutes): void;
  /**
   * Refuses new requests, waits for the ones in flight (up to `timeoutMillis`),
   * then closes; later calls wait for the first one's close.
   */
  close(timeoutMillis: number): Promise<void>;
}

/** What the port serves now: the not-ready answers, or the service's routes. */
type Mode = MetricsRoutes;

/** The port's answers while the service is not ready. */
function notReadyMode(database: string, draining: AbortSignal): Mode {
  return {
    handler: (req, res) => {
      req.resume();
      const path = pathOf(req);
      const report = {
        ready: false,
        checks: { database, migrations: "pending", draining: draining.aborted },
      };
      if (path === "/healthz") return answerLiveness(res);
      if (path === "/readyz") return answerReadiness(res, report);
      if (path === "/health") return answerHealth(res, report);
      answerUnread(req, res, errors.storageUnavailable(undefined));
    },
    // Answered at once: no pool to hold them to.
    admission: () => "exempt",
  };
}

/** Builds the port (not listening yet), not ready for `unproven` until told otherwise. */
export function createServicePort(config: Config, log: Logger): ServicePort {
  const drain = new AbortController();
  const hardStop = new AbortController();
  let mode = notReadyMode("unproven", drain.signal);
  /** The mode each request was admitted in, so that its handler is that mode's. */
  const modes = new WeakMap<object, Mode>();
  const modeOf = (req: object): Mode => modes.get(req) ?? mode;
  const delegate =
    (hook: "onShareExceeded" | "onOverload"): RequestHandler =>
    (req, res) =>
      (modeOf(req)[hook] ?? modeOf(req).handler)(req, res);
  const port = createOnePortServer((req, res) => modeOf(req).handler(req, res), {
    ...DEFAULT_ONE_PORT_OPTIONS,
    tls: portTls(config),
    maxConcurrentRequests: config.maxConcurrentRequests,
    maxAnonymousRequests: config.maxAnonymousRequests,
    maxRequestsPerKey: config.maxConcurrentRequestsPerKey,
    admission: (req, res) => {
      const now = mode;
      modes.set(req, now);
      return now.admission?.(req, res) ?? "known";
    },
    onAdmitted: (req, res) => modeOf(req).onAdmitted?.(req, res) ?? true,
    onShareExceeded: delegate("onShareExceeded"),
    onOverload: delegate("onOverload"),
    onError: (error) => log.error({ err: error }, "listening socket error"),
    maxConnections: config.maxConnections,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    onConnectionRefused: (reason) => mode.onConnectionRefused?.(reason),
  });
  let address: AddressInfo | undefined;
  let closing: Promise<void> | undefined;

  return {
    async listen() {
      address = await port.listen(config.port, config.host);
      return address;
    },
    get address() {
      if (address === undefined) throw new Error("the port is not listening");
      return address;
    },
    draining: drain.signal,
    hardStop: hardStop.signal,
    get inFlight() {
      return port.inFlight;
    },
    notReady(database) {
      mode = notReadyMode(database, drain.signal);
    },
    serve(routes) {
      mode = routes;
    },
    close(timeoutMillis) {
      closing ??= (async () => {
        drain.abort();
        await port.close(timeoutMillis);
        hardStop.abort();
      })();
      return closing;
    },
  };
}
