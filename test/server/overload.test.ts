import { type ClientHttp2Session, connect } from "node:http2";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { failure, GRPC, ingestClient, PROTOCOLS } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { unfinishedIngestCall } from "../support/http2.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { countIn, holdWriteLock, startTestService, type TestService } from "../support/service.js";

const OVERLOADED = "the service is overloaded; nothing of this request was stored, retry later";

/**
 * Opens client streams that each send one batch and then wait, holding a slot
 * of the bound until `release` is called; resolves once all have committed.
 */
async function holdSlots(svc: TestService, count: number) {
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const before = await countIn(svc.sql, "metrics");
  const held = Array.from({ length: count }, (_, i) => {
    async function* messages() {
      yield authBatch(1);
      await gate;
    }
    return ingestClient(PROTOCOLS[i % 2] ?? GRPC, svc.url, svc.key).ingestStream(messages());
  });
  await vi.waitUntil(async () => (await countIn(svc.sql, "metrics")) === before + count, {
    timeout: 10_000,
    interval: 10,
  });
  return { held, release };
}

describe("a server-wide bound on requests in flight (METRICS_MAX_CONCURRENT_REQUESTS)", () => {
  let svc: TestService;
  let release: () => void = () => {};
  let held: Promise<unknown>[] = [];

  beforeAll(async () => {
    // One key may hold the whole pool here: this is about the pool's bound, not the key's share.
    svc = await startTestService({
      METRICS_MAX_CONCURRENT_REQUESTS: "2",
      METRICS_MAX_CONCURRENT_REQUESTS_PER_KEY: "2",
    });
    // Two open client streams fill the bound.
    ({ held, release } = await holdSlots(svc, 2));
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
    expect(await countIn(svc.sql, "metrics")).toBe(2);
  });

  it("should refuse a Connect client stream beyond the bound with an end-of-stream error", async () => {
    async function* messages() {
      yield authBatch(1);
    }
    const error = await failure(
      ingestClient(PROTOCOLS[1] ?? GRPC, svc.url, svc.key).ingestStream(messages()),
    );
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toBe(OVERLOADED);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("OVERLOADED");
  });

  it("should close an HTTP/1.1 connection after refusing it, without reading the body", async () => {
    const res = await fetch(`${svc.url}/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": svc.key },
      body: JSON.stringify({ service: "test-service", metrics: [legacyMetric()] }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get("connection")).toBe("close");
  });

  it("should free every slot once the work in flight is done, and none of the refusals took one", async () => {
    release();
    const totals = await Promise.all(held);
    expect(totals.map((t) => (t as { accepted: number }).accepted)).toEqual([1, 1]);
    const res = await ingestClient(GRPC, svc.url, svc.key).ingest(authBatch(3));
    expect(res.accepted).toBe(3);
    // Exactly two slots again: two streams fit, a third call does not.
    const again = await holdSlots(svc, 2);
    const error = await failure(ingestClient(GRPC, svc.url, svc.key).ingest(authBatch(1)));
    expect(error.rawMessage).toBe(OVERLOADED);
    again.release();
    await Promise.all(again.held);
  });
});

describe("requests without a valid key (METRICS_MAX_ANONYMOUS_REQUESTS)", () => {
  it("should keep them in a pool of their own, so that they cannot crowd out keyed requests", async () => {
    const svc = await startTestService({
      METRICS_MAX_CONCURRENT_REQUESTS: "4",
      METRICS_MAX_CONCURRENT_REQUESTS_PER_KEY: "4",
      METRICS_MAX_ANONYMOUS_REQUESTS: "2",
    });
    const sessions: ClientHttp2Session[] = [];
    try {
      // Six legacy JSON posts with a wrong key that never finish their bodies
      // (the JSON route must read a body before its key check, docs/legacy-contract.md §1).
      const session = connect(svc.url);
      sessions.push(session);
      session.on("error", () => {});
      const statuses = await Promise.all(
        Array.from({ length: 6 }, () => {
          const stream = session.request({
            ":method": "POST",
            ":path": "/metrics",
            "content-type": "application/json",
            "x-api-key": "not-a-key",
          });
          stream.on("error", () => {});
          stream.write('{"service": "a", ');
          return new Promise<string>((resolve) => {
            stream.once("response", (headers) => resolve(String(headers[":status"])));
            setTimeout(() => resolve("pending"), 1000);
          });
        }),
      );
      // Two are held (waiting for their bodies), four refused at once.
      expect(statuses.filter((s) => s === "pending")).toHaveLength(2);
      expect(statuses.filter((s) => s === "503")).toHaveLength(4);
      // A keyed request still gets through.
      const res = await ingestClient(GRPC, svc.url, svc.key).ingest(authBatch(1));
      expect(res.accepted).toBe(1);
    } finally {
      for (const session of sessions) session.destroy();
      await svc.close();
    }
  });
});

describe("RPCs refused from their headers", () => {
  it("should answer a wrong key or an empty bucket before the body arrives, holding no slot", async () => {
    const svc = await startTestService({
      METRICS_MAX_ANONYMOUS_REQUESTS: "1",
      METRICS_AUTH_FAILURES_PER_MINUTE: "0",
      METRICS_RATE_LIMIT: "1",
    });
    const session = connect(svc.url);
    session.on("error", () => {});
    // A call whose body never comes: only its headers can be judged.
    const answerOf = (key: string) => {
      const stream = unfinishedIngestCall(session, key);
      return new Promise<Record<string, unknown>>((resolve) => {
        stream.once("response", (headers) => resolve({ ...headers }));
        setTimeout(() => resolve({ "grpc-status": "pending" }), 2000);
      });
    };
    try {
      // More wrong keys than the anonymous pool holds: each is answered, none waits.
      const wrong = await Promise.all(Array.from({ length: 5 }, () => answerOf("not-a-key")));
      for (const headers of wrong) {
        expect(headers["grpc-status"]).toBe(String(Code.Unauthenticated));
        expect(decodeURIComponent(String(headers["grpc-message"]))).toBe("Invalid API key");
      }
      // The key's one token goes to the first call, held open; the second is refused at once.
      const first = answerOf(svc.key);
      const second = await answerOf(svc.key);
      expect(second["grpc-status"]).toBe(String(Code.ResourceExhausted));
      expect(decodeURIComponent(String(second["grpc-message"]))).toBe(
        "Rate limit exceeded. Limit: 1 requests/minute",
      );
      expect(Number(second["retry-after"])).toBeGreaterThan(0);
      expect((await first)["grpc-status"]).toBe("pending");
    } finally {
      session.destroy();
      await svc.close();
    }
  });
});

describe("tokens and refusals", () => {
  it("should spend no token on a call refused for overload", async () => {
    const svc = await startTestService({
      METRICS_MAX_CONCURRENT_REQUESTS: "1",
      METRICS_MAX_CONCURRENT_REQUESTS_PER_KEY: "1",
      METRICS_RATE_LIMIT: "2",
    });
    const session = connect(svc.url);
    session.on("error", () => {});
    try {
      // Holds the only slot (and spends one of the two tokens): its body never comes.
      const held = unfinishedIngestCall(session, svc.key);
      // Its headers reach the server and take the slot.
      await new Promise((r) => setTimeout(r, 300));
      const refused = await failure(ingestClient(GRPC, svc.url, svc.key).ingest(authBatch(1)));
      expect(refused.code).toBe(Code.Unavailable);
      held.close();
      await new Promise((r) => setTimeout(r, 300));
      // The second token is still there.
      const res = await ingestClient(GRPC, svc.url, svc.key).ingest(authBatch(1));
      expect(res.accepted).toBe(1);
    } finally {
      session.destroy();
      await svc.close();
    }
  });
});

/** 100 events with about 6 KB of metadata each: some 1.2 MB while queued. */
function heavyBatch() {
  const batch = authBatch(100);
  const metadata = Object.fromEntries(
    Array.from({ length: 6 }, (_, i) => [`field_${i}`, "m".repeat(1000)]),
  );
  for (const event of batch.events) event.metadata = metadata;
  return batch;
}

describe("a bound on what waits for a commit (METRICS_MAX_QUEUED_ROWS, METRICS_MAX_QUEUED_BYTES)", () => {
  it.each([
    ["rows", { METRICS_MAX_QUEUED_ROWS: "100" }, () => authBatch(100)],
    ["bytes", { METRICS_MAX_QUEUED_BYTES: String(1024 * 1024) }, heavyBatch],
  ] as const)(
    "should refuse new batches with UNAVAILABLE while the queue is full of %s, and commit the queued ones",
    async (_bound, env, firstBatch) => {
      const svc = await startTestService({ ...env, SQLITE_BUSY_TIMEOUT_MS: "20000" });
      const client = ingestClient(GRPC, svc.url, svc.key);
      // Another process holds the write lock, so the first batch waits in the queue.
      const release = await holdWriteLock(svc.storageEnv);
      try {
        const queued = client.ingest(firstBatch());
        await vi.waitUntil(() => svc.running.queuedRows === 100, { timeout: 10_000, interval: 10 });
        const error = await failure(client.ingest(authBatch(1)));
        expect(error.code).toBe(Code.Unavailable);
        expect(error.rawMessage).toBe(OVERLOADED);
        expect(error.metadata.get("retry-after")).toBe("1");
        await release();
        expect((await queued).accepted).toBe(100);
        expect(await countIn(svc.sql, "metrics")).toBe(100);
        // The queue drained: batches are taken again.
        expect((await client.ingest(authBatch(1))).accepted).toBe(1);
      } finally {
        await release();
        await svc.close();
      }
    },
  );
});
