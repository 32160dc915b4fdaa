// backends: sqlite only: SQLite's readiness probe on a SQLite file (SQLITE_* codes); PostgreSQL's faults are test/scale-out's
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import BetterSqlite3, { SqliteError } from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createReadiness, type Readiness } from "../../src/admin/readiness.js";
import {
  type Database,
  openDatabase,
  sqliteReadinessProbe,
} from "../../src/storage/sqlite/database.js";
import { sqliteStorageError } from "../../src/storage/sqlite/errors.js";
import { tempDir } from "../support/service.js";

/** How long a verdict stands before the next probe, in these tests. */
const PROBE_INTERVAL_MILLIS = 20;

const sqliteFailure = (code: string) => sqliteStorageError(new SqliteError(code, code));

describe("createReadiness", () => {
  let dir: string;
  let path: string;
  let db: Database;
  let draining: boolean;
  let readiness: Readiness;
  beforeEach(() => {
    dir = tempDir();
    path = join(dir, "m.db");
    db = openDatabase(path, { synchronous: "FULL", busyTimeoutMillis: 10 });
    draining = false;
    readiness = createReadiness({
      probe: sqliteReadinessProbe(db),
      draining: () => draining,
      probeIntervalMillis: PROBE_INTERVAL_MILLIS,
    });
  });
  afterEach(() => {
    vi.useRealTimers();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** When the probe last wrote, or undefined if it never did. */
  const probedAt = () =>
    db.prepare("SELECT probed_at FROM readiness_probe WHERE id = 1").pluck().get() as
      | number
      | undefined;

  /** Waits out the probe interval, so that the next check probes again. */
  const nextProbe = () => sleep(PROBE_INTERVAL_MILLIS + 5);

  it("should be ready when the database takes writes, having probed it", async () => {
    expect(await readiness.check()).toEqual({
      ready: true,
      checks: { database: "writable", migrations: "applied", draining: false },
    });
    expect(probedAt()).toBeTypeOf("number");
  });

  it("should turn unready at once, as full, when a commit fails with SQLITE_FULL", async () => {
    expect((await readiness.check()).ready).toBe(true);
    readiness.noteCommit(sqliteFailure("SQLITE_FULL"));
    expect(await readiness.check()).toMatchObject({ ready: false, checks: { database: "full" } });
  });

  it("should stay unready on a successful probe within 3 s of a failed commit, and be ready again after a successful commit", async () => {
    readiness.noteCommit(sqliteFailure("SQLITE_FULL"));
    const before = probedAt();
    await nextProbe();
    // The probe's one-row write passes (the disk is not really full), yet the verdict stands.
    expect(await readiness.check()).toMatchObject({ ready: false, checks: { database: "full" } });
    expect(probedAt()).not.toBe(before);
    readiness.noteCommit();
    expect(await readiness.check()).toMatchObject({
      ready: true,
      checks: { database: "writable" },
    });
  });

  it("should be ready again on a successful probe once 3 s passed without a failed commit", async () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    readiness.noteCommit(sqliteFailure("SQLITE_FULL"));
    vi.advanceTimersByTime(2900);
    expect((await readiness.check()).checks.database).toBe("full");
    vi.advanceTimersByTime(200);
    expect(await readiness.check()).toMatchObject({
      ready: true,
      checks: { database: "writable" },
    });
  });

  it("should be unready while draining, without probing", async () => {
    expect((await readiness.check()).ready).toBe(true);
    const before = probedAt();
    draining = true;
    await nextProbe();
    expect(await readiness.check()).toEqual({
      ready: false,
      checks: { database: "writable", migrations: "applied", draining: true },
    });
    expect(probedAt()).toBe(before);
  });

  it("should leave the verdict standing on a busy commit or a probe that meets another connection's lock", async () => {
    readiness.noteCommit(sqliteFailure("SQLITE_BUSY"));
    expect((await readiness.check()).ready).toBe(true);

    readiness.noteCommit(sqliteFailure("SQLITE_FULL"));
    readiness.noteCommit(sqliteFailure("SQLITE_BUSY"));
    expect((await readiness.check()).checks.database).toBe("full");

    readiness.noteCommit();
    const other = new BetterSqlite3(path);
    try {
      other.exec("BEGIN IMMEDIATE");
      await nextProbe();
      expect(await readiness.check()).toMatchObject({
        ready: true,
        checks: { database: "writable" },
      });
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
  });
});
