/**
 * The analytics benchmark: do the questions operators ask answer in under
 * 250 ms each, through an index, on a database of `events` events spread
 * evenly over 90 days (the issue says 10 million)?
 *
 * A fresh database gets the service's schema and indexes (`openDatabase`,
 * synchronous NORMAL) and is filled through the service's event store in
 * transactions of 10,000 events, oldest first, from the workload's mix with
 * the envelope's service varied over {@link SERVICES}. Then `ANALYZE` runs
 * once and each question runs as one SQL statement with bound parameters,
 * its times relative to now in the stored format: once to warm up, then five
 * times, of which the median is kept. Each question's `EXPLAIN QUERY PLAN`
 * (before and after `ANALYZE`: the service itself never analyzes) says
 * whether every table is reached through an index.
 *
 * The CLI is `bench/analytics.ts`.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import type { EventStore } from "../../src/storage/group-commit.js";
import type { EventRow } from "../../src/storage/rows.js";
import { type Database, openDatabase } from "../../src/storage/sqlite/database.js";
import { createEventStore } from "../../src/storage/sqlite/event-store.js";
import { storedTimeOfMillis } from "../../src/storage/stored-time.js";
import { bareRow } from "./bare-rows.js";
import { buildWorkload, EVENTS_PER_BATCH } from "./workload.js";

/** Options of {@link runAnalytics}. */
export interface AnalyticsOptions {
  /** Events to store (each is a `metrics` row, most also a specialized row). */
  readonly events: number;
  /** Directory for the database file; the caller removes it. */
  readonly dir: string;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

/** One question, timed. */
export interface AnalyticsQueryResult {
  readonly name: string;
  readonly sql: string;
  readonly params: readonly (string | number)[];
  /** Median of five runs after one warm-up run, in ms. */
  readonly medianMs: number;
  /** Rows the statement returned. */
  readonly rows: number;
  /** The value when the statement returns one row of one number (a count), else null. */
  readonly value: number | null;
  /** `EXPLAIN QUERY PLAN` details after `ANALYZE`, the plan that was timed. */
  readonly plan: readonly string[];
  /** The same before `ANALYZE`, as the service (which never analyzes) would plan it. */
  readonly planWithoutStats: readonly string[];
  /** No plan line is a full scan of a table: every table is reached through an index. */
  readonly usesIndex: boolean;
  readonly underLimit: boolean;
}

/** What {@link runAnalytics} measured. */
export interface AnalyticsResult {
  readonly events: number;
  readonly buildSeconds: number;
  readonly eventsPerSecond: number;
  readonly analyzeSeconds: number;
  /** The database file after a WAL checkpoint. */
  readonly databaseBytes: number;
  readonly queries: readonly AnalyticsQueryResult[];
}

/** The limit per question, in ms. */
export const LIMIT_MS = 250;

/** The envelope services the events are spread over. */
export const SERVICES = Array.from({ length: 10 }, (_, i) => `gateway-${i}`);

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const SPAN_DAYS = 90;
/** Events per transaction while building. */
const EVENTS_PER_COMMIT = 10_000;
/** Distinct workload batches the events are drawn from, in turn. */
const POOL_BATCHES = 200;
const TIMED_RUNS = 5;

/** A table reached without an index: `SCAN t` (or the older `SCAN TABLE t`), no `USING`. */
const FULL_SCAN = /^SCAN (TABLE )?\w+( AS \w+)?$/;

/** How {@link fill} spreads and commits the events. */
export interface FillOptions {
  /** Events per transaction (default 10,000). */
  readonly eventsPerCommit?: number;
  /** The time from the oldest event to the newest (default 90 days). */
  readonly spanMs?: number;
  /** Whether commits add to the rollups (default: yes, as the service does). */
  readonly rollups?: boolean;
  /** Every event from one service (the ingest benchmark's), not spread over {@link SERVICES}. */
  readonly oneService?: boolean;
}

/**
 * Fills `into` (a SQLite database, or any backend's event store, which
 * then commits as it was configured and is closed at the end) with
 * `events` events, oldest first, the newest at `newestMs` and the oldest 90
 * days (`spanMs`) before it; returns the seconds it took.
 */
export async function fill(
  into: Database | EventStore,
  events: number,
  newestMs: number,
  log: (line: string) => void,
  options: FillOptions = {},
): Promise<number> {
  const perCommit = options.eventsPerCommit ?? EVENTS_PER_COMMIT;
  const store =
    "append" in into
      ? into
      : createEventStore(into, {
          maxBatchRows: perCommit,
          maxDelayMillis: 60_000,
          rollups: options.rollups ?? true,
        });
  // Rows mapped once; each event then only gets its own service and time.
  const pool = buildWorkload(POOL_BATCHES).events.flatMap((batch) =>
    batch.map((event) => bareRow(event, { service: "", version: "1.0.0" }, 0)),
  );
  const stepMs = (options.spanMs ?? SPAN_DAYS * DAY_MS) / events;
  const oldestMs = newestMs - (events - 1) * stepMs;
  const reportEvery = Math.max(perCommit, Math.ceil(events / 10));
  let nextReport = reportEvery;
  const started = performance.now();
  let done = 0;
  let request = 0;
  while (done < events) {
    const commitEnd = Math.min(events, done + perCommit);
    const pending: Promise<unknown>[] = [];
    while (done < commitEnd) {
      const requestEnd = Math.min(commitEnd, done + EVENTS_PER_BATCH);
      const rows: EventRow[] = [];
      for (; done < requestEnd; done++) {
        const template = pool[done % pool.length] as EventRow;
        rows.push({
          ...template,
          service: options.oneService
            ? (SERVICES[0] as string)
            : (SERVICES[done % SERVICES.length] as string),
          timestamp: storedTimeOfMillis(oldestMs + done * stepMs),
        });
      }
      pending.push(store.append(`req_${(request++).toString(16).padStart(12, "0")}`, rows));
    }
    await store.flush();
    await Promise.all(pending);
    if (done >= nextReport || done === events) {
      const seconds = (performance.now() - started) / 1000;
      log(
        `built ${done.toLocaleString("en-US")} / ${events.toLocaleString("en-US")} events ` +
          `(${Math.round((done / events) * 100)}%) in ${seconds.toFixed(1)} s, ` +
          `${Math.round(done / seconds).toLocaleString("en-US")} events/s`,
      );
      nextReport += reportEvery;
    }
  }
  await store.close();
  return (performance.now() - started) / 1000;
}

/** The questions, with their parameters relative to `nowMs`. */
function questions(
  nowMs: number,
): { name: string; sql: string; params: (string | number)[]; mustFind?: boolean }[] {
  const ago = (ms: number) => storedTimeOfMillis(nowMs - ms);
  const now = storedTimeOfMillis(nowMs);
  return [
    {
      name: "auth failures per user, last hour",
      mustFind: true,
      sql: `SELECT user_hash, count(*) AS failures FROM auth_metrics
            WHERE success = 0 AND timestamp >= ?
            GROUP BY user_hash ORDER BY failures DESC`,
      params: [ago(HOUR_MS)],
    },
    {
      name: "calls and mean duration per tool, last day",
      mustFind: true,
      sql: `SELECT tool_name, count(*) AS calls, avg(duration_ms) AS mean_duration_ms
            FROM tool_metrics WHERE timestamp >= ?
            GROUP BY tool_name`,
      params: [ago(DAY_MS)],
    },
    {
      name: "calls of one tool, 7 days",
      mustFind: true,
      sql: `SELECT count(*) AS calls FROM tool_metrics
            WHERE tool_name = ? AND timestamp >= ? AND timestamp < ?`,
      params: ["tool_3", ago(7 * DAY_MS), now],
    },
    {
      name: "events of one service and type, 7 days",
      mustFind: true,
      sql: `SELECT count(*) AS events FROM metrics
            WHERE service = ? AND metric_type = ? AND timestamp >= ? AND timestamp < ?`,
      params: [SERVICES[3] as string, "tool_execution", ago(7 * DAY_MS), now],
    },
    {
      name: "discovery searches with zero results, last day",
      mustFind: true,
      sql: `SELECT query, count(*) AS searches FROM discovery_metrics
            WHERE results_count = 0 AND timestamp >= ?
            GROUP BY query ORDER BY searches DESC`,
      params: [ago(DAY_MS)],
    },
    {
      // The retention preview's own statement (src/storage/retention.ts).
      name: "retention cut-off count, < now-90 d",
      sql: "SELECT count(*) AS n FROM metrics WHERE timestamp < ?",
      params: [ago(90 * DAY_MS)],
    },
    {
      name: "retention cut-off count, < now-89 d (one day's tail)",
      sql: "SELECT count(*) AS n FROM metrics WHERE timestamp < ?",
      params: [ago(89 * DAY_MS)],
    },
    {
      name: "retention cut-off count, < now-30 d",
      sql: "SELECT count(*) AS n FROM metrics WHERE timestamp < ?",
      params: [ago(30 * DAY_MS)],
    },
  ];
}

/** The detail lines of a statement's `EXPLAIN QUERY PLAN`. */
function planOf(db: Database, sql: string, params: readonly (string | number)[]): string[] {
  const lines = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[];
  return lines.map((line) => line.detail);
}

/** The median of a few numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Builds the database in `options.dir`, then times each question on it. */
export async function runAnalytics(options: AnalyticsOptions): Promise<AnalyticsResult> {
  const log = options.log ?? (() => {});
  const path = join(options.dir, "analytics.db");
  const db = openDatabase(path, { synchronous: "NORMAL", busyTimeoutMillis: 5000 });
  try {
    const buildSeconds = await fill(db, options.events, Date.now(), log);
    db.pragma("wal_checkpoint(TRUNCATE)");
    const databaseBytes = statSync(path).size;

    const nowMs = Date.now();
    const asked = questions(nowMs);
    const plansWithoutStats = asked.map((q) => planOf(db, q.sql, q.params));
    const analyzeStarted = performance.now();
    db.exec("ANALYZE");
    const analyzeSeconds = (performance.now() - analyzeStarted) / 1000;
    log(`ANALYZE took ${analyzeSeconds.toFixed(1)} s`);

    const queries = asked.map((q, i): AnalyticsQueryResult => {
      const statement = db.prepare(q.sql);
      let result = statement.all(...q.params) as Record<string, unknown>[];
      const times: number[] = [];
      for (let run = 0; run < TIMED_RUNS; run++) {
        const started = performance.now();
        result = statement.all(...q.params) as Record<string, unknown>[];
        times.push(performance.now() - started);
      }
      const only = result.length === 1 ? Object.values(result[0] ?? {}) : [];
      const plan = planOf(db, q.sql, q.params);
      const medianMs = median(times);
      log(`${q.name}: ${medianMs.toFixed(2)} ms, ${result.length} rows`);
      const value = only.length === 1 && typeof only[0] === "number" ? only[0] : null;
      // A question that finds nothing times nothing (the workload once stored
      // its typed columns as null, and these ran in microseconds).
      if (q.mustFind && (result.length === 0 || value === 0)) {
        throw new Error(`analytics: "${q.name}" found nothing; the data does not answer it`);
      }
      return {
        name: q.name,
        sql: q.sql.replace(/\s+/g, " "),
        params: q.params,
        medianMs,
        rows: result.length,
        value,
        plan,
        planWithoutStats: plansWithoutStats[i] ?? [],
        usesIndex: !plan.some((line) => FULL_SCAN.test(line) && line !== "SCAN CONSTANT ROW"),
        underLimit: medianMs < LIMIT_MS,
      };
    });
    return {
      events: options.events,
      buildSeconds,
      eventsPerSecond: options.events / buildSeconds,
      analyzeSeconds,
      databaseBytes,
      queries,
    };
  } finally {
    db.close();
  }
}
