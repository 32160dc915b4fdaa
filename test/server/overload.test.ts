import { Code } from "@connectrpc/connect";
import BetterSqlite3 from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { failure, GRPC, ingestClient, PROTOCOLS } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { countRows, startTestService, type TestService } from "../support/service.js";

const OVERLOADED = "the service is overloaded; nothing of this request was stored, retry later";

/** Resolves once `check` is true, polling. */
async function until(check: () => boolean, timeoutMillis = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("a server-wide bound on requests in flight (METRICS_MAX_CONCURRENT_REQUESTS)", () => {
  let svc: TestService;
  let release: () => void = () => {};
  let held: Promise<unknown>[] = [];

  beforeAll(async () => {
    svc = await startTestService({ METRICS_MAX_CONCURRENT_REQUESTS: "2" });
    // Two open client streams fill the bound: each has sent one message and waits.
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    held = [0, 1].map((i) => {
      async function* messages() {
        yield authBatch(1);
        await gate;
      }
      return ingestClient(PROTOCOLS[i] ?? GRPC, svc.url, svc.key).ingestStream(messages());
    });
    await until(() => countRows(svc.db, "metrics", "service = 'test-service'") === 2);
  });
  afterAll(async () => {
    release();
    await Promise.allSettled(held);
    await svc.close();
  });

  it.each(PROTOCOLS)(
    "should refuse $name beyond the bound with UNAVAILABLE and a retry delay",
    async (protocol) => {
      const error = await failure(ingestClient(protocol, svc.url, svc.key).ingest(authBatch(3)));
      expect(error.code).toBe(Code.Unavailable);
      expect(error.rawMessage).toBe(OVERLOADED);
      expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("OVERLOADED");
      expect(Number(error.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds)).toBe(1);
      expect(error.metadata.get("retry-after")).toBe("1");
    },
  );

  it("should refuse a legacy POST /metrics beyond the bound with 503 and Retry-After, and keep answering health checks", async () => {
    const res = await postMetrics(
      svc.url,
      { service: "test-service", metrics: [legacyMetric()] },
      { key: svc.key },
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(res.json).toEqual({ detail: OVERLOADED });
    expect((await fetch(`${svc.url}/health`)).status).toBe(200);
    // Nothing beyond the two streams' first messages was stored.
    expect(countRows(svc.db, "metrics")).toBe(2);
  });

  it("should accept requests again once the work in flight is done", async () => {
    release();
    const totals = await Promise.all(held);
    expect(totals.map((t) => (t as { accepted: number }).accepted)).toEqual([1, 1]);
    const res = await ingestClient(GRPC, svc.url, svc.key).ingest(authBatch(3));
    expect(res.accepted).toBe(3);
  });
});

describe("a bound on rows waiting for a commit (METRICS_MAX_QUEUED_ROWS)", () => {
  it("should refuse new batches with UNAVAILABLE while the queue is full, and commit the queued ones", async () => {
    const svc = await startTestService({
      METRICS_MAX_QUEUED_ROWS: "100",
      SQLITE_BUSY_TIMEOUT_MS: "20000",
    });
    const client = ingestClient(GRPC, svc.url, svc.key);
    const other = new BetterSqlite3(svc.dbPath);
    try {
      // Another process holds the write lock, so the first batch waits in the queue.
      other.exec("BEGIN IMMEDIATE");
      const queued = client.ingest(authBatch(100));
      await new Promise((r) => setTimeout(r, 200));
      const error = await failure(client.ingest(authBatch(1)));
      expect(error.code).toBe(Code.Unavailable);
      expect(error.rawMessage).toBe(OVERLOADED);
      expect(error.metadata.get("retry-after")).toBe("1");
      other.exec("ROLLBACK");
      expect((await queued).accepted).toBe(100);
      expect(countRows(svc.db, "metrics")).toBe(100);
    } finally {
      other.close();
      await svc.close();
    }
  });
});
