// backends: sqlite only: SQLite's event store, opened directly; PostgreSQL's is test/scale-out/postgres-store
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Database, openDatabase } from "../../src/storage/sqlite/database.js";
import { type CommitStats, createEventStore } from "../../src/storage/sqlite/event-store.js";
import { StorageError } from "../../src/storage/storage-error.js";
import { authRow } from "../support/events.js";
import { tempDir } from "../support/service.js";

const count = (db: Database, where = "1 = 1") =>
  (db.prepare(`SELECT count(*) AS n FROM metrics WHERE ${where}`).get() as { n: number }).n;

describe("createEventStore", () => {
  let dir: string;
  let db: Database;
  beforeEach(() => {
    dir = tempDir();
    db = openDatabase(join(dir, "m.db"), { synchronous: "FULL", busyTimeoutMillis: 50 });
  });
  afterEach(() => {
    db.close();
  });

  it("should commit concurrent appends together in one transaction", async () => {
    const commits: CommitStats[] = [];
    const store = createEventStore(db, {
      maxBatchRows: 1000,
      maxDelayMillis: 0,
      onCommit: (s) => commits.push(s),
    });
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        store.append(`req_${i}`, [authRow("a", i), authRow("a", i)]),
      ),
    );
    expect(commits).toEqual([expect.objectContaining({ requests: 20, rows: 40 })]);
    expect(count(db)).toBe(40);
    expect((db.prepare("SELECT count(*) AS n FROM auth_metrics").get() as { n: number }).n).toBe(
      40,
    );
  });

  it("should resolve an append only once its rows are readable by another connection", async () => {
    const store = createEventStore(db, { maxBatchRows: 1000, maxDelayMillis: 5 });
    const reader = new BetterSqlite3(join(dir, "m.db"), { readonly: true });
    const pending = store.append("req_x", [authRow("durable")]);
    expect(count(reader, "service = 'durable'")).toBe(0);
    await pending;
    expect(count(reader, "service = 'durable'")).toBe(1);
    reader.close();
  });

  describe("group commit", () => {
    const commits: { requests: number; at: number }[] = [];
    let inFlight = 0;
    const pacedStore = () => {
      commits.length = 0;
      return createEventStore(db, {
        maxBatchRows: 1000,
        maxDelayMillis: 300,
        requestsInFlight: () => inFlight,
        onCommit: (stats) => commits.push({ requests: stats.requests, at: performance.now() }),
      });
    };

    it("should never make a client that sends one batch at a time wait", async () => {
      inFlight = 1;
      const store = pacedStore();
      const started = performance.now();
      for (const id of ["a", "b", "c"]) await store.append(id, [authRow("sequential")]);
      expect(commits.map((c) => c.requests)).toEqual([1, 1, 1]);
      expect(performance.now() - started).toBeLessThan(200);
    });

    it("should wait for requests in flight and commit them together as soon as the last arrives", async () => {
      inFlight = 3;
      const store = pacedStore();
      await store.append("a", [authRow("grouped")]); // nothing committed before: at once
      const b = store.append("b", [authRow("grouped")]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(commits).toHaveLength(1); // b waits: another request is on its way
      inFlight = 2;
      await Promise.all([b, store.append("c", [authRow("grouped")])]);
      expect(commits.map((c) => c.requests)).toEqual([1, 2]);
      expect((commits[1]?.at ?? 0) - (commits[0]?.at ?? 0)).toBeLessThan(250);
      expect(count(db, "service = 'grouped'")).toBe(3);
    });

    it("should wait no longer than the delay after the previous commit for requests that never come", async () => {
      inFlight = 5;
      const store = pacedStore();
      await store.append("a", [authRow("late")]);
      await store.append("b", [authRow("late")]);
      expect(commits.map((c) => c.requests)).toEqual([1, 1]);
      const gap = (commits[1]?.at ?? 0) - (commits[0]?.at ?? 0);
      expect(gap).toBeGreaterThanOrEqual(290);
      expect(gap).toBeLessThan(1000);
    });
  });

  it("should bound a transaction by rows while keeping each request whole", async () => {
    const commits: CommitStats[] = [];
    const store = createEventStore(db, {
      maxBatchRows: 5,
      maxDelayMillis: 0,
      onCommit: (s) => commits.push(s),
    });
    await Promise.all([
      store.append("r1", [authRow("b"), authRow("b"), authRow("b")]),
      store.append("r2", [authRow("b"), authRow("b"), authRow("b")]),
      store.append(
        "r3",
        Array.from({ length: 7 }, (_, i) => authRow("b", i)),
      ),
    ]);
    expect(commits.map((c) => c.rows)).toEqual([3, 3, 7]);
    expect(count(db)).toBe(13);
  });

  it("should fail only the request the database refuses, storing the others of its transaction and later ones", async () => {
    // A real SQLite failure: a trigger aborts any insert for service 'poison'.
    db.exec(
      "CREATE TRIGGER poison BEFORE INSERT ON metrics WHEN NEW.service = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
    );
    const store = createEventStore(db, { maxBatchRows: 1000, maxDelayMillis: 0 });
    const first = [
      store.append("ok1", [authRow("good")]),
      store.append("bad", [authRow("poison")]),
    ];
    const results = await Promise.allSettled(first);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected"]);
    const reason = (results[1] as PromiseRejectedResult).reason as StorageError;
    expect(reason).toBeInstanceOf(StorageError);
    expect(reason.failure).toBe("internal");
    expect(count(db, "service = 'good'")).toBe(1);
    expect(count(db, "service = 'poison'")).toBe(0);

    await store.append("ok2", [authRow("good"), authRow("good")]);
    expect(count(db, "service = 'good'")).toBe(3);
  });

  it("should wait out a write lock held by another process within the busy timeout, without blocking the loop", async () => {
    const other = new BetterSqlite3(join(dir, "m.db"));
    other.exec("BEGIN IMMEDIATE");
    const store = createEventStore(db, {
      maxBatchRows: 1000,
      maxDelayMillis: 0,
      busyTimeoutMillis: 10_000,
    });
    let settled = false;
    const pending = store.append("waits", [authRow("patient")]).finally(() => {
      settled = true;
    });
    // The loop keeps turning while the commit waits: timers fire, the append is still pending.
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false);
    other.exec("ROLLBACK");
    other.close();
    await pending;
    expect(count(db, "service = 'patient'")).toBe(1);
  });

  it("should make a flush wait out another connection's lock, and fail what a close leaves locked", async () => {
    const other = new BetterSqlite3(join(dir, "m.db"));
    other.exec("BEGIN IMMEDIATE");
    const store = createEventStore(db, {
      maxBatchRows: 1000,
      maxDelayMillis: 1000,
      busyTimeoutMillis: 60_000,
    });
    const flushed = store.append("flushed", [authRow("waits")]);
    const flushing = store.flush();
    await new Promise((r) => setTimeout(r, 50));
    other.exec("ROLLBACK");
    await flushing;
    expect(await flushed).toBe("stored");
    expect(count(db, "service = 'waits'")).toBe(1);

    // A close does not wait for the lock: the shutdown must not hang on another process.
    other.exec("BEGIN IMMEDIATE");
    const closing = store.append("closing", [authRow("x")]);
    await store.close();
    other.exec("ROLLBACK");
    other.close();
    await expect(closing).rejects.toMatchObject({ failure: "unavailable", busy: true });
  });

  it("should report a write lock held by another process as retryable once the busy timeout passes", async () => {
    const other = new BetterSqlite3(join(dir, "m.db"));
    other.exec("BEGIN IMMEDIATE");
    const store = createEventStore(db, {
      maxBatchRows: 1000,
      maxDelayMillis: 0,
      busyTimeoutMillis: 50,
    });
    const error = await store.append("blocked", [authRow("x")]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).failure).toBe("unavailable");
    other.exec("ROLLBACK");
    other.close();
    await store.append("after", [authRow("x")]);
    expect(count(db)).toBe(1);
  });

  it("should commit what is queued on close and refuse appends after it", async () => {
    const store = createEventStore(db, { maxBatchRows: 1000, maxDelayMillis: 1000 });
    const pending = store.append("late", [authRow("closing")]);
    await store.close();
    await pending;
    expect(count(db, "service = 'closing'")).toBe(1);
    await expect(store.append("too-late", [authRow("closing")])).rejects.toMatchObject({
      failure: "closed",
    });
  });
});
