import { setTimeout as sleep } from "node:timers/promises";
import type { BatchClaim } from "./batch-ledger.js";
import { approximateRowBytes, type EventRow } from "./rows.js";
import { StorageError } from "./storage-error.js";

/** Options of {@link createGroupCommit}. */
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
   * lock, in ms, before its requests fail as unavailable. Retries wait on a
   * timer, so the event loop keeps serving meanwhile.
   */
  readonly busyTimeoutMillis?: number;
  /**
   * The longest an append waits for its commit, in ms, its time in the queue
   * included (default: no bound). Past it the append fails as unavailable: a
   * queued one is taken out of the queue, nothing of it written; one in a
   * commit under way is answered at once and its commit left to end by itself
   * (a commit retrying a lock drops it before its next try; a statement
   * already sent to PostgreSQL may still commit, which a retry with its batch
   * id finds). The service keeps it below the one port's timers, so that a
   * client waiting for storage gets UNAVAILABLE, never a reset stream.
   */
  readonly waitTimeoutMillis?: number;
  /** Called after every commit attempt, for the service's own metrics. */
  readonly onCommit?: (stats: CommitStats) => void;
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
  /** Commits everything queued so far, now, and resolves when it is committed (or failed). */
  flush(): Promise<void>;
  /** About how many bytes the rows not yet committed take (see {@link approximateRowBytes}). */
  readonly queuedBytes: number;
  /** Rows not yet committed: queued, or in a commit under way (retrying a lock, say). */
  readonly queuedRows: number;
  /** Commits what is queued and refuses further appends. */
  close(): Promise<void>;
}

/** One request's rows as a writer receives them. */
export interface QueuedAppend {
  readonly requestId: string;
  readonly rows: readonly EventRow[];
  /** The batch id to claim with the rows, if any. */
  readonly batch: BatchClaim | undefined;
}

/**
 * What a backend provides: one transaction writing a group of appends, the
 * batch ids claimed first. It returns each append's result, in order
 * (`duplicate` when its id was taken, nothing of it written), or throws and
 * writes nothing.
 */
export interface GroupWriter {
  write(group: readonly QueuedAppend[]): AppendResult[] | Promise<AppendResult[]>;
  /** Whether appends may carry a batch id (the writer has a ledger to claim it in). */
  readonly claimsBatchIds: boolean;
  /**
   * Whether a group that failed so may be tried again request by request: only
   * when the failure says the group was not committed and one request's rows
   * may be the cause. A lost connection to a server is neither: the group may
   * have committed with only the answer lost, and writing it again would
   * store it twice.
   */
  retryAlone(error: StorageError): boolean;
  /**
   * Most commits at once: 1 where the database takes one writer (SQLite), more
   * where a connection pool can overlap commits' round trips (PostgreSQL).
   */
  readonly maxConcurrentCommits: number;
}

interface Pending extends QueuedAppend {
  readonly bytes: number;
  /** Whether the append was answered: committed, failed, or past its wait. */
  settled: boolean;
  /** Whether a write of it is under way (sent to the database, no answer yet). */
  writing: boolean;
  /** Ends the append's wait at `waitTimeoutMillis`. */
  timer: NodeJS.Timeout | undefined;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: StorageError) => void;
}

/** Pause between commit attempts while the write lock is held elsewhere. */
const BUSY_RETRY_MILLIS = 10;

/**
 * Group commit over a backend's writer: appends queue, and each commit takes
 * whole requests from the queue up to the row bound, in one transaction, and
 * acknowledges them only once it is committed.
 */
export function createGroupCommit(writer: GroupWriter, options: EventStoreOptions): EventStore {
  let queue: Pending[] = [];
  let queuedRows = 0;
  let queuedBytes = 0;
  /** Rows and bytes taken by commits under way: still in memory until they settle. */
  let committingRows = 0;
  let committingBytes = 0;
  let timer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  let closed = false;
  /** Whether the scheduled commit may not be brought forward: it is already immediate. */
  let timerFinal = false;
  let lastCommitEnded = Number.NEGATIVE_INFINITY;
  const commits = new Set<Promise<void>>();

  const cancelTimer = (): void => {
    if (timer === undefined) return;
    clearTimeout(timer as NodeJS.Timeout);
    clearImmediate(timer as NodeJS.Immediate);
    timer = undefined;
    timerFinal = false;
  };

  const schedule = (): void => {
    if (queue.length === 0 || commits.size >= writer.maxConcurrentCommits) return;
    // Each commit costs ~0.9-1.4 ms here besides its rows (A at 100 and 1000 events
    // per commit, bench/): under concurrent load, requests share commits.
    const othersComing = (options.requestsInFlight?.() ?? 0) > queue.length;
    const wait =
      queuedRows >= options.maxBatchRows || !othersComing
        ? 0
        : options.maxDelayMillis - (performance.now() - lastCommitEnded);
    if (wait > 0) {
      if (timer === undefined) timer = setTimeout(startCommit, wait);
      return;
    }
    if (timer !== undefined && timerFinal) return;
    cancelTimer();
    // setImmediate runs after the I/O callbacks of this loop turn, so requests that
    // arrived while the previous commit held the loop all join the next commit.
    timer = setImmediate(startCommit);
    timerFinal = true;
  };

  /** Takes whole requests from the queue up to the row bound. */
  const takeGroup = (): { group: Pending[]; rows: number; bytes: number } => {
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
    return { group, rows, bytes };
  };

  /** Fails an append past its wait, taking it out of the queue if no commit has it yet. */
  const expire = (p: Pending, waitMillis: number): void => {
    const at = queue.indexOf(p);
    if (at >= 0) {
      queue.splice(at, 1);
      queuedRows -= p.rows.length;
      queuedBytes -= p.bytes;
    }
    // Queued, or between two tries of a busy commit, nothing of it is written;
    // in a write under way (PostgreSQL's, asynchronous), it may yet commit.
    p.reject(
      new StorageError("unavailable", `storage did not commit within ${waitMillis} ms`, {
        uncertain: p.writing,
      }),
    );
  };

  /**
   * Writes a group, retrying while another connection holds the lock, within
   * the busy budget; returns the appends written (those answered while the
   * lock was held are left out: a busy try wrote nothing) with their results.
   */
  const writeRetryingBusy = async (
    group: readonly Pending[],
  ): Promise<{ written: readonly Pending[]; results: AppendResult[] }> => {
    const started = performance.now();
    let written = group;
    for (;;) {
      try {
        for (const p of written) p.writing = true;
        try {
          return { written, results: await writer.write(written) };
        } finally {
          for (const p of written) p.writing = false;
        }
      } catch (cause) {
        const error = StorageError.from(cause);
        const waited = performance.now() - started;
        if (!error.busy || waited >= (options.busyTimeoutMillis ?? 0) || closed) throw error;
        await sleep(BUSY_RETRY_MILLIS);
        written = written.filter((p) => !p.settled);
        if (written.length === 0) throw error;
      }
    }
  };

  /** Commits one group and settles its appends; never rejects. */
  const commitGroup = async (whole: readonly Pending[], rows: number): Promise<void> => {
    const started = performance.now();
    let error: StorageError | undefined;
    let results: AppendResult[] | undefined;
    let group = whole;
    try {
      ({ written: group, results } = await writeRetryingBusy(whole));
    } catch (cause) {
      error = StorageError.from(cause);
    }
    lastCommitEnded = performance.now();
    const durationMillis = lastCommitEnded - started;
    if (error && !error.busy && group.length > 1 && writer.retryAlone(error)) {
      // One request's rows may be what the database refused: commit each request
      // alone, so that only that request fails and the others are stored. What
      // is reported is how that went: no error if every request was stored.
      let alone: StorageError | undefined;
      for (const p of group) {
        if (p.settled) continue; // past its wait: answered already, not written
        p.writing = true;
        try {
          const [result] = await writer.write([p]);
          p.resolve(result ?? "stored");
        } catch (cause) {
          alone = StorageError.from(cause);
          p.reject(alone);
        } finally {
          p.writing = false;
        }
      }
      error = alone;
    } else {
      group.forEach((p, i) => {
        if (error) p.reject(error);
        else p.resolve(results?.[i] ?? "stored");
      });
    }
    try {
      options.onCommit?.({
        requests: group.length,
        rows: group === whole ? rows : group.reduce((n, p) => n + p.rows.length, 0),
        durationMillis,
        ...(error ? { error } : {}),
      });
    } catch {
      // A failing observer must not stop the commits.
    }
  };

  function startCommit(): void {
    timer = undefined;
    timerFinal = false;
    if (queue.length === 0 || commits.size >= writer.maxConcurrentCommits) return;
    const { group, rows, bytes } = takeGroup();
    committingRows += rows;
    committingBytes += bytes;
    const commit = commitGroup(group, rows).finally(() => {
      committingRows -= rows;
      committingBytes -= bytes;
      commits.delete(commit);
      schedule();
    });
    commits.add(commit);
    schedule();
  }

  const flush = async (): Promise<void> => {
    cancelTimer();
    while (queue.length > 0 || commits.size > 0) {
      if (queue.length > 0 && commits.size < writer.maxConcurrentCommits) startCommit();
      else await Promise.race(commits);
    }
    cancelTimer();
  };

  return {
    append(requestId, rows, batch) {
      if (closed) {
        return Promise.reject(new StorageError("closed", "the event store is closed"));
      }
      if (batch && !writer.claimsBatchIds) {
        return Promise.reject(new StorageError("internal", "batch ids need a ledger"));
      }
      return new Promise<AppendResult>((resolve, reject) => {
        let bytes = 0;
        for (const row of rows) bytes += approximateRowBytes(row);
        /** Settles the append once: by its commit or by its wait's end, whichever comes first. */
        const settle = (): boolean => {
          if (p.settled) return false;
          p.settled = true;
          clearTimeout(p.timer);
          return true;
        };
        const p: Pending = {
          requestId,
          rows,
          bytes,
          batch,
          settled: false,
          writing: false,
          timer: undefined,
          resolve: (result) => {
            if (settle()) resolve(result);
          },
          reject: (error) => {
            if (settle()) reject(error);
          },
        };
        const waitMillis = options.waitTimeoutMillis;
        if (waitMillis !== undefined) {
          p.timer = setTimeout(() => expire(p, waitMillis), waitMillis);
          // The wait bounds a request; it never keeps the process alive.
          p.timer.unref();
        }
        queue.push(p);
        queuedRows += rows.length;
        queuedBytes += bytes;
        schedule();
      });
    },
    flush,
    get queuedRows() {
      return queuedRows + committingRows;
    },
    get queuedBytes() {
      return queuedBytes + committingBytes;
    },
    async close() {
      closed = true;
      await flush();
    },
  };
}
