import { serviceNameFromSuffix } from "../auth/env-keys.js";
import type { Principal } from "../auth/principal.js";
import { errors, type Violation } from "../errors.js";
import type { Logger } from "../log.js";
import type { EventStore } from "../storage/event-store.js";
import { StorageError } from "../storage/storage-error.js";
import type { CommittedEvent } from "../telemetry/instruments.js";
import { liftLegacyKeys, type RenderedEvent, renderEvent } from "./normalize.js";
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
   * own service (W15); admin keys may report as any. Required, so that no
   * ingress can skip the check by leaving it out.
   */
  readonly principal: Principal | undefined;
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
  /** A batch was rejected whole, for `reason` (`invalid`, `forbidden`, `overloaded`, `storage`). */
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
   * Rows (`METRICS_MAX_QUEUED_ROWS`) and about how many bytes of them
   * (`METRICS_MAX_QUEUED_BYTES`) may wait for a commit: while the queue is at
   * either bound, batches are refused as overloaded instead of growing memory.
   */
  readonly maxQueuedRows?: number;
  readonly maxQueuedBytes?: number;
}

/**
 * Whether a batch's service is the key's. Names are compared as the legacy
 * service derived them from `METRICS_API_KEY_<NAME>` (lowercase, `_` as `-`),
 * so that an emitter reporting as `auth_server` or `Auth-Server` keeps working
 * with the key of `auth-server`.
 */
function sameService(reported: string, principal: Principal | undefined): boolean {
  return (
    principal !== undefined &&
    serviceNameFromSuffix(reported) === serviceNameFromSuffix(principal.service)
  );
}

/** Committed events as the instruments take them. */
export function committedEvents(rendered: readonly RenderedEvent[]): CommittedEvent[] {
  return rendered.map(({ row, dimensions, metadata }) => ({
    metricType: row.metricType,
    service: row.service,
    value: row.value,
    durationMs: row.durationMs,
    dimensions,
    metadata,
  }));
}

/** Creates the ingestor over an event store. */
export function createIngestor(options: IngestorOptions): Ingestor {
  const { store, log } = options;
  const now = options.now ?? Date.now;
  const bindKeys = options.bindKeysToService ?? true;
  const maxQueuedRows = options.maxQueuedRows ?? Number.POSITIVE_INFINITY;
  const maxQueuedBytes = options.maxQueuedBytes ?? Number.POSITIVE_INFINITY;
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
      // as such; either way nothing of the batch is stored. Fails closed: only
      // an admin key may report as another service.
      if (bindKeys && principal?.scope !== "admin" && !sameService(batch.service, principal)) {
        log.debug({ requestId, keyId: principal?.keyId }, "batch refused: service mismatch");
        options.observer?.rejected(batch.events.length, "forbidden");
        throw errors.serviceMismatch(batch.service, principal?.service ?? "(none)");
      }
      if (store.queuedRows >= maxQueuedRows || store.queuedBytes >= maxQueuedBytes) {
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
        options.observer?.committed(committedEvents(rendered));
      } catch (error) {
        log.error({ requestId, err: error }, "committed batch not recorded in the instruments");
      }
      return { ok: true, accepted: rendered.length, requestId };
    },
  };
}
