import { Code, type ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_ONE_PORT_OPTIONS } from "../../src/http/one-port.js";
import { CONNECT_HTTP1, failure, GRPC, ingestClient } from "../support/clients.js";
import { countIn, freshPgSchema, PG_TEST_URL, pgTestDb } from "../support/database.js";
import { authBatch } from "../support/events.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { pgRelay, viaRelay } from "../support/pg-relay.js";
import { freePort, startTestService } from "../support/service.js";

/** The storage timeout these tests configure: short, so that they are quick. */
const STORAGE_TIMEOUT_MILLIS = 2000;

/**
 * What a refusal for storage says on every protocol (errors.storageUnavailable):
 * a batch id's lookup wrote nothing; a commit sent to a server that never
 * answered may have committed.
 */
const NOTHING_STORED =
  "storage is temporarily unavailable; nothing of this request was stored, retry later";
const MAYBE_STORED =
  "storage did not answer in time; this request may have been stored: retry it with the same batch id (or Idempotency-Key), which is never stored twice";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** How long a call took to settle, with what it settled to. */
async function timed<T>(call: Promise<T>): Promise<{ result: T; millis: number }> {
  const started = performance.now();
  const result = await call;
  return { result, millis: performance.now() - started };
}

/** A gRPC or Connect refusal for storage: a real status with its retry delay, not a reset stream. */
function expectStorageRefusal(error: ConnectError, message: string): void {
  expect(error.code).toBe(Code.Unavailable);
  expect(error.rawMessage).toBe(message);
  expect(error.metadata.get("retry-after")).toBe("1");
}

describe("a storage wait through a blackholed PostgreSQL (issue 21, part 5)", () => {
  it("should answer gRPC, Connect and JSON 503 / UNAVAILABLE with Retry-After within METRICS_STORAGE_TIMEOUT_MS, store nothing, and store each retry once when PostgreSQL answers again", async () => {
    const schema = await freshPgSchema();
    cleanups.push(() => schema.drop());
    const relayPort = await freePort();
    const relay = await pgRelay(new URL(PG_TEST_URL), relayPort);
    cleanups.push(() => relay.close());
    const svc = await startTestService({
      DATABASE_URL: viaRelay(schema.url, relayPort),
      METRICS_STORAGE_TIMEOUT_MS: String(STORAGE_TIMEOUT_MILLIS),
    });
    cleanups.push(() => svc.close());
    // Counted on a connection of its own: the service's goes through the relay.
    const direct = pgTestDb(schema.url);
    cleanups.push(() => direct.close());

    const grpc = ingestClient(GRPC, svc.url, svc.key);
    const connect = ingestClient(CONNECT_HTTP1, svc.url, svc.key);
    const json = (events: number, batchId?: string) =>
      postMetrics(
        svc.url,
        { service: "test-service", metrics: Array.from({ length: events }, () => legacyMetric()) },
        { key: svc.key, headers: batchId === undefined ? {} : { "Idempotency-Key": batchId } },
      );
    // Connections open in the pool, statements prepared, as in a running service.
    expect((await grpc.ingest(authBatch(1))).accepted).toBe(1);
    expect((await json(1)).status).toBe(200);
    const before = await countIn(direct, "metrics");
    expect(before).toBe(2);

    // With a batch id, the request waits first for the id's lookup; without
    // one, for its commit: both waits are bounded. Each request has its own
    // number of events, so that the count tells what was stored.
    const sends = {
      grpcWithId: () => grpc.ingest({ ...authBatch(1), batchId: "blackhole-grpc" }),
      grpcNoId: () => grpc.ingest(authBatch(2)),
      connectWithId: () => connect.ingest({ ...authBatch(3), batchId: "blackhole-connect" }),
      connectNoId: () => connect.ingest(authBatch(4)),
      jsonWithId: () => json(5, "blackhole-json"),
      jsonNoId: () => json(6),
    };
    relay.blackhole();
    const [grpcWithId, grpcNoId, connectWithId, connectNoId, jsonWithId, jsonNoId] =
      await Promise.all([
        timed(failure(sends.grpcWithId())),
        timed(failure(sends.grpcNoId())),
        timed(failure(sends.connectWithId())),
        timed(failure(sends.connectNoId())),
        timed(sends.jsonWithId()),
        timed(sends.jsonNoId()),
      ]);
    for (const { result } of [grpcWithId, connectWithId])
      expectStorageRefusal(result, NOTHING_STORED);
    for (const { result } of [grpcNoId, connectNoId]) expectStorageRefusal(result, MAYBE_STORED);
    for (const [{ result }, message] of [
      [jsonWithId, NOTHING_STORED],
      [jsonNoId, MAYBE_STORED],
    ] as const) {
      expect(result.status).toBe(503);
      expect(result.headers.get("retry-after")).toBe("1");
      expect(result.json.detail).toBe(message);
    }
    const times = { grpcWithId, grpcNoId, connectWithId, connectNoId, jsonWithId, jsonNoId };
    console.log(
      `storage refusals with PostgreSQL blackholed (bound ${STORAGE_TIMEOUT_MILLIS} ms): ${Object.entries(
        times,
      )
        .map(([name, { millis }]) => `${name} ${Math.round(millis)} ms`)
        .join(", ")}`,
    );
    for (const { millis } of Object.values(times)) {
      // Each waited for storage until the bound, then was answered at once,
      // long before the one port's 30 s stream and request timers.
      expect(millis).toBeGreaterThanOrEqual(STORAGE_TIMEOUT_MILLIS - 50);
      expect(millis).toBeLessThan(STORAGE_TIMEOUT_MILLIS + 1000);
      expect(millis).toBeLessThan(DEFAULT_ONE_PORT_OPTIONS.requestTimeoutMillis);
    }

    // A readiness probe of a silent PostgreSQL gives up at its own bound, naming the fault.
    const silent = await fetch(`${svc.url}/readyz`);
    expect(silent.status).toBe(503);
    expect(((await silent.json()) as { checks: object }).checks).toMatchObject({
      database: "unreachable",
      migrations: "unreachable",
    });

    // PostgreSQL answers again: the blackholed connections end, new ones pass.
    relay.cut();
    await vi.waitUntil(async () => (await fetch(`${svc.url}/readyz`)).status === 200, {
      timeout: 10_000,
      interval: 100,
    });
    // Nothing of a refused request was stored: its commit never reached the server.
    expect(await countIn(direct, "metrics")).toBe(before);
    // Each retried once, as the clients do after UNAVAILABLE, with the same batch id.
    expect((await sends.grpcWithId()).accepted).toBe(1);
    expect((await sends.grpcNoId()).accepted).toBe(2);
    expect((await sends.connectWithId()).accepted).toBe(3);
    expect((await sends.connectNoId()).accepted).toBe(4);
    expect((await sends.jsonWithId()).status).toBe(200);
    expect((await sends.jsonNoId()).status).toBe(200);
    // A second retry of a batch with an id is answered with the first's result, not stored again.
    expect((await sends.grpcWithId()).accepted).toBe(1);
    expect((await sends.jsonWithId()).status).toBe(200);
    expect(await countIn(direct, "metrics")).toBe(before + 1 + 2 + 3 + 4 + 5 + 6);
  });
});
