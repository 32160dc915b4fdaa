// backends: sqlite only: size limits refused before storage, and SQLITE_BUSY from another process's lock; PostgreSQL's faults are test/scale-out/postgres-faults
import { Code } from "@connectrpc/connect";
import BetterSqlite3 from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONNECT_HTTP1, failure, GRPC, ingestClient } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { countRows, startTestService, type TestService } from "../support/service.js";

describe("request size limits and storage faults", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({
      METRICS_MAX_REQUEST_BYTES: "4096",
      SQLITE_BUSY_TIMEOUT_MS: "100",
    });
  });
  afterAll(async () => {
    await svc.close();
  });

  it.each([GRPC, CONNECT_HTTP1])(
    "should refuse a message over METRICS_MAX_REQUEST_BYTES over $name, storing nothing",
    async (protocol) => {
      const big = authBatch(1, "too-big");
      big.events[0] = { ...big.events[0], dimensions: { note: "x".repeat(5000) } };
      const error = await failure(ingestClient(protocol, svc.url, svc.key).ingest(big));
      expect(error.code).toBe(Code.ResourceExhausted);
      expect(countRows(svc.db, "metrics", "service = 'too-big'")).toBe(0);
    },
  );

  it("should answer UNAVAILABLE with a retry hint while another process holds the write lock, then recover", async () => {
    const lockedOut = ingestClient(GRPC, svc.url, await svc.keyFor("locked-out"));
    const afterLock = ingestClient(GRPC, svc.url, await svc.keyFor("after-lock"));
    const other = new BetterSqlite3(svc.dbPath);
    other.exec("BEGIN IMMEDIATE");
    const error = await failure(lockedOut.ingest(authBatch(3, "locked-out")));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.metadata.get("retry-after")).toBe("1");
    expect(error.rawMessage).not.toContain("SQLITE");
    other.exec("ROLLBACK");
    other.close();
    expect(countRows(svc.db, "metrics", "service = 'locked-out'")).toBe(0);

    const res = await afterLock.ingest(authBatch(3, "after-lock"));
    expect(res.accepted).toBe(3);
    expect(countRows(svc.db, "metrics", "service = 'after-lock'")).toBe(3);
  });
});
