import type { AddressInfo } from "node:net";
import { createReadiness } from "./admin/readiness.js";
import { createKeyRegistry, type KeyRegistry } from "./auth/key-registry.js";
import type { Config } from "./config.js";
import { createIngestor } from "./ingest/ingestor.js";
import { rollupRowOfStored } from "./ingest/normalize.js";
import { type Component, part, runComponents } from "./lifecycle/components.js";
import { createServicePort } from "./lifecycle/port.js";
import { createScheduler, type Job } from "./lifecycle/scheduler.js";
import { createStandby } from "./lifecycle/standby.js";
import type { Logger } from "./log.js";
import { createHistory, horizonsOf } from "./query/history.js";
import { createSharedRateLimiter } from "./ratelimit/shared-limiter.js";
import { localRateLimiter } from "./ratelimit/token-bucket.js";
import { createMetricsRoutes } from "./server.js";
import type { BatchLedger } from "./storage/batch-ledger.js";
import { openStorage, storageDriver } from "./storage/drivers.js";
import { createRetention } from "./storage/retention.js";
import { sweepRetention } from "./storage/retention-schedule.js";
import { backfillRollups } from "./storage/rollup-backfill.js";
import { createRefusalLog } from "./telemetry/refusal-log.js";
import { createTelemetry, redactedEndpoint, type Telemetry } from "./telemetry/telemetry.js";

/** The most of the shutdown budget kept for the final telemetry export. */
const TELEMETRY_SHUTDOWN_MILLIS = 5000;

/** How often expired batch ids are deleted, and how many per transaction. */
const LEDGER_PRUNE_MILLIS = 60_000;
const LEDGER_PRUNE_ROWS = 5000;

/** Shuts telemetry down (its final export), waiting at most `millis`. */
async function boundedShutdown(telemetry: Telemetry, millis: number, log: Logger): Promise<void> {
  await Promise.race([
    telemetry
      .shutdown()
      .catch((error: unknown) => log.warn({ err: error }, "telemetry shutdown failed")),
    new Promise((resolve) => setTimeout(resolve, millis).unref()),
  ]);
}

/** Deletes expired batch ids in small transactions, one per loop turn, so that ingest keeps its pace. */
async function pruneLedger(ledger: BatchLedger, signal: AbortSignal): Promise<void> {
  while (!signal.aborted && (await ledger.prune(LEDGER_PRUNE_ROWS)) === LEDGER_PRUNE_ROWS) {
    await new Promise(setImmediate);
  }
}

/**
 * The service's components, in start order (docs/reliability.md, "Start and
 * stop"). Each starts from what the ones before it made, and they stop in
 * the reverse order: the server drains first, the port closes last.
 */
function serviceComponents(config: Config, log: Logger) {
  // The one port listens first: not ready until the server serves on it.
  const port = part({
    name: "port",
    async start() {
      const served = createServicePort(config, log);
      try {
        await served.listen();
      } catch (error) {
        await served.close(0);
        throw error;
      }
      return served;
    },
    stop: (served, budget) => served.close(budget.millis()),
  });

  // The database, its schema brought up to date, the default retention seeded.
  const storage = part({
    name: "storage",
    async start() {
      const backend = await openStorage(config);
      try {
        await backend.seedRetentionPolicies(config.retentionDays);
        await backfillRollups(backend.rollupBackfill, rollupRowOfStored, log);
      } catch (error) {
        await backend.close().catch(() => {});
        throw error;
      }
      return backend;
    },
    stop: (backend) => backend.close(),
  });

  // Exporters and instruments. Last, and bounded: a final export to a
  // collector that does not answer must not outlast the orchestrator's grace
  // period; the stops before it leave it a reserve of the budget.
  const telemetry = part({
    name: "telemetry",
    start: () => {
      const { filePath } = storage.value;
      return createTelemetry({
        ...config.telemetry,
        log,
        ...(filePath === undefined ? {} : { databasePath: filePath }),
      });
    },
    reserveMillis: (totalMillis) =>
      Math.min(TELEMETRY_SHUTDOWN_MILLIS, Math.floor(totalMillis / 4)),
    stop: (running, budget) => boundedShutdown(running, budget.millis(), log),
  });

  // The API keys, cached; their last uses are written at the stop.
  const keys = part({
    name: "keys",
    async start() {
      const registry = await createKeyRegistry({
        store: storage.value.keys,
        defaultRateLimit: config.rateLimitPerMinute,
        log,
      });
      await registry.syncEnvKeys(config.envApiKeys);
      const bootstrapKey = await registry.ensureBootstrapKey();
      return { registry, bootstrapKey };
    },
    stop: ({ registry }) => registry.flushUsage(),
  });

  // A real write before the server serves: a database that cannot take a
  // commit fails the start here (and the process waits in standby) instead
  // of /readyz saying ready until the first commit.
  const readiness = part({
    name: "readiness",
    async start() {
      const backend = storage.value;
      const { draining } = port.value;
      const checked = createReadiness({
        probe: backend.readiness,
        draining: () => draining.aborted,
      });
      await checked.prove();
      backend.startupDone();
      return checked;
    },
  });

  // The event store (group commit) and the one ingest path. Its stop commits
  // every event still queued: nothing acknowledged is dropped.
  const ingest = part({
    name: "ingest",
    async start() {
      const backend = storage.value;
      const served = port.value;
      const ready = readiness.value;
      const { service: metrics, events: instruments } = telemetry.value;
      const store = backend.createEventStore({
        maxBatchRows: config.commitMaxRows,
        maxDelayMillis: config.commitMaxDelayMillis,
        requestsInFlight: () => served.inFlight,
        onCommit: (stats) => {
          ready.noteCommit(stats.error);
          metrics.commit(stats.rows, stats.durationMillis, stats.error?.failure);
        },
      });
      telemetry.value.observeQueuedRows(() => store.queuedRows);
      const ledger = backend.ledger;
      const ingestor = createIngestor({
        store,
        log,
        keyServiceBinding: config.keyServiceBinding,
        maxBatchEvents: config.maxBatchEvents,
        maxQueuedRows: config.maxQueuedRows,
        maxQueuedBytes: config.maxQueuedBytes,
        ...(ledger ? { ledger } : {}),
        observer: {
          replayed: (count) => metrics.events("replayed", count),
          committed: (events) => {
            metrics.events("accepted", events.length);
            instruments.record(events);
          },
          rejected: (count, reason) => metrics.events("rejected", count, reason),
          mismatched: (principal, reported, count) =>
            metrics.serviceMismatch(principal.publicId, principal.service, reported, count),
        },
      });
      return { store, ingestor };
    },
    stop: ({ store }) => store.close(),
  });

  // Retention policies and cleanups. As soon as the shutdown begins, a sweep
  // or an admin cleanup stops after its current batch (answering "shutting
  // down"): deletions never hold a shutdown up, and nothing touches the
  // database once it is closed.
  const retention = part({
    name: "retention",
    start: () =>
      createRetention({
        store: storage.value.retention,
        log,
        minDays: config.retention.minDays,
        batchRows: config.retention.batchRows,
      }),
    beginStop: (policies) => void policies.close(),
    stop: (policies) => policies.close(),
  });

  // One bucket per key across replicas when REDIS_URL is set, else this process's own.
  const limits = part({
    name: "rate limits",
    async start() {
      const metrics = telemetry.value.service;
      const shared =
        config.redisUrl === undefined
          ? undefined
          : await createSharedRateLimiter({
              url: config.redisUrl,
              log,
              onLocalDecision: () => metrics.rateLimitedLocally(),
            });
      return { limiter: shared ?? localRateLimiter(), shared };
    },
    stop: async ({ shared }) => {
      await shared?.close();
    },
  });

  // The periodic jobs. Keys created, revoked or rotated with the CLI (or by
  // another replica's start) apply within METRICS_KEY_RELOAD_MS, and so do
  // retention policies another replica's admin API changed.
  const scheduler = createScheduler(
    "scheduler",
    () => {
      const { registry } = keys.value;
      const policies = retention.value;
      const { ledger, capabilities } = storage.value;
      const jobs: Job[] = [
        {
          name: "key reload",
          intervalMillis: config.keyReloadMillis,
          run: () => registry.reload(),
          failure: { message: "could not reload api keys; keeping the ones loaded" },
        },
        {
          name: "key usage flush",
          intervalMillis: config.keyUsageFlushMillis,
          run: () => registry.flushUsage(),
          failure: { message: "could not persist api key usage; will retry" },
        },
      ];
      if (capabilities.sharedByReplicas) {
        jobs.push({
          name: "retention reload",
          intervalMillis: config.keyReloadMillis,
          run: () => policies.reload(),
          failure: { message: "could not reload retention policies; keeping the ones loaded" },
        });
      }
      if (ledger) {
        jobs.push({
          name: "ledger prune",
          intervalMillis: LEDGER_PRUNE_MILLIS,
          run: (signal) => pruneLedger(ledger, signal),
          failure: { message: "could not delete expired batch ids; will try again" },
        });
      }
      if (config.retention.scheduled) {
        jobs.push({
          name: "retention sweep",
          firstDelayMillis: config.retention.startDelayMillis,
          intervalMillis: config.retention.intervalMillis,
          run: () => sweepRetention(policies, log),
          failure: {
            message: "retention sweep failed; next try at the next interval",
            level: "error",
          },
        });
      }
      return jobs;
    },
    log,
  );

  // The service's routes on the port, once everything behind them is up. The
  // first to stop: new requests are refused (readiness 503 at once), those in
  // flight finish within the budget less the telemetry's reserve, then the
  // port closes.
  const server = part({
    name: "server",
    async start() {
      const served = port.value;
      const backend = storage.value;
      const running = telemetry.value;
      const metrics = running.service;
      served.serve(
        createMetricsRoutes({
          config,
          log,
          registry: keys.value.registry,
          limiter: limits.value.limiter,
          ingestor: ingest.value.ingestor,
          retention: retention.value,
          history: createHistory({
            reader: backend.history,
            horizons: () => horizonsOf(retention.value.policies(), Date.now()),
          }),
          metrics,
          readiness: readiness.value,
          refusals: createRefusalLog({
            log,
            count: (service, reason) => metrics.refused(service, reason),
          }),
          draining: served.draining,
          hardStop: served.hardStop,
        }),
      );
      const { address } = served;
      log.info(
        {
          host: address.address,
          port: address.port,
          tls: config.tls !== undefined,
          storage: backend.name,
          database: backend.location,
          prometheus: running.prometheusUrl,
          otlp: config.telemetry.otlp && redactedEndpoint(config.telemetry.otlp.url),
          otlpProtocol: config.telemetry.otlp?.protocol,
        },
        "listening",
      );
      return served;
    },
    stop: (served, budget) => served.close(budget.millis()),
  });

  const list: readonly Component[] = [
    port,
    storage,
    telemetry,
    keys,
    readiness,
    ingest,
    retention,
    limits,
    scheduler,
    server,
  ];
  return { list, port, keys, ingest };
}

/** A started service. */
export interface RunningService {
  /** Where the one port listens. */
  readonly address: AddressInfo;
  /** The key created on a first start with no key configured, to show the operator once. */
  readonly bootstrapKey: { readonly key: string; readonly service: string } | undefined;
  readonly registry: KeyRegistry;
  /** Rows waiting for a commit right now. */
  readonly queuedRows: number;
  /**
   * Graceful stop: refuses new requests, finishes in-flight ones and their
   * commits, persists key usage, closes the database.
   */
  close(): Promise<void>;
}

/** Options of {@link launchService}. */
export interface LaunchOptions {
  /**
   * Wait in standby while the storage cannot be written for a reason that may
   * pass, the port up and not ready (the process does); without it such a
   * start fails at once.
   */
  readonly standby?: boolean;
  /** Told when the service goes into standby. */
  readonly onStandby?: () => void;
}

/** A service starting, waiting in standby, or running. */
export interface LaunchedService {
  /**
   * Resolves once every component started; rejects when the start failed
   * (what had started is stopped) or was cut short by {@link close}.
   */
  readonly started: Promise<RunningService>;
  /**
   * Graceful stop, whatever the start got to, within
   * METRICS_SHUTDOWN_TIMEOUT_MS; later calls wait for the same stop.
   */
  close(): Promise<void>;
}

/**
 * Starts the service's components in order (see {@link serviceComponents}):
 * the one port first, then the rest behind it. With `standby`, a start that
 * fails because the storage cannot be written yet keeps the port up, not
 * ready, and starts the rest again once the storage takes writes
 * (src/lifecycle/standby.ts).
 */
export function launchService(
  config: Config,
  log: Logger,
  options: LaunchOptions = {},
): LaunchedService {
  const components = serviceComponents(config, log);
  const standby = options.standby
    ? createStandby({
        config,
        log,
        driver: storageDriver(config),
        port: () => components.port.value,
        from: "storage",
        ...(options.onStandby ? { onStandby: options.onStandby } : {}),
      })
    : undefined;
  const runner = runComponents(components.list, {
    log,
    stopMillis: config.shutdownTimeoutMillis,
    ...(standby ? { retry: standby } : {}),
  });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= runner.stop(config.shutdownTimeoutMillis).then(() => log.info("stopped"));
    return closing;
  };
  const started = runner.start().then((): RunningService => {
    standby?.ended();
    const { address } = components.port.value;
    const { registry, bootstrapKey } = components.keys.value;
    const { store } = components.ingest.value;
    return {
      address,
      bootstrapKey,
      registry,
      get queuedRows() {
        return store.queuedRows;
      },
      close,
    };
  });
  return { started, close };
}

/**
 * Starts the service and resolves once it serves; a failure to start (the
 * storage not writable included) rejects, with what had started stopped.
 */
export function startService(config: Config, log: Logger): Promise<RunningService> {
  return launchService(config, log).started;
}
