import type { Principal } from "../auth/principal.js";
import { errors, type Violation } from "../errors.js";
import type { Logger } from "../log.js";
import type { EventStore } from "../storage/event-store.js";
import { StorageError } from "../storage/storage-error.js";
import type { CommittedEvent } from "../telemetry/instruments.js";
import { liftLegacyKeys, renderEvent } from "./normalize.js";
import { newRequestId } from "./request-id.js";
import { type BatchInput, type PathStyle, validateBatch } from "./validate.js";

/** The outcome of one batch: committed, or rejected whole with every violation. */
export type IngestOutcome =
  | { readonly ok: true; readonly accepted: number; readonly requestId: string }
  | { readonly ok: false; readonly violations: Violation[]; readonly requestId: string };

/** Options of one {@link Ingestor.ingest} call. */
export interface IngestOptions {
  /** How violations name fields. */
  readonly paths: PathStyle;
  /** The request id to store with the rows; a new one when absent. */
  readonly requestId?: string;
  /** How each event's timestamp was written, for messages (see {@link validateBatch}). */
  readonly timestampDisplays?: readonly (string | undefined)[];
  /**
   * The key that sent the batch. An ingest-scoped key may only report as its
   * own service (W15); admin keys may report as any.
   */
  readonly principal?: Principal | undefined;
}

/**
 * The one ingest path behind every ingress (gRPC, Connect, gRPC-Web, legacy
 * JSON): lift legacy keys, validate, normalize, commit. It resolves only after
 * the batch is committed (W1); storage failures reject with a retryable
 * UNAVAILABLE or with INTERNAL, the detail going to the log only.
 */
export interface Ingestor {
  ingest(batch: BatchInput, options: IngestOptions): Promise<IngestOutcome>;
}

/** What the ingest path reports to the instruments. */
export interface IngestObserver {
  /** A batch was committed: record it. */
  committed(events: readonly CommittedEvent[]): void;
  /** A batch was rejected whole, for `reason` (`invalid`, `storage`). */
  rejected(count: number, reason: string): void;
}

/** Options of {@link createIngestor}. */
export interface IngestorOptions {
  readonly store: EventStore;
  readonly log: Logger;
  /** Told about every batch's outcome; instruments record only committed batches. */
  readonly observer?: IngestObserver;
  /** Wall-clock milliseconds; injectable for tests. */
  readonly now?: () => number;
  /**
   * Whether ingest keys are bound to their service (`METRICS_KEY_SERVICE_BINDING`,
   * default true). Off only to migrate emitters that shared one key.
   */
  readonly bindKeysToService?: boolean;
  /**
   * Rows the store may hold waiting for a commit (`METRICS_MAX_QUEUED_ROWS`);
   * a batch beyond it is refused as overloaded instead of growing memory.
   */
  readonly maxQueuedRows?: number;
}

/** Creates the ingestor over an event store. */
export function createIngestor(options: IngestorOptions): Ingestor {
  const { store, log } = options;
  const now = options.now ?? Date.now;
  const bindKeys = options.bindKeysToService ?? true;
  const maxQueuedRows = options.maxQueuedRows ?? Number.POSITIVE_INFINITY;
  return {
    async ingest(batch, { paths, requestId = newRequestId(), timestampDisplays, principal }) {
      const receivedAt = now();
      for (const event of batch.events) liftLegacyKeys(event);
      const { violations, warnings } = validateBatch(batch, {
        nowMs: receivedAt,
        paths,
        timestampDisplays,
      });
      if (warnings.length > 0) log.warn({ requestId, warnings }, "batch accepted with warnings");
      if (violations.length > 0) {
        log.debug({ requestId, violations: violations.length }, "batch rejected");
        options.observer?.rejected(batch.events.length, "invalid");
        return { ok: false, violations, requestId };
      }
      // Checked after validation, so that a malformed service name is reported
      // as such; either way nothing of the batch is stored.
      if (bindKeys && principal?.scope === "ingest" && batch.service !== principal.service) {
        log.debug({ requestId, keyId: principal.keyId }, "batch refused: service mismatch");
        options.observer?.rejected(batch.events.length, "forbidden");
        throw errors.serviceMismatch(batch.service, principal.service);
      }
      if (store.queuedRows + batch.events.length > maxQueuedRows) {
        options.observer?.rejected(batch.events.length, "overloaded");
        throw errors.overloaded();
      }
      const rendered = batch.events.map((event) => renderEvent(event, batch, receivedAt));
      try {
        await store.append(
          requestId,
          rendered.map((r) => r.row),
        );
      } catch (cause) {
        const error = StorageError.from(cause);
        log.error({ requestId, err: error.cause ?? error }, "batch not stored");
        options.observer?.rejected(batch.events.length, "storage");
        throw errors.storage(error);
      }
      // The batch is committed and must be acknowledged as such: a failure to
      // record it must not turn into an error reply (the client would resend it).
      try {
        options.observer?.committed(
          rendered.map(({ row, dimensions, metadata }) => ({
            metricType: row.metricType,
            service: row.service,
            value: row.value,
            durationMs: row.durationMs,
            dimensions,
            metadata,
          })),
        );
      } catch (error) {
        log.error({ requestId, err: error }, "committed batch not recorded in the instruments");
      }
      return { ok: true, accepted: rendered.length, requestId };
    },
  };
}
