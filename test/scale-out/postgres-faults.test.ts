import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { openStorage } from "../../src/storage/drivers.js";
import { redactedUrl } from "../../src/storage/postgres/pool.js";
import { countIn, freshPgSchema, PG_TEST_URL, pgTestDb } from "../support/database.js";
import { authRow } from "../support/events.js";
import { postMetrics } from "../support/legacy.js";
import { type PgRelay, pgRelay, viaRelay } from "../support/pg-relay.js";
import { freePort, startTestService } from "../support/service.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fresh schema reached through a relay: its URL, the relay, and a direct connection. */
async function relayedSchema(): Promise<{ url: string; relay: PgRelay; direct: string }> {
  const schema = await freshPgSchema();
  cleanups.push(() => schema.drop());
  const port = await freePort();
  const relay = await pgRelay(new URL(PG_TEST_URL), port);
  cleanups.push(() => relay.close());
  return { url: viaRelay(schema.url, port), relay, direct: schema.url };
}

describe("PostgreSQL faults", () => {
  it("should not write a group again when its commit's answer was lost: it may be committed", async () => {
    const { url, relay, direct } = await relayedSchema();
    const storage = await openStorage(loadConfig({ DATABASE_URL: url }));
    cleanups.push(() => storage.close());
    const store = storage.createEventStore({ maxBatchRows: 1000, maxDelayMillis: 0 });
    // A connection open in the pool, its statement prepared, as in a running service.
    expect(await store.append("req_before", [authRow("svc")])).toBe("stored");
    // The statement reaches PostgreSQL and commits; its answer never comes back.
    relay.dropReplies();
    const appends = Promise.allSettled([
      store.append("req_lost_1", [authRow("svc")]),
      store.append("req_lost_2", [authRow("svc")]),
    ]);
    await sleep(500);
    relay.cut();
    const results = await appends;
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    for (const r of results) {
      expect((r as PromiseRejectedResult).reason).toMatchObject({ failure: "unavailable" });
    }
    // Written once, by the lost commit; not again request by request.
    const db = pgTestDb(direct);
    cleanups.push(() => db.close());
    expect(await countIn(db, "metrics", "request_id = 'req_lost_1'")).toBe(1);
    expect(await countIn(db, "metrics", "request_id = 'req_lost_2'")).toBe(1);
    await store.close();
  });

  it("should answer 503 with Retry-After while PostgreSQL is unreachable, with or without a batch id", async () => {
    const { url, relay } = await relayedSchema();
    const svc = await startTestService({ DATABASE_URL: url });
    cleanups.push(() => svc.close());
    const body = { service: "test-service", metrics: [{ type: "custom", value: 1 }] };
    expect((await postMetrics(svc.url, body, { key: svc.key })).status).toBe(200);
    relay.close(); // PostgreSQL gone: connections cut, none accepted
    for (const headers of [{}, { "Idempotency-Key": "batch-while-down" }]) {
      const res = await postMetrics(svc.url, body, { key: svc.key, headers });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).not.toBeNull();
    }
    const ready = await fetch(`${svc.url}/readyz`);
    expect(ready.status).toBe(503);
    // Both checks name the fault, as PostgreSQL's errors are classified (not "internal").
    expect(((await ready.json()) as { checks: object }).checks).toMatchObject({
      database: "unreachable",
      migrations: "unreachable",
    });
  });

  it("should never log a password, in the URL's user info or its parameters", () => {
    expect(redactedUrl("postgres://u:secret@db:5432/m")).toBe("postgres://u:***@db:5432/m");
    const masked = redactedUrl("postgres://u@db/m?password=secret&sslpassword=key&sslmode=require");
    expect(masked).not.toContain("secret");
    expect(masked).not.toContain("=key");
    expect(masked).toContain("sslmode=require");
  });
});
