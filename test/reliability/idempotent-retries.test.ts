import { type AddressInfo, connect, createServer } from "node:net";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMetricsClient, newBatchId } from "../../clients/typescript/src/index.js";
import { startService } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { failure, GRPC, ingestClient, PROTOCOLS } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import {
  countIn,
  exposition,
  samples,
  scrape,
  startTestService,
  type TestService,
} from "../support/service.js";

/** Rows stored for a service, and the batch ids recorded for it. */
async function stored(
  svc: TestService,
  service: string,
): Promise<{ rows: number; batches: number }> {
  return {
    rows: await countIn(svc.sql, "metrics", "service = ?", service),
    batches: await countIn(svc.sql, "ingest_batches", "service = ?", service),
  };
}

describe("idempotent retries: a batch id is stored once and answered with the original result", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it.each(PROTOCOLS)("should store a retried batch once over $name", async (protocol) => {
    const service = `retry-${PROTOCOLS.indexOf(protocol)}`;
    const client = ingestClient(protocol, svc.url, await svc.keyFor(service));
    const batch = { ...authBatch(4, service), batchId: newBatchId() };
    let replayed: string | null = "unset";
    const first = await client.ingest(batch);
    const second = await client.ingest(batch, {
      onHeader: (headers) => {
        replayed = headers.get("idempotent-replayed");
      },
    });
    expect(first.accepted).toBe(4);
    expect(second).toMatchObject({ accepted: 4, rejected: 0, requestId: first.requestId });
    expect(replayed).toBe("true");
    expect(await stored(svc, service)).toEqual({ rows: 4, batches: 1 });
  });

  it("should answer a first send without the replayed header", async () => {
    const client = ingestClient(GRPC, svc.url, await svc.keyFor("first-send"));
    let replayed: string | null = "unset";
    await client.ingest(
      { ...authBatch(1, "first-send"), batchId: newBatchId() },
      {
        onHeader: (headers) => {
          replayed = headers.get("idempotent-replayed");
        },
      },
    );
    expect(replayed).toBeNull();
  });

  it("should store a batch sent many times at once exactly once, every answer naming the same request", async () => {
    const client = ingestClient(GRPC, svc.url, await svc.keyFor("concurrent"));
    const batch = { ...authBatch(10, "concurrent"), batchId: newBatchId() };
    const answers = await Promise.all(Array.from({ length: 8 }, () => client.ingest(batch)));
    expect(new Set(answers.map((a) => a.requestId)).size).toBe(1);
    expect(answers.every((a) => a.accepted === 10)).toBe(true);
    expect(await stored(svc, "concurrent")).toEqual({ rows: 10, batches: 1 });
  });

  it("should keep batches with different ids apart, and the same id apart per service", async () => {
    const a = ingestClient(GRPC, svc.url, await svc.keyFor("svc-a"));
    const b = ingestClient(GRPC, svc.url, await svc.keyFor("svc-b"));
    const shared = newBatchId();
    await a.ingest({ ...authBatch(2, "svc-a"), batchId: shared });
    await b.ingest({ ...authBatch(2, "svc-b"), batchId: shared });
    await a.ingest({ ...authBatch(2, "svc-a"), batchId: newBatchId() });
    await a.ingest(authBatch(2, "svc-a")); // no batch id: always stored
    await a.ingest(authBatch(2, "svc-a"));
    expect(await stored(svc, "svc-a")).toEqual({ rows: 8, batches: 2 });
    expect(await stored(svc, "svc-b")).toEqual({ rows: 2, batches: 1 });
  });

  it("should refuse an id reused for a batch of another size with ALREADY_EXISTS naming batch_id", async () => {
    const client = ingestClient(GRPC, svc.url, await svc.keyFor("reused"));
    const batchId = newBatchId();
    await client.ingest({ ...authBatch(3, "reused"), batchId });
    const error = await failure(client.ingest({ ...authBatch(5, "reused"), batchId }));
    expect(error.code).toBe(Code.AlreadyExists);
    expect(error.rawMessage).toContain("batch_id");
    expect(error.rawMessage).toContain("3 events");
    expect(await stored(svc, "reused")).toEqual({ rows: 3, batches: 1 });
  });

  it("should refuse an id reused for other events of the same number with ALREADY_EXISTS", async () => {
    const client = ingestClient(GRPC, svc.url, await svc.keyFor("reused-same-size"));
    const batchId = newBatchId();
    const batch = authBatch(3, "reused-same-size");
    await client.ingest({ ...batch, batchId });
    const other = { ...batch, events: batch.events.map((e) => ({ ...e, durationMs: 99 })) };
    const error = await failure(client.ingest({ ...other, batchId }));
    expect(error.code).toBe(Code.AlreadyExists);
    expect(error.rawMessage).toContain("different batch");
    expect(await stored(svc, "reused-same-size")).toEqual({ rows: 3, batches: 1 });
  });

  it("should recognise a retry sent over another ingress", async () => {
    const key = await svc.keyFor("cross-ingress");
    const batchId = newBatchId();
    const legacy = await postMetrics(
      svc.url,
      { service: "cross-ingress", batch_id: batchId, metrics: [legacyMetric()] },
      { key },
    );
    const rpc = await ingestClient(GRPC, svc.url, key).ingest({
      service: "cross-ingress",
      batchId,
      events: [
        {
          value: 1,
          durationMs: 12.5,
          kind: { case: "authRequest", value: { success: true, method: "jwt" } },
        },
      ],
    });
    expect(rpc.requestId).toBe(legacy.json.request_id);
    expect(await stored(svc, "cross-ingress")).toEqual({ rows: 1, batches: 1 });
  });

  it.each([
    ["", "Batch ID must be 1 to 128 characters, got 0"],
    ["x".repeat(129), "Batch ID must be 1 to 128 characters, got 129"],
    ["has space", "Batch ID must contain only alphanumeric characters"],
  ])(
    "should refuse the batch id %j with INVALID_ARGUMENT naming batch_id",
    async (batchId, text) => {
      const client = ingestClient(GRPC, svc.url, await svc.keyFor("bad-id"));
      const error = await failure(client.ingest({ ...authBatch(1, "bad-id"), batchId }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain(`batch_id: ${text}`);
      expect(await stored(svc, "bad-id")).toEqual({ rows: 0, batches: 0 });
    },
  );

  it("should count each message of a stream once, a repeated message's id not stored again", async () => {
    const client = ingestClient(GRPC, svc.url, await svc.keyFor("streamed"));
    const ids = [newBatchId(), newBatchId()];
    async function* messages() {
      yield { ...authBatch(2, "streamed"), batchId: ids[0] };
      yield { ...authBatch(3, "streamed"), batchId: ids[1] };
      yield { ...authBatch(2, "streamed"), batchId: ids[0] }; // a resend
    }
    const totals = await client.ingestStream(messages());
    expect(totals).toMatchObject({ accepted: 7, rejected: 0, messages: 3 });
    expect(await stored(svc, "streamed")).toEqual({ rows: 5, batches: 2 });
  });

  it("should store a retried legacy POST once, by body batch_id or Idempotency-Key header", async () => {
    const key = await svc.keyFor("legacy-retry");
    const body = { service: "legacy-retry", batch_id: newBatchId(), metrics: [legacyMetric()] };
    const first = await postMetrics(svc.url, body, { key });
    const second = await postMetrics(svc.url, body, { key });
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.json).toEqual(first.json);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    expect(second.headers.get("idempotent-replayed")).toBe("true");

    // The IETF draft's form: a structured-field string.
    const headerId = { "Idempotency-Key": `"${newBatchId()}"` };
    const plain = { service: "legacy-retry", metrics: [legacyMetric(), legacyMetric()] };
    const third = await postMetrics(svc.url, plain, { key, headers: headerId });
    const fourth = await postMetrics(svc.url, plain, { key, headers: headerId });
    expect(fourth.json.request_id).toBe(third.json.request_id);
    expect(fourth.json.accepted).toBe(2);
    expect(await stored(svc, "legacy-retry")).toEqual({ rows: 3, batches: 2 });

    const badHeader = await postMetrics(svc.url, plain, {
      key,
      headers: { "Idempotency-Key": '"has space"' },
    });
    expect(badHeader.status).toBe(400);
    expect(String(badHeader.json.detail)).toMatch(/^Idempotency-Key: Batch ID must contain only/);
    expect(await stored(svc, "legacy-retry")).toEqual({ rows: 3, batches: 2 });
  });

  it("should answer a legacy batch_id reused for another batch 409, and a bad one as a rejection", async () => {
    const key = await svc.keyFor("legacy-reused");
    const batch_id = newBatchId();
    await postMetrics(
      svc.url,
      { service: "legacy-reused", batch_id, metrics: [legacyMetric()] },
      { key },
    );
    const reused = await postMetrics(
      svc.url,
      { service: "legacy-reused", batch_id, metrics: [legacyMetric(), legacyMetric()] },
      { key },
    );
    expect(reused.status).toBe(409);
    expect(String(reused.json.detail)).toContain("batch_id");

    const bad = await postMetrics(
      svc.url,
      { service: "legacy-reused", batch_id: "not ok", metrics: [legacyMetric()] },
      { key },
    );
    expect(bad.status).toBe(200);
    expect(bad.json).toMatchObject({ accepted: 0, rejected: 1 });
    expect((bad.json.errors as string[])[0]).toMatch(/^batch_id: /);

    const wrongType = await postMetrics(
      svc.url,
      { service: "legacy-reused", batch_id: 7, metrics: [legacyMetric()] },
      { key },
    );
    expect(wrongType.status).toBe(422);
    expect(JSON.stringify(wrongType.json)).toContain('"batch_id"');
    expect(await stored(svc, "legacy-reused")).toEqual({ rows: 1, batches: 1 });
  });

  it("should count replayed events apart from accepted ones in the service's metrics", async () => {
    const prometheus = await exposition();
    const metered = await startTestService(prometheus.env);
    try {
      const client = ingestClient(GRPC, metered.url, metered.key);
      const events = authBatch(2).events.map((event) => ({ ...event, value: 1 }));
      const batch = { service: "test-service", events, batchId: newBatchId() };
      await client.ingest(batch);
      await client.ingest(batch);
      await client.ingest(batch);
      const text = await scrape(prometheus.port);
      expect(samples(text, "mcp_metrics_events_total")).toEqual(
        expect.arrayContaining([
          'mcp_metrics_events_total{outcome="accepted"} 2',
          'mcp_metrics_events_total{outcome="replayed"} 4',
        ]),
      );
      // The event instruments record the batch once too.
      const authTotal = samples(text, "mcp_auth_requests_total")
        .map((line) => Number(line.split(" ").at(-1)))
        .reduce((sum, n) => sum + n, 0);
      expect(authTotal).toBe(2);
    } finally {
      await metered.close();
    }
  });
});

describe("the idempotency window", () => {
  it("should remember a batch id across a restart, and forget it after METRICS_IDEMPOTENCY_WINDOW_SECONDS", async () => {
    const svc = await startTestService({ METRICS_IDEMPOTENCY_WINDOW_SECONDS: "4" });
    const batch = { ...authBatch(2), batchId: newBatchId() };
    const first = await ingestClient(GRPC, svc.url, svc.key).ingest(batch);
    const committedAt = Date.now();
    await svc.running.close();

    const config = loadConfig({
      METRICS_SERVICE_HOST: "127.0.0.1",
      METRICS_SERVICE_PORT: "0",
      ...svc.storageEnv,
      LOG_LEVEL: "silent",
      OTEL_PROMETHEUS_ENABLED: "false",
      METRICS_API_KEY_TEST_SERVICE: svc.key,
      METRICS_IDEMPOTENCY_WINDOW_SECONDS: "4",
    });
    const restarted = await startService(config, createLogger("silent"));
    try {
      const url = `http://127.0.0.1:${restarted.address.port}`;
      const client = ingestClient(GRPC, url, svc.key);
      expect((await client.ingest(batch)).requestId).toBe(first.requestId);
      expect(await countIn(svc.sql, "metrics", "service = 'test-service'")).toBe(2);

      expect(Date.now() - committedAt).toBeLessThan(4000); // the replay came within the window
      await new Promise((resolve) => setTimeout(resolve, committedAt + 4100 - Date.now()));
      const late = await client.ingest(batch);
      expect(late.requestId).not.toBe(first.requestId);
      expect(await countIn(svc.sql, "metrics", "service = 'test-service'")).toBe(4);
      expect(await countIn(svc.sql, "ingest_batches")).toBe(1);
    } finally {
      await restarted.close();
      await svc.close();
    }
  });

  it("should store every send when the window is 0 (batch ids off)", async () => {
    const svc = await startTestService({ METRICS_IDEMPOTENCY_WINDOW_SECONDS: "0" });
    try {
      const client = ingestClient(GRPC, svc.url, svc.key);
      const batch = { ...authBatch(1), batchId: newBatchId() };
      await client.ingest(batch);
      await client.ingest(batch);
      expect(await countIn(svc.sql, "metrics")).toBe(2);
      expect(await countIn(svc.sql, "ingest_batches")).toBe(0);
    } finally {
      await svc.close();
    }
  });
});

describe("the TypeScript client's retries", () => {
  it("should store a batch once when its answer is lost and the client retries after its timeout", async () => {
    const svc = await startTestService();
    // A proxy that swallows the first connection's answers: the service
    // commits the batch, the client never hears of it and times out.
    let connections = 0;
    const proxy = createServer((downstream) => {
      const swallow = connections++ === 0;
      const upstream = connect(svc.port, "127.0.0.1");
      downstream.pipe(upstream);
      if (!swallow) upstream.pipe(downstream);
      else upstream.resume();
      const end = () => {
        downstream.destroy();
        upstream.destroy();
      };
      downstream.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const { port } = proxy.address() as AddressInfo;
    const client = createMetricsClient({
      baseUrl: `http://127.0.0.1:${port}`,
      apiKey: svc.key,
      service: "test-service",
      protocol: "connect",
      requestTimeoutMillis: 500,
      retry: { initialBackoffMillis: 20, maxBackoffMillis: 100 },
      logger: { warn: () => {} },
    });
    try {
      for (let i = 0; i < 20; i++) client.custom({ metricName: "lost-answer", value: i });
      await client.flush();
      expect(connections).toBeGreaterThan(1);
      expect(client.stats()).toMatchObject({ sent: 20, failed: 0 });
      expect(client.stats().retries).toBeGreaterThan(0);
      expect(await countIn(svc.sql, "metrics", "service = 'test-service'")).toBe(20);
      expect(await countIn(svc.sql, "ingest_batches")).toBe(1);
    } finally {
      await client.close();
      proxy.close();
      await svc.close();
    }
  });
});
