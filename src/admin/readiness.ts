import type { Database } from "better-sqlite3";
import { SCHEMA_VERSION } from "../storage/migrations.js";
import { StorageError, storageProblemName } from "../storage/storage-error.js";

/** What `/readyz` and gRPC health report: ready only when every check passes. */
export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: {
    /** `writable`, or why not (`full`, `read-only`, the SQLite code). */
    readonly database: string;
    /** `applied`, or which version the file is at. */
    readonly migrations: string;
    /** True once a shutdown began. */
    readonly draining: boolean;
  };
}

/** Whether the service can take events now, and what changed it. */
export interface Readiness {
  /** Checks now; the database is probed with a write at most once per probe interval. */
  check(): ReadinessReport;
  /** The outcome of a commit: a failure to write makes the service unready until a write succeeds. */
  noteCommit(error?: StorageError): void;
}

/** Options of {@link createReadiness}. */
export interface ReadinessOptions {
  readonly db: Database;
  /** Whether a shutdown began. */
  readonly draining: () => boolean;
  /** How long a probe's or a commit's verdict stands before the next probe, in ms. */
  readonly probeIntervalMillis?: number;
}

/** How long after a failed commit a successful probe alone does not make the service ready. */
const FAILURE_HOLD_MILLIS = 3000;

/** The write that asks whether the database takes writes (one row, overwritten). */
export const PROBE_WRITE_SQL =
  "INSERT INTO readiness_probe (id, probed_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at";

/** The short name of a write failure, for the report. */
function describeFailure(error: StorageError): string {
  const cause = error.cause as { code?: unknown } | undefined;
  return storageProblemName(typeof cause?.code === "string" ? cause.code : error.failure);
}

/**
 * Readiness of the service (issue 10): the database is writable, its
 * migrations are applied, and no shutdown began. Writability is known from
 * the commits themselves while events flow; when none came within the probe
 * interval, a tiny write to `readiness_probe` asks the disk again (and once a
 * commit failed, the probe alone says ready only after a few seconds without
 * failures). A write lock held by another process is contention, not a
 * fault: it leaves the last verdict standing.
 */
export function createReadiness(options: ReadinessOptions): Readiness {
  const { db } = options;
  const interval = options.probeIntervalMillis ?? 1000;
  const probe = db.prepare(PROBE_WRITE_SQL);
  const writeProbe = db.transaction((at: number) => probe.run(at));
  let database = "writable";
  let decidedAt = Number.NEGATIVE_INFINITY;
  let commitFailedAt = Number.NEGATIVE_INFINITY;

  const databaseState = (): string => {
    const now = performance.now();
    if (now - decidedAt < interval) return database;
    try {
      writeProbe.immediate(Date.now());
      // A one-row write can pass where a batch's commit still fails (a nearly
      // full disk): after a failed commit, only a successful commit, or a
      // while without failures, makes the service ready again.
      if (now - commitFailedAt >= FAILURE_HOLD_MILLIS) database = "writable";
    } catch (cause) {
      const error = StorageError.from(cause);
      if (!error.busy) database = describeFailure(error);
    }
    decidedAt = now;
    return database;
  };

  const migrationState = (): string => {
    try {
      const version = db.pragma("user_version", { simple: true }) as number;
      return version === SCHEMA_VERSION ? "applied" : `at version ${version} of ${SCHEMA_VERSION}`;
    } catch (cause) {
      return describeFailure(StorageError.from(cause));
    }
  };

  return {
    check() {
      const draining = options.draining();
      // A draining service answers from what it knows: no probe writes during a shutdown.
      const checks = {
        database: draining ? database : databaseState(),
        migrations: migrationState(),
        draining,
      };
      return {
        ready: !draining && checks.database === "writable" && checks.migrations === "applied",
        checks,
      };
    },
    noteCommit(error) {
      if (error?.busy) return;
      if (error !== undefined && error.failure !== "unavailable") return;
      decidedAt = performance.now();
      if (error === undefined) {
        database = "writable";
      } else {
        database = describeFailure(error);
        commitFailedAt = decidedAt;
      }
    },
  };
}
