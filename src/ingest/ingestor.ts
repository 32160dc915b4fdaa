import { createHash } from "node:crypto";
import { serviceNameFromSuffix } from "../auth/env-keys.js";
import { CLI_KEY_SOURCE } from "../auth/key-admin.js";
import type { Principal } from "../auth/principal.js";
import type { KeyServiceBinding } from "../config.js";
import { errors, type Violation } from "../errors.js";
import type { Logger } from "../log.js";
import {
  type BatchClaim,
  type BatchLedger,
  batchKey,
  type CommittedBatch,
} from "../storage/batch-ledger.js";
import type { AppendResult, EventStore } from "../storage/group-commit.js";
import { StorageError } from "../storage/storage-error.js";
import type { CommittedEvent } from "../telemetry/instruments.js";
import { liftLegacyKeys, type RenderedEvent, renderEvent } from "./normalize.js";
import { newRequestId } from "./request-id.js";
import { type BatchInput, LIMITS, type PathStyle, validateBatch } from "./validate.js";

/**
 * The outcome of one batch: committed, or rejected whole with every violation.
 * `replayed`: the batch id was committed before, and this is that commit's result.
 */
export type IngestOutcome =
  | {
      readonly ok: true;
      readonly accepted: number;
      readonly requestId: string;
      readonly replayed?: boolean;
    }
  | { readonly ok: false; readonly violations: Violation[]; readonly requestId: string };

/** Set on an answer to a retried batch that was committed before (as Stripe and others name it). */
export const REPLAYED_HEADER = "idempotent-replayed";

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
   * own service (docs/legacy-contract.md W15); admin keys may report as any. Required, so that no
   * ingress can skip the check by leaving it out.
   */
  readonly principal: Principal | undefined;
}

/**
 * The one ingest path behind every ingress (gRPC, Connect, gRPC-Web, legacy
 * JSON): lift legacy keys, validate, normalize, commit. It resolves only after
 * the batch is committed (docs/legacy-contract.md W1); storage failures reject with a retryable
 * UNAVAILABLE or with INTERNAL, the detail going to the log only.
 */
export interface Ingestor {
  ingest(batch: BatchInput, options: IngestOptions): Promise<IngestOutcome>;
}

/** What the ingest path reports to the instruments. */
export interface IngestObserver {
  /** A batch was committed: record it. */
  committed(events: readonly CommittedEvent[]): void;
  /**
   * A batch was rejected whole, for `reason` (`invalid`, `forbidden`,
   * `overloaded`, `storage`, `batch_id_reused`).
   */
  rejected(count: number, reason: string): void;
  /** A retried batch was answered from its earlier commit; nothing was stored or recorded. */
  replayed?(count: number): void;
  /**
   * A batch reported as another service than its key's was stored
   * (`METRICS_KEY_SERVICE_BINDING=audit`): once per batch, with its size.
   */
  mismatched?(principal: Principal, reported: string, count: number): void;
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
   * What a batch reported as another service than its ingest key's gets
   * (`METRICS_KEY_SERVICE_BINDING`, default `audit`): stored and reported,
   * refused, or neither. Keys made with the CLI are refused in `audit` too.
   */
  readonly keyServiceBinding?: KeyServiceBinding;
  /** Most events in one batch (`METRICS_MAX_BATCH_EVENTS`, default {@link LIMITS.maxEvents}). */
  readonly maxBatchEvents?: number;
  /**
   * Rows (`METRICS_MAX_QUEUED_ROWS`) and about how many bytes of them
   * (`METRICS_MAX_QUEUED_BYTES`) may wait for a commit: while the queue is at
   * either bound, batches are refused as overloaded instead of growing memory.
   */
  readonly maxQueuedRows?: number;
  readonly maxQueuedBytes?: number;
  /**
   * The committed batch ids (`METRICS_IDEMPOTENCY_WINDOW_SECONDS`); the store
   * must claim ids in the same ledger. Without it, batch ids are only validated.
   */
  readonly ledger?: BatchLedger;
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

/**
 * What the binding does with a batch whose service is not its key's:
 * `refuse` it, store it and `audit` the mismatch, or `allow` it (admin keys
 * relay for any service; `off`). Fails closed without a principal.
 */
function bindingOf(
  mode: KeyServiceBinding,
  reported: string,
  principal: Principal | undefined,
): "refuse" | "audit" | "allow" {
  if (mode === "off") return "allow";
  if (principal === undefined) return "refuse";
  if (principal.scope === "admin" || sameService(reported, principal)) return "allow";
  return mode === "enforce" || principal.source === CLI_KEY_SOURCE ? "refuse" : "audit";
}

/**
 * Pairs of key and reported service already logged as mismatched, at most
 * this many (then no new pair is logged: the counter still counts them).
 */
const MAX_LOGGED_MISMATCHES = 10_000;

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

/**
 * What identifies a batch's content for its batch id: each event as it is
 * stored (type, value, duration, dimensions and metadata with the typed
 * fields, its own timestamp) and the envelope, but not the time it was
 * received, which a retry changes. The same batch sent again, over any
 * ingress, has the same digest.
 */
function digestOf(batch: BatchInput, rendered: readonly RenderedEvent[]): string {
  const hash = createHash("sha256");
  hash.update(`${batch.version ?? ""}\u001f${batch.instanceId ?? ""}`);
  rendered.forEach(({ row }, i) => {
    const ownTime = batch.events[i]?.timestamp === undefined ? "" : row.timestamp;
    hash.update(
      `\u001e${row.metricType}\u001f${row.value}\u001f${row.durationMs ?? ""}\u001f${ownTime}\u001f${row.dimensions}\u001f${row.metadata}`,
    );
  });
  return hash.digest("base64url");
}

/** Creates the ingestor over an event store. */
export function createIngestor(options: IngestorOptions): Ingestor {
  const { store, log } = options;
  const now = options.now ?? Date.now;
  const binding = options.keyServiceBinding ?? "audit";
  const maxEvents = options.maxBatchEvents ?? LIMITS.maxEvents;
  const loggedMismatches = new Set<string>();
  /** Logs a key's batches reported as another service, once per key and service. */
  const noteMismatch = (principal: Principal, reported: string, events: number): void => {
    const pair = `${principal.publicId}\n${reported}`;
    if (!loggedMismatches.has(pair) && loggedMismatches.size < MAX_LOGGED_MISMATCHES) {
      loggedMismatches.add(pair);
      log.warn(
        { keyId: principal.publicId, keyService: principal.service, service: reported },
        "api key reports as another service: stored under the reported service (METRICS_KEY_SERVICE_BINDING=audit)",
      );
    }
    options.observer?.mismatched?.(principal, reported, events);
  };
  const maxQueuedRows = options.maxQueuedRows ?? Number.POSITIVE_INFINITY;
  const maxQueuedBytes = options.maxQueuedBytes ?? Number.POSITIVE_INFINITY;
  const ledger = options.ledger;
  /** Appends under way per batch id, so that a retry sent before the first try ended waits for it. */
  const appending = new Map<string, Promise<AppendResult>>();

  /** The answer to a batch whose id was committed before: that commit's result. */
  const replayOf = (found: CommittedBatch, claim: BatchClaim): IngestOutcome => {
    if (found.digest !== claim.digest) {
      options.observer?.rejected(claim.events, "batch_id_reused");
      throw errors.batchIdReused(claim.batchId, found.events);
    }
    options.observer?.replayed?.(claim.events);
    return { ok: true, accepted: found.events, requestId: found.requestId, replayed: true };
  };

  /**
   * The batch committed under this id, read from the ledger; a failure to read
   * it is storage trouble, answered as such (503 while the database is
   * unreachable), with nothing stored.
   */
  const committed = async (
    claim: BatchClaim,
    requestId: string,
  ): Promise<CommittedBatch | undefined> => {
    try {
      return await ledger?.find(claim.service, claim.batchId);
    } catch (cause) {
      const error = StorageError.from(cause);
      log.error({ requestId, err: error.cause ?? error }, "batch id not looked up");
      options.observer?.rejected(claim.events, "storage");
      throw errors.storage(error);
    }
  };

  /** The earlier commit of this batch id, after any append of it under way has ended. */
  const earlierCommit = async (
    claim: BatchClaim,
    requestId: string,
  ): Promise<IngestOutcome | undefined> => {
    const key = batchKey(claim);
    for (let pending = appending.get(key); pending; pending = appending.get(key)) {
      await pending.catch(() => undefined);
    }
    const found = await committed(claim, requestId);
    return found && replayOf(found, claim);
  };

  return {
    async ingest(batch, { paths, requestId = newRequestId(), timestampDisplays, principal }) {
      const receivedAt = now();
      const verbatim = batch.events.map(liftLegacyKeys);
      const { violations, warnings } = validateBatch(batch, {
        nowMs: receivedAt,
        paths,
        timestampDisplays,
        maxEvents,
      });
      if (warnings.length > 0) log.warn({ requestId, warnings }, "batch accepted with warnings");
      if (violations.length > 0) {
        log.debug({ requestId, violations: violations.length }, "batch rejected");
        options.observer?.rejected(batch.events.length, "invalid");
        return { ok: false, violations, requestId };
      }
      // Checked after validation, so that a malformed service name is reported
      // as such; either way nothing of a refused batch is stored.
      const bound = bindingOf(binding, batch.service, principal);
      if (bound === "refuse") {
        options.observer?.rejected(batch.events.length, "forbidden");
        throw errors.serviceMismatch(batch.service, principal?.service ?? "(none)");
      }
      const envelope = { ...batch, keyService: principal?.service };
      // Rendered once, when needed: a batch refused for overload is not.
      let renderedOnce: RenderedEvent[] | undefined;
      const render = (): RenderedEvent[] => {
        renderedOnce ??= batch.events.map((event, i) =>
          renderEvent(event, envelope, receivedAt, verbatim[i]),
        );
        return renderedOnce;
      };
      const claim: BatchClaim | undefined =
        ledger && batch.batchId !== undefined
          ? {
              service: serviceNameFromSuffix(batch.service),
              batchId: batch.batchId,
              events: batch.events.length,
              digest: digestOf(batch, render()),
            }
          : undefined;
      // A retry of a committed batch is answered before the overload check: it stores nothing.
      const replay = claim && (await earlierCommit(claim, requestId));
      if (replay) return replay;
      if (store.queuedRows >= maxQueuedRows || store.queuedBytes >= maxQueuedBytes) {
        options.observer?.rejected(batch.events.length, "overloaded");
        throw errors.overloaded();
      }
      const rendered = render();
      const appended = store.append(
        requestId,
        rendered.map((r) => r.row),
        claim,
      );
      if (claim) {
        const key = batchKey(claim);
        appending.set(key, appended);
        const done = () => {
          if (appending.get(key) === appended) appending.delete(key);
        };
        appended.then(done, done);
      }
      let result: AppendResult;
      try {
        result = await appended;
      } catch (cause) {
        const error = StorageError.from(cause);
        log.error({ requestId, err: error.cause ?? error }, "batch not stored");
        options.observer?.rejected(batch.events.length, "storage");
        throw errors.storage(error);
      }
      if (result === "duplicate" && claim) {
        // A batch with this id committed first: another process, or an append of
        // ours in the same or an earlier group (the ledger claim is checked in
        // the transaction). Answer with its result.
        const found = await committed(claim, requestId);
        if (found === undefined) throw errors.internal(new Error("claimed batch id not found"));
        return replayOf(found, claim);
      }
      // The batch is committed and must be acknowledged as such: a failure to
      // record it must not turn into an error reply (the client would resend it).
      try {
        options.observer?.committed(committedEvents(rendered));
        if (bound === "audit" && principal) noteMismatch(principal, batch.service, rendered.length);
      } catch (error) {
        log.error({ requestId, err: error }, "committed batch not recorded in the instruments");
      }
      return { ok: true, accepted: rendered.length, requestId };
    },
  };
}
