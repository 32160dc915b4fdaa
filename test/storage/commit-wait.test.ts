// backends: sqlite only: the group commit over a stand-in writer and SQLite's write lock, called directly
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { describe, expect, it } from "vitest";
import {
  type AppendResult,
  createGroupCommit,
  type QueuedAppend,
} from "../../src/storage/group-commit.js";
import { openDatabase } from "../../src/storage/sqlite/database.js";
import { createEventStore } from "../../src/storage/sqlite/event-store.js";
import { authRow } from "../support/events.js";
import { tempDir } from "../support/service.js";

/** A writer whose commits stay under way until the test lets them go, as on a silent server. */
function stalledWriter() {
  const groups: string[][] = [];
  const releases: (() => void)[] = [];
  return {
    groups,
    release: () => {
      for (const release of releases.splice(0)) release();
    },
    writer: {
      claimsBatchIds: false,
      maxConcurrentCommits: 1,
      retryAlone: () => false,
      write(group: readonly QueuedAppend[]): Promise<AppendResult[]> {
        groups.push(group.map((p) => p.requestId));
        return new Promise((resolve) => {
          releases.push(() => resolve(group.map(() => "stored")));
        });
      },
    },
  };
}

describe("an append's wait for its commit (waitTimeoutMillis)", () => {
  it("should fail an append past its wait as unavailable, and never write one that was still queued", async () => {
    const { groups, release, writer } = stalledWriter();
    const store = createGroupCommit(writer, {
      maxBatchRows: 1000,
      maxDelayMillis: 0,
      waitTimeoutMillis: 100,
    });
    const started = performance.now();
    const inCommit = store.append("in-commit", [authRow()]);
    await new Promise((resolve) => setImmediate(resolve));
    const queued = store.append("queued", [authRow()]);
    const settled = await Promise.allSettled([inCommit, queued]);
    expect(performance.now() - started).toBeLessThan(1000);
    for (const result of settled) {
      expect(result).toMatchObject({
        status: "rejected",
        reason: { failure: "unavailable", message: "storage did not commit within 100 ms" },
      });
    }
    // The queued append left the queue: only the commit under way holds rows.
    expect(store.queuedRows).toBe(1);
    release();
    // The next commit takes what came later, not the append answered already.
    const later = store.append("later", [authRow()]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    release();
    expect(await later).toBe("stored");
    await store.flush();
    expect(groups).toEqual([["in-commit"], ["later"]]);
    expect(store.queuedRows).toBe(0);
  });

  it("should stop retrying another process's write lock for an append past its wait, writing none of it", async () => {
    const dir = tempDir();
    const path = join(dir, "m.db");
    const db = openDatabase(path, { synchronous: "FULL", busyTimeoutMillis: 0 });
    const other = new BetterSqlite3(path);
    try {
      const store = createEventStore(db, {
        maxBatchRows: 1000,
        maxDelayMillis: 0,
        busyTimeoutMillis: 20_000,
        waitTimeoutMillis: 200,
      });
      other.exec("BEGIN IMMEDIATE");
      const started = performance.now();
      await expect(store.append("behind-lock", [authRow("locked")])).rejects.toMatchObject({
        failure: "unavailable",
      });
      const waited = performance.now() - started;
      expect(waited).toBeGreaterThanOrEqual(190);
      expect(waited).toBeLessThan(1000);
      other.exec("ROLLBACK");
      // The commit that was retrying the lock ends without writing it.
      expect(await store.append("after", [authRow("after")])).toBe("stored");
      const count = (service: string) =>
        (
          db.prepare("SELECT count(*) AS n FROM metrics WHERE service = ?").get(service) as {
            n: number;
          }
        ).n;
      expect(count("locked")).toBe(0);
      expect(count("after")).toBe(1);
      await store.close();
    } finally {
      other.close();
      db.close();
    }
  });
});
