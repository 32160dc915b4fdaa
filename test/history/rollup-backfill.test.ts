import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { rollupRowOfStored } from "../../src/ingest/normalize.js";
import { createLogger } from "../../src/log.js";
import { openStorage } from "../../src/storage/drivers.js";
import { backfillRollups, type RollupBackfill } from "../../src/storage/rollup-backfill.js";
import { GRAINS } from "../../src/storage/rollups.js";
import { GRPC, ingestClient } from "../support/clients.js";
import { mixedBatch } from "../support/events.js";
import { startTestService, type TestDb, type TestService } from "../support/service.js";

/** Every rollup table. */
const ROLLUPS = GRAINS.flatMap((g) => [g.totals, ...(g.dimensions ? [g.dimensions] : [])]);

/** What every grain's totals say per type, and the raw rows. */
async function counts(sql: TestDb) {
  const raw = await sql.all<{ metric_type: string; n: number }>(
    "SELECT metric_type, count(*) AS n FROM metrics GROUP BY metric_type ORDER BY metric_type",
  );
  const grains: Record<string, unknown> = {};
  for (const g of GRAINS) {
    const rows = await sql.all<{ metric_type: string; n: number }>(
      `SELECT metric_type, sum(count) AS n FROM ${g.totals} GROUP BY metric_type ORDER BY metric_type`,
    );
    grains[g.name] = rows.map((r) => ({ metric_type: r.metric_type, n: Number(r.n) }));
    if (g.dimensions === undefined) continue;
    const tools = await sql.get<{ n: number }>(
      `SELECT sum(count) AS n FROM ${g.dimensions} WHERE dimension = 'tool_name'`,
    );
    grains[`${g.name} tool_name`] = Number(tools?.n ?? 0);
  }
  return { raw: raw.map((r) => ({ metric_type: r.metric_type, n: Number(r.n) })), grains };
}

/**
 * A database whose events were stored before the rollups existed: its
 * rollups are built at start-up from the raw rows, once, a batch per
 * transaction, and a backfill stopped between two batches resumes without
 * counting an event twice (docs/history.md).
 */
describe("the rollups' backfill", () => {
  let service: TestService;
  let expected: Awaited<ReturnType<typeof counts>>;

  beforeAll(async () => {
    service = await startTestService();
    const client = ingestClient(GRPC, service.url, service.key);
    // 7 events per mixed batch (one of each kind), 20 per request, 150 requests: 21,000 events, past two backfill batches of 10,000.
    const started = Date.parse("2026-11-02T10:00:00Z");
    for (let i = 0; i < 150; i++) {
      const parts = Array.from({ length: 20 }, (_, j) =>
        mixedBatch("test-service", started + (i * 20 + j) * 7_000),
      );
      await client.ingest({ ...parts[0], events: parts.flatMap((p) => p.events) });
    }
    expected = await counts(service.sql);
    expect(expected.raw.reduce((n, r) => n + r.n, 0)).toBeGreaterThan(20_000);
    await service.running.close();
  }, 120_000);
  afterAll(() => service?.close());

  /** Empties the rollups and marks every raw event as stored before them, as the migration does. */
  async function asBeforeRollups() {
    for (const table of ROLLUPS) await service.sql.run(`DELETE FROM ${table}`);
    await service.sql.run(
      "UPDATE rollup_backfill SET next_id = 1, end_id = (SELECT max(id) FROM metrics)",
    );
  }

  it("should count every stored event once, with its dimensions, when stopped between two batches and run again", async () => {
    await asBeforeRollups();
    const config = loadConfig({ ...service.storageEnv, LOG_LEVEL: "silent" });
    const log = createLogger("silent");
    const storage = await openStorage(config);
    try {
      // A kill after the first batch's commit.
      let steps = 0;
      const killed: RollupBackfill = {
        step: async (limit, rollupOf) => {
          if (steps++ === 1) throw new Error("killed");
          return storage.rollupBackfill.step(limit, rollupOf);
        },
      };
      await expect(backfillRollups(killed, rollupRowOfStored, log)).rejects.toThrow("killed");
      const partial = await counts(service.sql);
      expect(partial.grains).not.toEqual(expected.grains);
      await backfillRollups(storage.rollupBackfill, rollupRowOfStored, log);
      expect(await counts(service.sql)).toEqual(expected);
      // Done: another run adds nothing.
      await backfillRollups(storage.rollupBackfill, rollupRowOfStored, log);
      expect(await counts(service.sql)).toEqual(expected);
    } finally {
      await storage.close();
    }
  });

  it("should backfill at start-up before the service is ready", async () => {
    await asBeforeRollups();
    const again = await startTestService(service.storageEnv);
    try {
      expect(await counts(again.sql)).toEqual(expected);
      const progress = await again.sql.get<{ next_id: number; end_id: number }>(
        "SELECT next_id, end_id FROM rollup_backfill",
      );
      expect(Number(progress?.next_id)).toBe(Number(progress?.end_id) + 1);
    } finally {
      await again.close();
    }
  });
});
