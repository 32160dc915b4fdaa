import type { AddressInfo } from "node:net";
import { createKeyRegistry, type KeyRegistry } from "./auth/key-registry.js";
import type { Config } from "./config.js";
import { createIngestor } from "./ingest/ingestor.js";
import type { Logger } from "./log.js";
import { createTokenBucketLimiter } from "./ratelimit/token-bucket.js";
import { createMetricsServer } from "./server.js";
import { openDatabase, seedRetentionPolicies } from "./storage/database.js";
import { createEventStore } from "./storage/event-store.js";
import { createKeyStore } from "./storage/key-store.js";
import { createRetention } from "./storage/retention.js";
import { type RetentionSchedule, scheduleRetention } from "./storage/retention-schedule.js";
import { createTelemetry, type Telemetry } from "./telemetry/telemetry.js";

/** How long a shutdown waits for the final telemetry export. */
const TELEMETRY_SHUTDOWN_MILLIS = 5000;

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
  const db = openDatabase(config.sqlitePath, {
    synchronous: config.sqliteSynchronous,
    busyTimeoutMillis: config.sqliteBusyTimeoutMillis,
  });
  let telemetry: Telemetry | undefined;
  try {
    let queuedRows = () => 0;
    let requestsInFlight = () => 0;
    telemetry = await createTelemetry({
      ...config.telemetry,
      databasePath: config.sqlitePath,
      queuedRows: () => queuedRows(),
    });
    const metrics = telemetry.service;
    seedRetentionPolicies(db, config.retentionDays);
    const registry = createKeyRegistry({
      store: createKeyStore(db),
      defaultRateLimit: config.rateLimitPerMinute,
      log,
    });
    registry.syncEnvKeys(config.envApiKeys);
    const bootstrapKey = registry.ensureBootstrapKey();
    const store = createEventStore(db, {
      maxBatchRows: config.commitMaxRows,
      maxDelayMillis: config.commitMaxDelayMillis,
      busyTimeoutMillis: config.sqliteBusyTimeoutMillis,
      requestsInFlight: () => requestsInFlight(),
      onCommit: (stats) => metrics.commit(stats.rows, stats.durationMillis, stats.error?.failure),
    });
    queuedRows = () => store.queuedRows;
    const retention = createRetention({
      db,
      dbPath: config.sqlitePath,
      log,
      minDays: config.retention.minDays,
      batchRows: config.retention.batchRows,
    });
    const instruments = telemetry.events;
    const server = createMetricsServer({
      config,
      log,
      registry,
      limiter: createTokenBucketLimiter(),
      ingestor: createIngestor({
        store,
        log,
        bindKeysToService: config.keyServiceBinding,
        maxQueuedRows: config.maxQueuedRows,
        maxQueuedBytes: config.maxQueuedBytes,
        observer: {
          committed: (events) => {
            metrics.events("accepted", events.length);
            instruments.record(events);
          },
          rejected: (count, reason) => metrics.events("rejected", count, reason),
        },
      }),
      retention,
      metrics,
    });
    requestsInFlight = () => server.inFlight;
    const address = await server.listen();
    const schedule: RetentionSchedule | undefined = config.retention.scheduled
      ? scheduleRetention(retention, { ...config.retention, log })
      : undefined;
    const usageTimer = setInterval(() => registry.flushUsage(), config.keyUsageFlushMillis);
    usageTimer.unref();
    // Keys created, revoked or rotated with the CLI apply within this interval.
    const reloadTimer = setInterval(() => {
      try {
        registry.reload();
      } catch (error) {
        log.warn({ err: error }, "could not reload api keys; keeping the ones loaded");
      }
    }, config.keyReloadMillis);
    reloadTimer.unref();
    log.info(
      {
        host: address.address,
        port: address.port,
        tls: config.tls !== undefined,
        database: config.sqlitePath,
        prometheus: telemetry.prometheusUrl,
        otlp: config.telemetry.otlp?.url,
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
          clearInterval(usageTimer);
          clearInterval(reloadTimer);
          const sweepEnded = schedule?.stop();
          // A sweep or an admin cleanup stops after its current batch (answering
          // "shutting down"): deletions never hold a shutdown up, and nothing
          // touches the database once it is closed.
          const retentionClosed = retention.close();
          await server.close();
          await retentionClosed;
          await sweepEnded;
          store.close();
          registry.flushUsage();
          db.close();
          // Last, and bounded: a final export to a collector that does not answer
          // must not outlast the orchestrator's grace period.
          await Promise.race([
            running
              .shutdown()
              .catch((error: unknown) => log.warn({ err: error }, "telemetry shutdown failed")),
            new Promise((resolve) => setTimeout(resolve, TELEMETRY_SHUTDOWN_MILLIS).unref()),
          ]);
          log.info("stopped");
        })();
        return closing;
      },
    };
  } catch (error) {
    await telemetry?.shutdown().catch(() => {});
    db.close();
    throw error;
  }
}
