import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newBatchId } from "../../clients/typescript/src/index.js";
import { GRPC, ingestClient } from "../support/clients.js";
import { postMetrics } from "../support/legacy.js";
import { countIn, startTestService, type TestService } from "../support/service.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const ADMIN_KEY = `admin-${randomUUID()}`;

/** A batch of `n` auth events, each with an id of its own in its dimensions. */
function taggedBatch(service: string, n: number) {
  const ids = Array.from({ length: n }, () => randomUUID());
  return {
    ids,
    batch: {
      service,
      batchId: newBatchId(),
      events: ids.map((id) => ({
        dimensions: { event_id: id },
        kind: { case: "authRequest" as const, value: { success: true, method: "jwt" } },
      })),
    },
  };
}

/** The event ids stored in `metrics` for a service, each as often as it is stored. */
async function storedIds(svc: TestService, service: string): Promise<string[]> {
  const rows = await svc.sql.all<{ dimensions: string }>(
    "SELECT dimensions FROM metrics WHERE service = ?",
    service,
  );
  return rows.map((r) => (JSON.parse(r.dimensions) as { event_id: string }).event_id).sort();
}

describe("two replicas on one PostgreSQL and one Redis", () => {
  let a: TestService;
  let b: TestService;
  beforeAll(async () => {
    a = await startTestService({
      REDIS_URL,
      METRICS_KEY_RELOAD_MS: "200",
      METRICS_ADMIN_API_KEY: ADMIN_KEY,
    });
    // The second replica: its own port, the first one's database and keys.
    b = await startTestService({
      REDIS_URL,
      METRICS_KEY_RELOAD_MS: "200",
      METRICS_ADMIN_API_KEY: ADMIN_KEY,
      METRICS_API_KEY_TEST_SERVICE: a.key,
      ...a.storageEnv,
    });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it("should give a key limited to N per minute N successes in total across both replicas", async () => {
    const key = await a.keyFor("limited");
    const limit = 7;
    await a.sql.run("UPDATE api_keys SET rate_limit = ? WHERE service_name = 'limited'", limit);
    await Promise.all([a.running.registry.reload(), b.running.registry.reload()]);

    const sent: { status: number; ids: string[] }[] = [];
    // 21 requests, alternating replicas, over gRPC to one and JSON to the other, in waves of 3.
    for (let wave = 0; wave < 7; wave++) {
      const answers = await Promise.all(
        [0, 1, 2].map(async (i) => {
          const { ids, batch } = taggedBatch("limited", 2);
          if ((wave + i) % 2 === 0) {
            try {
              await ingestClient(GRPC, a.url, key).ingest(batch);
              return { status: 200, ids };
            } catch (error) {
              expect(ConnectError.from(error).code).toBe(Code.ResourceExhausted);
              return { status: 429, ids };
            }
          }
          const legacy = {
            service: "limited",
            metrics: batch.events.map((e) => ({
              type: "auth_request",
              value: 1,
              dimensions: { ...e.dimensions, success: true, method: "jwt" },
            })),
          };
          const res = await postMetrics(b.url, legacy, { key });
          return { status: res.status, ids };
        }),
      );
      sent.push(...answers);
    }
    const accepted = sent.filter((s) => s.status === 200);
    expect(accepted).toHaveLength(limit);
    expect(sent.filter((s) => s.status === 429)).toHaveLength(21 - limit);
    // What was acknowledged is stored, once; nothing refused is.
    expect(await storedIds(a, "limited")).toEqual(accepted.flatMap((s) => s.ids).sort());
  });

  it("should store every acknowledged event from both replicas exactly once, retries across replicas included", async () => {
    const key = await a.keyFor("bulk");
    await b.running.registry.reload(); // no wait for its reload interval
    const acknowledged: string[] = [];
    const sends = Array.from({ length: 40 }, async (_, i) => {
      const { ids, batch } = taggedBatch("bulk", 25);
      const first = i % 2 === 0 ? a : b;
      const other = first === a ? b : a;
      // Each batch goes to one replica and, at the same moment, is retried on the other.
      const [one, two] = await Promise.all([
        ingestClient(GRPC, first.url, key).ingest(batch),
        ingestClient(GRPC, other.url, key).ingest(batch),
      ]);
      expect(one.accepted).toBe(25);
      expect(two.accepted).toBe(25);
      expect(two.requestId).toBe(one.requestId);
      acknowledged.push(...ids);
    });
    await Promise.all(sends);
    expect(acknowledged).toHaveLength(1000);
    expect(await storedIds(b, "bulk")).toEqual(acknowledged.sort());
    expect(await countIn(a.sql, "auth_metrics", "service = 'bulk'")).toBe(1000);
    expect(await countIn(a.sql, "ingest_batches", "service = 'bulk'")).toBe(40);
  });

  it("should honour on one replica, within seconds, a key created, rotated and revoked through the other", async () => {
    const status = async (svc: TestService, key: string) =>
      (
        await postMetrics(
          svc.url,
          { service: "roaming", metrics: [{ type: "custom", value: 1 }] },
          { key },
        )
      ).status;
    // Created through replica A's database access (the key CLI's code path) …
    const key = await a.keyFor("roaming");
    await expect.poll(() => status(b, key), { timeout: 5000 }).toBe(200);
    // … revoked there: replica B refuses it within its reload interval.
    await a.sql.run("UPDATE api_keys SET is_active = FALSE WHERE service_name = 'roaming'");
    await expect.poll(() => status(b, key), { timeout: 5000 }).toBe(401);
  });

  it("should apply on one replica a retention policy changed through the other's admin API", async () => {
    const headers = { "x-api-key": ADMIN_KEY };
    const put = await fetch(
      `${a.url}/admin/retention/policies/tool_metrics?retention_days=33&is_active=false`,
      { method: "PUT", headers },
    );
    expect(put.status).toBe(200);
    const policyOnB = async () => {
      const res = await fetch(`${b.url}/admin/retention/policies`, { headers });
      return ((await res.json()) as Record<string, unknown>).tool_metrics;
    };
    await expect
      .poll(policyOnB, { timeout: 5000 })
      .toMatchObject({ retention_days: 33, is_active: false });
  });
});

describe("replicas starting together on an empty database", () => {
  it("should migrate it once, under the advisory lock, and all start", async () => {
    const first = await startTestService();
    try {
      // Drop everything so that three replicas race to create the schema.
      await first.running.close();
      await first.sql.run(
        "DROP TABLE schema_migrations, api_keys, metrics, auth_metrics, discovery_metrics, tool_metrics, retention_policies, ingest_batches, readiness_probe, rollup_backfill, metrics_minutely, metrics_hourly, metrics_hourly_dimensions, metrics_daily, metrics_daily_dimensions, metrics_daily_dimensions_all_services",
      );
      const replicas = await Promise.all(
        [0, 1, 2].map(() =>
          startTestService({ ...first.storageEnv, METRICS_API_KEY_TEST_SERVICE: first.key }),
        ),
      );
      try {
        expect(
          await first.sql.all("SELECT version, name FROM schema_migrations ORDER BY version"),
        ).toEqual([
          { version: 1, name: "initial_schema" },
          { version: 2, name: "api_key_scopes" },
          { version: 3, name: "retention_policy_origin" },
          { version: 4, name: "api_key_ids_and_expiry" },
          { version: 5, name: "ingest_batches_and_readiness_probe" },
          { version: 6, name: "key_service_and_target_kind" },
          { version: 7, name: "api_key_read_scope" },
          { version: 8, name: "rollups" },
        ]);
        // The configured key was stored once, however many replicas stored it.
        expect(await countIn(first.sql, "api_keys", "service_name = 'test-service'")).toBe(1);
        expect(await countIn(first.sql, "retention_policies")).toBe(10); // the raw tables and the rollups, once each
        for (const replica of replicas) {
          const res = await postMetrics(
            replica.url,
            { service: "test-service", metrics: [{ type: "custom", value: 1 }] },
            { key: first.key },
          );
          expect(res.status).toBe(200);
        }
        expect(await countIn(first.sql, "metrics")).toBe(3);
      } finally {
        await Promise.all(replicas.map((r) => r.close()));
      }
    } finally {
      await first.close();
    }
  });
});
