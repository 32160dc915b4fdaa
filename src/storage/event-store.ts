import type { Database } from "better-sqlite3";
import type { BatchClaim, BatchLedger } from "./batch-ledger.js";
import { approximateRowBytes, type EventRow } from "./rows.js";
import { StorageError } from "./storage-error.js";

/** Options of {@link createEventStore}. */
export interface EventStoreOptions {
  /** Most rows one transaction takes; a single larger batch still commits alone. */
  readonly maxBatchRows: number;
  /**
   * Group-commit delay, in ms: while other requests are on their way (see
   * `requestsInFlight`), a commit waits for them until this long after the
   * previous commit ended; a batch never waits longer. 0 = never wait.
   */
  readonly maxDelayMillis: number;
  /**
   * Requests the server is handling right now, those queued here included.
   * While more are in flight than are queued, others are about to append and
   * a commit waits for them (PostgreSQL's `commit_delay` with
   * `commit_siblings`); with none, or without this, it commits at once, so a
   * client that sends one batch at a time never waits.
   */
  readonly requestsInFlight?: () => number;
  /**
   * How long a commit keeps retrying while another connection holds the write
   * lock, in ms, before its requests fail as unavailable. Retries run on a
   * timer, so the event loop keeps serving meanwhile.
   */
  readonly busyTimeoutMillis?: number;
  /** Called after every commit attempt, for the service's own metrics. */
  readonly onCommit?: (stats: CommitStats) => void;
  /** Where batch ids are claimed, in each batch's transaction; without it, appends may not carry one. */
  readonly ledger?: BatchLedger;
}

/** How an append ended: its rows were committed, or its batch id was already committed (nothing written). */
export type AppendResult = "stored" | "duplicate";

/** What one group commit did. */
export interface CommitStats {
  readonly requests: number;
  readonly rows: number;
  readonly durationMillis: number;
  readonly error?: StorageError;
}

/** Durable storage of accepted events with group commit. */
export interface EventStore {
  /**
   * Queues one request's rows and resolves once they are committed. Concurrent
   * appends share one transaction. If it fails, each append is tried alone, so
   * only those the database refuses reject (with a {@link StorageError}); later
   * appends are unaffected. With a batch id, the id is claimed in the same
   * transaction, and the rows are written only if the claim succeeds: the
   * append resolves `duplicate` when a batch within the window holds the id.
   */
  append(requestId: string, rows: readonly EventRow[], batch?: BatchClaim): Promise<AppendResult>;
  /** Commits everything queued so far, now. */
  flush(): void;
  /** About how many bytes the queued rows take (see {@link approximateRowBytes}). */
  readonly queuedBytes: number;
  /** Rows queued and not yet committed. */
  readonly queuedRows: number;
  /** Commits what is queued and refuses further appends. */
  close(): void;
}

interface Pending {
  readonly requestId: string;
  readonly rows: readonly EventRow[];
  readonly bytes: number;
  readonly batch: BatchClaim | undefined;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: StorageError) => void;
  /** When a commit of these rows was first tried, for the busy-retry budget. */
  firstTriedAt?: number;
}

/** Pause between commit attempts while the write lock is held elsewhere. */
const BUSY_RETRY_MILLIS = 10;

/**
 * Creates the event store over an open database. Statements are prepared once;
 * each group is written in one `BEGIN IMMEDIATE` transaction (STACK.md trap 10).
 */
export function createEventStore(db: Database, options: EventStoreOptions): EventStore {
  const insertMetric = db.prepare(
    `INSERT INTO metrics (request_id, service, service_version, instance_id, metric_type,
       timestamp, value, duration_ms, dimensions, metadata)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertAuth = db.prepare(
    `INSERT INTO auth_metrics (request_id, timestamp, service, duration_ms,
       success, method, server, user_hash, error_code)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertTool = db.prepare(
    `INSERT INTO tool_metrics (request_id, timestamp, service, duration_ms, tool_name,
       server_path, server_name, success, client_name, client_version, method, user_hash,
       error_code, input_size_bytes, output_size_bytes)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertDiscovery = db.prepare(
    `INSERT INTO discovery_metrics (request_id, timestamp, service, duration_ms, query,
       results_count, top_k_services, top_n_tools, embedding_time_ms, faiss_search_time_ms)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );

  const writeRow = (requestId: string, r: EventRow): void => {
    insertMetric.run(
      requestId,
      r.service,
      r.serviceVersion,
      r.instanceId,
      r.metricType,
      r.timestamp,
      r.value,
      r.durationMs,
      r.dimensions,
      r.metadata,
    );
    const shared = [requestId, r.timestamp, r.service, r.durationMs] as const;
    if (r.auth) {
      const a = r.auth;
      insertAuth.run(...shared, a.success, a.method, a.server, a.userHash, a.errorCode);
    } else if (r.tool) {
      const t = r.tool;
      insertTool.run(
        ...shared,
        t.toolName,
        t.serverPath,
        t.serverName,
        t.success,
        t.clientName,
        t.clientVersion,
        t.method,
        t.userHash,
        t.errorCode,
        t.inputSizeBytes,
        t.outputSizeBytes,
      );
    } else if (r.discovery) {
      const d = r.discovery;
      insertDiscovery.run(
        ...shared,
        d.query,
        d.resultsCount,
        d.topKServices,
        d.topNTools,
        d.embeddingTimeMs,
        d.faissSearchTimeMs,
      );
    }
  };

  const ledger = options.ledger;
  /** Writes a group's rows; returns the appends whose batch id was already taken (nothing of them written). */
  const writeGroup = db.transaction((group: readonly Pending[]): Set<Pending> | undefined => {
    let duplicates: Set<Pending> | undefined;
    const now = Date.now();
    for (const p of group) {
      if (p.batch && ledger && !ledger.claim(p.batch, p.requestId, now)) {
        duplicates ??= new Set();
        duplicates.add(p);
        continue;
      }
      for (const row of p.rows) writeRow(p.requestId, row);
    }
    return duplicates;
  });
  const resultOf = (p: Pending, duplicates: Set<Pending> | undefined): AppendResult =>
    duplicates?.has(p) ? "duplicate" : "stored";

  let queue: Pending[] = [];
  let queuedRows = 0;
  let queuedBytes = 0;
  let timer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  let closed = false;
  /** Whether the scheduled commit may not be brought forward: it is already immediate, or a busy retry. */
  let timerFinal = false;
  let lastCommitEnded = Number.NEGATIVE_INFINITY;

  const cancelTimer = (): void => {
    if (timer === undefined) return;
    clearTimeout(timer as NodeJS.Timeout);
    clearImmediate(timer as NodeJS.Immediate);
    timer = undefined;
    timerFinal = false;
  };

  const schedule = (): void => {
    if (queue.length === 0) return;
    // Each commit costs ~0.9-1.4 ms here besides its rows (A at 100 and 1000 events
    // per commit, bench/): under concurrent load, requests share commits.
    const othersComing = (options.requestsInFlight?.() ?? 0) > queue.length;
    const wait =
      queuedRows >= options.maxBatchRows || !othersComing
        ? 0
        : options.maxDelayMillis - (performance.now() - lastCommitEnded);
    if (wait > 0) {
      if (timer === undefined) timer = setTimeout(commitNext, wait);
      return;
    }
    if (timer !== undefined && timerFinal) return;
    cancelTimer();
    // setImmediate runs after the I/O callbacks of this loop turn, so requests that
    // arrived while the previous commit held the loop all join the next commit.
    timer = setImmediate(commitNext);
    timerFinal = true;
  };

  /**
   * Takes whole requests from the queue up to the row bound and commits them
   * together. A busy lock is retried on a timer unless `retryBusy` is false
   * (a synchronous flush must settle every request it takes).
   */
  function commitNext(retryBusy = true): void {
    timer = undefined;
    timerFinal = false;
    if (queue.length === 0) return;
    let rows = 0;
    let bytes = 0;
    let count = 0;
    while (count < queue.length) {
      const next = queue[count]?.rows.length ?? 0;
      if (count > 0 && rows + next > options.maxBatchRows) break;
      rows += next;
      bytes += queue[count]?.bytes ?? 0;
      count++;
    }
    const group = queue.slice(0, count);
    queue = queue.slice(count);
    queuedRows -= rows;
    queuedBytes -= bytes;
    const started = performance.now();
    let error: StorageError | undefined;
    let duplicates: Set<Pending> | undefined;
    try {
      duplicates = writeGroup.immediate(group);
    } catch (cause) {
      error = StorageError.from(cause);
    }
    lastCommitEnded = performance.now();
    const durationMillis = lastCommitEnded - started;
    for (const p of group) p.firstTriedAt ??= started;
    const waitedMillis = started - (group[0]?.firstTriedAt ?? started);
    if (retryBusy && error?.busy && waitedMillis < (options.busyTimeoutMillis ?? 0)) {
      // Another process holds the lock: put the group back and try again shortly.
      queue = [...group, ...queue];
      queuedRows += rows;
      queuedBytes += bytes;
      cancelTimer();
      timer = setTimeout(commitNext, BUSY_RETRY_MILLIS);
      timerFinal = true;
      return;
    }
    if (error && !error.busy && group.length > 1) {
      // One request's rows may be what the database refused: commit each request
      // alone, so that only that request fails and the others are stored. What
      // is reported is how that went: no error if every request was stored.
      let alone: StorageError | undefined;
      for (const p of group) {
        try {
          p.resolve(resultOf(p, writeGroup.immediate([p])));
        } catch (cause) {
          alone = StorageError.from(cause);
          p.reject(alone);
        }
      }
      error = alone;
    } else {
      for (const p of group) {
        if (error) p.reject(error);
        else p.resolve(resultOf(p, duplicates));
      }
    }
    try {
      options.onCommit?.({
        requests: group.length,
        rows,
        durationMillis,
        ...(error ? { error } : {}),
      });
    } finally {
      schedule();
    }
  }

  return {
    append(requestId, rows, batch) {
      if (closed) {
        return Promise.reject(new StorageError("closed", "the event store is closed"));
      }
      if (batch && !ledger) {
        return Promise.reject(new StorageError("internal", "batch ids need a ledger"));
      }
      return new Promise<AppendResult>((resolve, reject) => {
        let bytes = 0;
        for (const row of rows) bytes += approximateRowBytes(row);
        queue.push({ requestId, rows, bytes, batch, resolve, reject });
        queuedRows += rows.length;
        queuedBytes += bytes;
        schedule();
      });
    },
    flush() {
      cancelTimer();
      while (queue.length > 0) commitNext(false);
      cancelTimer();
    },
    get queuedRows() {
      return queuedRows;
    },
    get queuedBytes() {
      return queuedBytes;
    },
    close() {
      closed = true;
      this.flush();
    },
  };
}
