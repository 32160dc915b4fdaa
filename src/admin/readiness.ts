import type { ReadinessProbe } from "../storage/backend.js";
import { SCHEMA_VERSION } from "../storage/migrations.js";
import { StorageError } from "../storage/storage-error.js";

/** What `/readyz` and gRPC health report: ready only when every check passes. */
export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: {
    /** `writable`, or why not (`full`, `read-only`, the SQLite code; `unproven` before the start-up proof). */
    readonly database: string;
    /** `applied`, or which version the file is at. */
    readonly migrations: string;
    /** True once a shutdown began. */
    readonly draining: boolean;
  };
}

/** Whether the service can take events now, and what changed it. */
export interface Readiness {
  /**
   * Proves the database writable with a real write sized like a commit (see
   * {@link ReadinessProbe.prove}), as start-up does before the port listens.
   * Throws what the driver threw, so that a start on a database that cannot
   * take a commit waits in standby instead of saying ready; on success the
   * database is `writable`. Until a proof succeeded, {@link check} proves
   * instead of probing.
   */
  prove(): Promise<void>;
  /** Checks now; the database is probed with a write at most once per probe interval. */
  check(): Promise<ReadinessReport>;
  /** The outcome of a commit: a failure to write makes the service unready until a write succeeds. */
  noteCommit(error?: StorageError): void;
}

export type { ReadinessProbe };

/** Options of {@link createReadiness}. */
export interface ReadinessOptions {
  readonly probe: ReadinessProbe;
  /** Whether a shutdown began. */
  readonly draining: () => boolean;
  /** How long a probe's or a commit's verdict stands before the next probe, in ms. */
  readonly probeIntervalMillis?: number;
}

/** How long after a failed commit a successful probe alone does not make the service ready. */
const FAILURE_HOLD_MILLIS = 3000;

/** The short name of a write failure, for the report. */
function describeFailure(error: StorageError): string {
  return error.problem;
}

/**
 * Readiness of the service (issue 10): the database is writable, its
 * migrations are applied, and no shutdown began. Nothing is ready before a
 * real write sized like a commit succeeded ({@link Readiness.prove}, which
 * start-up runs before the port listens). Writability is then known from
 * the commits themselves while events flow; when none came within the probe
 * interval, a tiny write to `readiness_probe` asks the disk again (and once a
 * commit failed, the probe alone says ready only after a few seconds without
 * failures). A write lock held by another process is contention, not a
 * fault: it leaves the last verdict standing.
 */
export function createReadiness(options: ReadinessOptions): Readiness {
  const { probe } = options;
  const interval = options.probeIntervalMillis ?? 1000;
  let database = "unproven";
  /** Whether a proof (or a commit) showed the database takes commits since the start. */
  let proven = false;
  let decidedAt = Number.NEGATIVE_INFINITY;
  let commitFailedAt = Number.NEGATIVE_INFINITY;
  const proveWrite = (): Promise<void> => (probe.prove ? probe.prove() : probe.write());

  /** The probe under way, which concurrent checks share. */
  let probing: Promise<string> | undefined;
  const probeDatabase = async (now: number): Promise<string> => {
    try {
      // Until the database took a commit's worth of writes, a one-row write
      // does not say ready: after a restart on a nearly full volume it passed
      // (into the WAL's tail that a failed commit had left) while every commit
      // then failed.
      if (proven) {
        await probe.write();
      } else {
        await proveWrite();
        proven = true;
      }
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
  const databaseState = (): Promise<string> => {
    const now = performance.now();
    if (now - decidedAt < interval) return Promise.resolve(database);
    probing ??= probeDatabase(now).finally(() => {
      probing = undefined;
    });
    return probing;
  };

  const migrationState = async (): Promise<string> => {
    try {
      const version = await probe.schemaVersion();
      return version === SCHEMA_VERSION ? "applied" : `at version ${version} of ${SCHEMA_VERSION}`;
    } catch (cause) {
      return describeFailure(StorageError.from(cause));
    }
  };

  return {
    async prove() {
      await proveWrite();
      proven = true;
      database = "writable";
      decidedAt = performance.now();
    },
    async check() {
      const draining = options.draining();
      // A draining service answers from what it knows: no probe writes during a shutdown.
      const checks = {
        database: draining ? database : await databaseState(),
        migrations: await migrationState(),
        draining: options.draining(),
      };
      return {
        ready:
          !checks.draining && checks.database === "writable" && checks.migrations === "applied",
        checks,
      };
    },
    noteCommit(error) {
      if (error?.busy) return;
      if (error !== undefined && error.failure !== "unavailable") return;
      decidedAt = performance.now();
      if (error === undefined) {
        database = "writable";
        proven = true;
      } else {
        database = describeFailure(error);
        commitFailedAt = decidedAt;
      }
    },
  };
}
