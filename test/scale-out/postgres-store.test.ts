import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import type { StorageBackend } from "../../src/storage/backend.js";
import { openStorage } from "../../src/storage/drivers.js";
import type { CommitStats } from "../../src/storage/group-commit.js";
import { type EventRow, specializedRowOf } from "../../src/storage/rows.js";
import { freshPgSchema, pgTestDb, type TestDb } from "../support/database.js";
import { authRow } from "../support/events.js";
import { countIn } from "../support/service.js";

/** A tool event row with every column of `tool_metrics` set. */
function toolRow(toolName: string): EventRow {
  const values: Readonly<Record<string, string | number>> = {
    tool_name: toolName,
    server_path: "/p",
    server_name: "s",
    success: 0,
    client_name: "c",
    client_version: "1",
    method: "tools/call",
    user_hash: "u",
    error_code: "E",
    input_size_bytes: 2 ** 40,
    output_size_bytes: 7,
  };
  return {
    ...authRow("svc"),
    metricType: "tool_execution",
    specialized: specializedRowOf("tool_execution", (f) => values[f.name] ?? null),
  };
}

describe("the PostgreSQL event store", () => {
  let drop: () => Promise<void>;
  let storage: StorageBackend;
  let db: TestDb;
  beforeEach(async () => {
    const schema = await freshPgSchema();
    drop = schema.drop;
    storage = await openStorage(loadConfig({ DATABASE_URL: schema.url }));
    db = pgTestDb(schema.url);
  });
  afterEach(async () => {
    await db.close();
    await storage.close();
    await drop();
  });

  it("should commit concurrent appends together, in few transactions, and store every column", async () => {
    const commits: CommitStats[] = [];
    const store = storage.createEventStore({
      maxBatchRows: 10_000,
      maxDelayMillis: 0,
      onCommit: (s) => commits.push(s),
    });
    const appends = Array.from({ length: 50 }, (_, i) =>
      store.append(`req_${i}`, [authRow("svc", i), toolRow(`tool-${i}`)]),
    );
    expect(await Promise.all(appends)).toEqual(appends.map(() => "stored"));
    // Appends arriving while a commit is under way join the next one.
    expect(commits.length).toBeLessThan(50);
    expect(commits.reduce((n, c) => n + c.rows, 0)).toBe(100);
    expect(await countIn(db, "metrics")).toBe(100);
    expect(await countIn(db, "auth_metrics")).toBe(50);
    expect(await db.get("SELECT * FROM tool_metrics WHERE request_id = 'req_7'")).toMatchObject({
      tool_name: "tool-7",
      success: 0,
      input_size_bytes: 2 ** 40,
      output_size_bytes: 7,
      duration_ms: 0,
      timestamp: "2026-11-25T12:00:00.000000Z",
    });
    await store.close();
  });

  it("should fail only the request PostgreSQL refuses, and store the others of its group", async () => {
    const commits: CommitStats[] = [];
    const store = storage.createEventStore({
      maxBatchRows: 10_000,
      maxDelayMillis: 0,
      onCommit: (s) => commits.push(s),
    });
    // PostgreSQL's text cannot hold NUL: a real refusal of one row.
    const results = await Promise.allSettled([
      store.append("req_good_1", [authRow("svc")]),
      store.append("req_bad", [authRow("svc"), toolRow("nul\u0000name")]),
      store.append("req_good_2", [authRow("svc")]),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ failure: "internal" });
    expect(await countIn(db, "metrics", "request_id = 'req_bad'")).toBe(0);
    expect(await countIn(db, "metrics")).toBe(2);
    await store.close();
  });

  it("should claim a batch id once when two appends of it share a group", async () => {
    const one = storage.createEventStore({ maxBatchRows: 1000, maxDelayMillis: 0 });
    const claim = { service: "svc", batchId: "b-1", events: 1, digest: "d" };
    const [first, second] = await Promise.all([
      one.append("req_1", [authRow("svc")], claim),
      one.append("req_2", [authRow("svc")], claim),
    ]);
    expect([first, second].sort()).toEqual(["duplicate", "stored"]);
    expect(await countIn(db, "metrics")).toBe(1);
    expect((await storage.ledger?.find("svc", "b-1"))?.digest).toBe("d");
    await one.close();
  });
});
