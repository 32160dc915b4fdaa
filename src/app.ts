import type { AddressInfo } from "node:net";
import { createReadiness } from "./admin/readiness.js";
import { createKeyRegistry, type KeyRegistry } from "./auth/key-registry.js";
import type { Config } from "./config.js";
import { createIngestor } from "./ingest/ingestor.js";
import type { Logger } from "./log.js";
import { createSharedRateLimiter, type SharedRateLimiter } from "./ratelimit/shared-limiter.js";
import { localRateLimiter } from "./ratelimit/token-bucket.js";
import { createMetricsServer } from "./server.js";
import { openStorage } from "./storage/backend.js";
import type { BatchLedger } from "./storage/batch-ledger.js";
import { createRetention } from "./storage/retention.js";
import { type RetentionSchedule, scheduleRetention } from "./storage/retention-schedule.js";
import { createRefusalLog } from "./telemetry/refusal-log.js";
import { createTelemetry, redactedEndpoint, type Telemetry } from "./telemetry/telemetry.js";

/** The most of the shutdown budget kept for the final telemetry export. */
const TELEMETRY_SHUTDOWN_MILLIS = 5000;

/** How often expired batch ids are deleted, and how many per transaction. */
const LEDGER_PRUNE_MILLIS = 60_000;
const LEDGER_PRUNE_ROWS = 5000;

/** Shuts telemetry down (its final export), waiting at most `millis`. */
async function boundedShutdown(
  telemetry: Telemetry | undefined,
  millis: number,
  log: Logger,
): Promise<void> {
  if (telemetry === undefined) return;
  await Promise.race([
    telemetry
      .shutdown()
      .catch((error: unknown) => log.warn({ err: error }, "telemetry shutdown failed")),
    new Promise((resolve) => setTimeout(resolve, millis).unref()),
  ]);
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

/**
 * Composes and starts the service: database (with migrations), API keys,
 * event store, ingestor and the one-port server.
 */
export async function startService(config: Config, log: Logger): Promise<RunningService> {
  const storage = await openStorage(config);
  let telemetry: Telemetry | undefined;
  let shared: SharedRateLimiter | undefined;
  try {
    let queuedRows = () => 0;
    let requestsInFlight = () => 0;
    let draining = () => false;
    telemetry = await createTelemetry({
      ...config.telemetry,
      log,
      ...(storage.filePath === undefined ? {} : { databasePath: storage.filePath }),
      queuedRows: () => queuedRows(),
    });
    const metrics = telemetry.service;
    await storage.seedRetentionPolicies(config.retentionDays);
    const registry = await createKeyRegistry({
      store: storage.keys,
      defaultRateLimit: config.rateLimitPerMinute,
      log,
    });
    await registry.syncEnvKeys(config.envApiKeys);
    const bootstrapKey = await registry.ensureBootstrapKey();
    const readiness = createReadiness({ probe: storage.readiness, draining: () => draining() });
    // A real write before the port listens: a database that cannot take a
    // commit fails the start here, and the supervisor waits in standby
    // (src/standby.ts) instead of /readyz saying ready until the first commit.
    await readiness.prove();
    storage.startupDone();
    const ledger: BatchLedger | undefined = storage.ledger;
    const store = storage.createEventStore({
      maxBatchRows: config.commitMaxRows,
      maxDelayMillis: config.commitMaxDelayMillis,
      requestsInFlight: () => requestsInFlight(),
      onCommit: (stats) => {
        readiness.noteCommit(stats.error);
        metrics.commit(stats.rows, stats.durationMillis, stats.error?.failure);
      },
    });
    queuedRows = () => store.queuedRows;
    const retention = await createRetention({
      store: storage.retention,
      log,
      minDays: config.retention.minDays,
      batchRows: config.retention.batchRows,
    });
    const instruments = telemetry.events;
    // One bucket per key across replicas when REDIS_URL is set, else this process's own.
    shared =
      config.redisUrl === undefined
        ? undefined
        : await createSharedRateLimiter({
            url: config.redisUrl,
            log,
            onLocalDecision: () => metrics.rateLimitedLocally(),
          });
    const limiter = shared ?? localRateLimiter();
    const server = createMetricsServer({
      config,
      log,
      registry,
      limiter,
      ingestor: createIngestor({
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
      }),
      retention,
      metrics,
      readiness,
      refusals: createRefusalLog({
        log,
        count: (service, reason) => metrics.refused(service, reason),
      }),
    });
    draining = () => server.draining;
    requestsInFlight = () => server.inFlight;
    const address = await server.listen();
    const schedule: RetentionSchedule | undefined = config.retention.scheduled
      ? scheduleRetention(retention, { ...config.retention, log })
      : undefined;
    const usageTimer = setInterval(() => void registry.flushUsage(), config.keyUsageFlushMillis);
    usageTimer.unref();
    // Expired batch ids go in small transactions, one per loop turn, so ingest keeps its pace.
    let pruning = true;
    const pruneSome = async (batchIds: BatchLedger): Promise<void> => {
      try {
        while (pruning && (await batchIds.prune(LEDGER_PRUNE_ROWS)) === LEDGER_PRUNE_ROWS) {
          await new Promise(setImmediate);
        }
      } catch (error) {
        log.warn({ err: error }, "could not delete expired batch ids; will try again");
      }
    };
    const pruneTimer =
      ledger && setInterval(() => void pruneSome(ledger), LEDGER_PRUNE_MILLIS).unref();
    // Keys created, revoked or rotated with the CLI (or by another replica's
    // start) apply within this interval, and so do retention policies another
    // replica's admin API changed.
    const reloadTimer = setInterval(() => {
      registry
        .reload()
        .catch((error: unknown) =>
          log.warn({ err: error }, "could not reload api keys; keeping the ones loaded"),
        );
      if (storage.capabilities.sharedByReplicas) {
        retention
          .reload()
          .catch((error: unknown) =>
            log.warn(
              { err: error },
              "could not reload retention policies; keeping the ones loaded",
            ),
          );
      }
    }, config.keyReloadMillis);
    reloadTimer.unref();
    log.info(
      {
        host: address.address,
        port: address.port,
        tls: config.tls !== undefined,
        storage: storage.name,
        database: storage.location,
        prometheus: telemetry.prometheusUrl,
        otlp: config.telemetry.otlp && redactedEndpoint(config.telemetry.otlp.url),
        otlpProtocol: config.telemetry.otlp?.protocol,
      },
      "listening",
    );
    const running = telemetry;

    let closing: Promise<void> | undefined;
    return {
      address,
      bootstrapKey,
      registry,
      get queuedRows() {
        return store.queuedRows;
      },
      close() {
        closing ??= (async () => {
          // METRICS_SHUTDOWN_TIMEOUT_MS bounds the whole shutdown: in-flight
          // requests get it less a reserve for the final export, which gets
          // whatever they leave.
          const deadline = performance.now() + config.shutdownTimeoutMillis;
          const exportReserve = Math.min(
            TELEMETRY_SHUTDOWN_MILLIS,
            Math.floor(config.shutdownTimeoutMillis / 4),
          );
          clearInterval(usageTimer);
          clearInterval(pruneTimer);
          pruning = false;
          clearInterval(reloadTimer);
          const sweepEnded = schedule?.stop();
          // A sweep or an admin cleanup stops after its current batch (answering
          // "shutting down"): deletions never hold a shutdown up, and nothing
          // touches the database once it is closed.
          const retentionClosed = retention.close();
          await server.close(config.shutdownTimeoutMillis - exportReserve);
          await retentionClosed;
          await sweepEnded;
          await store.close();
          await registry.flushUsage();
          await storage.close();
          await shared?.close();
          // Last, and bounded: a final export to a collector that does not answer
          // must not outlast the orchestrator's grace period.
          await boundedShutdown(
            running,
            Math.max(exportReserve, deadline - performance.now()),
            log,
          );
          log.info("stopped");
        })();
        return closing;
      },
    };
  } catch (error) {
    await boundedShutdown(telemetry, TELEMETRY_SHUTDOWN_MILLIS, log);
    await shared?.close();
    await storage.close();
    throw error;
  }
}
