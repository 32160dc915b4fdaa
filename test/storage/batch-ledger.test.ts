// backends: sqlite only: SQLite's batch ledger, opened directly; PostgreSQL's store is test/scale-out/postgres-store
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BatchClaim } from "../../src/storage/batch-ledger.js";
import type { EventRow } from "../../src/storage/rows.js";
import {
  createBatchLedger,
  type SqliteBatchLedger,
} from "../../src/storage/sqlite/batch-ledger.js";
import { type Database, openDatabase } from "../../src/storage/sqlite/database.js";
import { type CommitStats, createEventStore } from "../../src/storage/sqlite/event-store.js";
import { StorageError } from "../../src/storage/storage-error.js";
import { authRow } from "../support/events.js";
import { countRows, tempDir } from "../support/service.js";

const row = () => authRow("svc", 1);

/** A row the database refuses: `metrics.metric_type` is NOT NULL. */
const refusedRow = (): EventRow => ({ ...row(), metricType: null as unknown as string });

const claim = (batchId: string, events = 1): BatchClaim => ({
  service: "svc",
  batchId,
  events,
  digest: `digest-${batchId}`,
});

/** An event store claiming batch ids in `ledger`, committing each group at once, and its commits. */
function storeWith(db: Database, ledger: SqliteBatchLedger) {
  const commits: CommitStats[] = [];
  const store = createEventStore(db, {
    maxBatchRows: 1000,
    maxDelayMillis: 0,
    ledger,
    onCommit: (stats) => commits.push(stats),
  });
  return { store, commits };
}

describe("createBatchLedger", () => {
  let dir: string;
  let db: Database;
  beforeEach(() => {
    dir = tempDir();
    db = openDatabase(join(dir, "m.db"), { synchronous: "FULL", busyTimeoutMillis: 50 });
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("should hold an id for its window and let a claim take it over once it expired", async () => {
    const t0 = 1_000_000;
    let now = t0;
    const ledger = createBatchLedger(db, { windowMillis: 1000, now: () => now });
    expect(ledger.claim(claim("b1"), "req_1", t0)).toBe(true);
    expect(ledger.claim(claim("b1"), "req_2", t0 + 1000)).toBe(false);
    now = t0 + 1000;
    expect(await ledger.find("svc", "b1")).toEqual({
      requestId: "req_1",
      events: 1,
      digest: "digest-b1",
    });
    now = t0 + 1001;
    expect(await ledger.find("svc", "b1")).toBeUndefined();
    expect(ledger.claim(claim("b1", 2), "req_3", t0 + 1001)).toBe(true);
    expect(await ledger.find("svc", "b1")).toEqual({
      requestId: "req_3",
      events: 2,
      digest: "digest-b1",
    });
    expect(countRows(db, "ingest_batches")).toBe(1);
  });

  it("should prune only expired ids, oldest first, at most maxRows at a time", async () => {
    const now = 10_000_000;
    const ledger = createBatchLedger(db, { windowMillis: 1000, now: () => now });
    for (let i = 0; i < 5; i++) ledger.claim(claim(`old${i}`), "req_old", now - 5000 + i);
    ledger.claim(claim("fresh1"), "req_new", now - 1000);
    ledger.claim(claim("fresh2"), "req_new", now);
    expect(await ledger.prune(3)).toBe(3);
    expect(
      db.prepare("SELECT batch_id FROM ingest_batches ORDER BY batch_id").pluck().all(),
    ).toEqual(["fresh1", "fresh2", "old3", "old4"]);
    expect(await ledger.prune(10)).toBe(2);
    expect(await ledger.prune(10)).toBe(0);
    expect(
      db.prepare("SELECT batch_id FROM ingest_batches ORDER BY batch_id").pluck().all(),
    ).toEqual(["fresh1", "fresh2"]);
  });

  describe("with the event store", () => {
    it("should store one of two appends with the same id in one group commit, and answer the other duplicate", async () => {
      const ledger = createBatchLedger(db, { windowMillis: 60_000 });
      const { store, commits } = storeWith(db, ledger);
      const results = await Promise.all([
        store.append("req_1", [row(), row()], claim("same", 2)),
        store.append("req_2", [row(), row()], claim("same", 2)),
      ]);
      expect(commits.map((c) => c.requests)).toEqual([2]);
      expect(results).toEqual(["stored", "duplicate"]);
      expect(countRows(db, "metrics")).toBe(2);
      expect(countRows(db, "metrics", "request_id = 'req_1'")).toBe(2);
      expect((await ledger.find("svc", "same"))?.requestId).toBe("req_1");
    });

    it("should claim the good requests' ids exactly once when their group fails and is retried request by request", async () => {
      const ledger = createBatchLedger(db, { windowMillis: 60_000 });
      const { store, commits } = storeWith(db, ledger);
      const results = await Promise.allSettled([
        store.append("req_a", [row()], claim("a")),
        store.append("req_bad", [row(), refusedRow()], claim("bad", 2)),
        store.append("req_b", [row(), row()], claim("b", 2)),
      ]);
      expect(results.map((r) => (r.status === "fulfilled" ? r.value : r.status))).toEqual([
        "stored",
        "rejected",
        "stored",
      ]);
      const reason = (results[1] as PromiseRejectedResult).reason as StorageError;
      expect(reason).toBeInstanceOf(StorageError);
      expect(reason.failure).toBe("internal");
      // One group commit, reported with the failure of the request retried alone, not the group's.
      expect(commits).toHaveLength(1);
      expect(commits[0]).toMatchObject({ requests: 3, rows: 5 });
      expect(commits[0]?.error).toBe(reason);

      expect(countRows(db, "metrics", "request_id = 'req_a'")).toBe(1);
      expect(countRows(db, "metrics", "request_id = 'req_b'")).toBe(2);
      expect(countRows(db, "metrics", "request_id = 'req_bad'")).toBe(0);
      expect(
        db.prepare("SELECT batch_id, request_id FROM ingest_batches ORDER BY batch_id").all(),
      ).toEqual([
        { batch_id: "a", request_id: "req_a" },
        { batch_id: "b", request_id: "req_b" },
      ]);

      // The refused batch's id was not claimed: its retry is stored; the good ones' are duplicates.
      const retries = await Promise.all([
        store.append("req_a2", [row()], claim("a")),
        store.append("req_bad2", [row(), row()], claim("bad", 2)),
      ]);
      expect(retries).toEqual(["duplicate", "stored"]);
      expect(countRows(db, "metrics")).toBe(5);
    });

    it("should take over an id whose window expired and store the batch again", async () => {
      const ledger = createBatchLedger(db, { windowMillis: 30 });
      const { store } = storeWith(db, ledger);
      expect(await store.append("req_1", [row()], claim("late"))).toBe("stored");
      expect(await store.append("req_2", [row()], claim("late"))).toBe("duplicate");
      await sleep(50);
      expect(await store.append("req_3", [row()], claim("late"))).toBe("stored");
      expect(countRows(db, "metrics")).toBe(2);
      expect((await ledger.find("svc", "late"))?.requestId).toBe("req_3");
      expect(countRows(db, "ingest_batches")).toBe(1);
    });
  });
});
