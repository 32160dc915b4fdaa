import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rollupRowOfStored } from "../../src/ingest/normalize.js";
import type { StoredEventRow } from "../../src/storage/rollup-backfill.js";
import {
  GRAINS,
  HISTOGRAM_BUCKETS,
  HISTOGRAM_COLUMNS,
  histogramBucket,
} from "../../src/storage/rollups.js";
import { GRPC, ingestClient } from "../support/clients.js";
import { mixedBatch } from "../support/events.js";
import { postMetrics } from "../support/legacy.js";
import { startTestService, type TestService } from "../support/service.js";

/**
 * The rollups are the raw events summed (docs/history.md): after batches over
 * both ingresses, spread over two days and a retried duplicate, every grain's
 * totals and every dimension's counts equal what the raw rows say, counted
 * by SQL on the database.
 */
describe("rollups written with the raw rows", () => {
  let service: TestService;
  const day1 = Date.parse("2026-11-30T23:58:30Z");
  const day2 = Date.parse("2026-12-01T00:01:10Z");

  beforeAll(async () => {
    service = await startTestService();
    const client = ingestClient(GRPC, service.url, service.key);
    for (const at of [day1, day2, day2 + 61_000]) {
      await client.ingest(mixedBatch("test-service", at));
    }
    // A retried batch (same batch id): stored once, counted once.
    const batch = { ...mixedBatch("test-service", day2), batchId: "0193a6c4-retry-once" };
    await client.ingest(batch);
    await client.ingest(batch);
    const legacy = (success: unknown, ms: number, tool: string) => ({
      type: "tool_execution",
      value: 1,
      duration_ms: ms,
      timestamp: (day1 + 5_000) / 1000,
      dimensions: { tool_name: tool, success, method: "tools/call", client_name: "cursor" },
    });
    const posted = await postMetrics(
      service.url,
      {
        service: "test-service",
        metrics: [
          legacy(true, 12, "search"),
          legacy("False", 250, "search"),
          legacy(false, 3000, "fetch"),
        ],
      },
      { key: service.key },
    );
    expect(posted.status).toBe(200);
  });
  afterAll(() => service?.close());

  it("should count every raw event once in each grain's totals, by type and bucket", async () => {
    const raw = await service.sql.all<{ metric_type: string; n: number }>(
      "SELECT metric_type, count(*) AS n FROM metrics GROUP BY metric_type ORDER BY metric_type",
    );
    expect(raw.length).toBe(7);
    for (const grain of GRAINS) {
      const rolled = await service.sql.all<{ metric_type: string; n: number }>(
        `SELECT metric_type, sum(count) AS n FROM ${grain.totals} GROUP BY metric_type ORDER BY metric_type`,
      );
      expect(
        rolled.map((r) => ({ ...r, n: Number(r.n) })),
        grain.totals,
      ).toEqual(raw);
    }
    // Two days, each in its own bucket of every grain.
    const days = await service.sql.all<{ date: string }>(
      "SELECT DISTINCT date FROM metrics_daily ORDER BY date",
    );
    expect(days.map((d) => d.date)).toEqual(["2026-11-30", "2026-12-01"]);
    const hours = await service.sql.all<{ hour_timestamp: string }>(
      "SELECT DISTINCT hour_timestamp FROM metrics_hourly ORDER BY hour_timestamp",
    );
    expect(hours.map((h) => h.hour_timestamp)).toEqual([
      "2026-11-30T23:00:00.000000Z",
      "2026-12-01T00:00:00.000000Z",
    ]);
  });

  it("should keep the legacy aggregate columns: sums, averages and bounds of the value and the duration", async () => {
    const raw = await service.sql.get<Record<string, number>>(
      `SELECT count(*) AS count, sum(value) AS sum_value, min(value) AS min_value, max(value) AS max_value,
              sum(duration_ms) AS sum_duration_ms, count(duration_ms) AS duration_count
       FROM metrics WHERE metric_type = 'tool_execution' AND timestamp < '2026-12-01'`,
    );
    const daily = await service.sql.get<Record<string, number>>(
      `SELECT count, sum_value, avg_value, min_value, max_value, sum_duration_ms, avg_duration_ms, duration_count
       FROM metrics_daily WHERE metric_type = 'tool_execution' AND date = '2026-11-30'`,
    );
    expect(daily).toBeDefined();
    const d = Object.fromEntries(Object.entries(daily ?? {}).map(([k, v]) => [k, Number(v)]));
    expect(d.count).toBe(Number(raw?.count));
    expect(d.sum_value).toBeCloseTo(Number(raw?.sum_value), 9);
    expect(d.avg_value).toBeCloseTo(Number(raw?.sum_value) / Number(raw?.count), 9);
    expect(d.min_value).toBe(Number(raw?.min_value));
    expect(d.max_value).toBe(Number(raw?.max_value));
    expect(d.duration_count).toBe(Number(raw?.duration_count));
    expect(d.sum_duration_ms).toBeCloseTo(Number(raw?.sum_duration_ms), 6);
    expect(d.avg_duration_ms).toBeCloseTo(
      Number(raw?.sum_duration_ms) / Number(raw?.duration_count),
      6,
    );
  });

  it("should count each value of a dimension and its errors as the raw rows do, per hour and per day", async () => {
    const raw = await service.sql.all<{ value: string; n: number; errors: number }>(
      `SELECT tool_name AS value, count(*) AS n, sum(CASE WHEN NOT success THEN 1 ELSE 0 END) AS errors
       FROM tool_metrics WHERE tool_name IS NOT NULL GROUP BY tool_name ORDER BY tool_name`,
    );
    expect(raw.find((r) => r.value === "search")).toMatchObject({ n: 1 + 1 });
    const withDimensions = GRAINS.filter((g) => g.dimensions !== undefined);
    expect(withDimensions.map((g) => g.name)).toEqual(["hour", "day"]);
    // The days across services sum the same values (service is no part of their key).
    const tables = withDimensions.flatMap((g) => [g.dimensions, g.acrossServices ?? []].flat());
    expect(tables).toContain("metrics_daily_dimensions_all_services");
    for (const table of tables) {
      const rolled = await service.sql.all<{ value: string; n: number; errors: number }>(
        `SELECT dimension_value AS value, sum(count) AS n, sum(errors) AS errors FROM ${table}
         WHERE metric_type = 'tool_execution' AND dimension = 'tool_name'
         GROUP BY dimension_value ORDER BY dimension_value`,
      );
      expect(
        rolled.map((r) => ({ value: r.value, n: Number(r.n), errors: Number(r.errors) })),
        table,
      ).toEqual(raw.map((r) => ({ value: r.value, n: Number(r.n), errors: Number(r.errors) })));
    }
  });

  it("should put every timed event in one histogram bucket, and errors only where the outcome is false", async () => {
    for (const grain of GRAINS) {
      const row = await service.sql.get<Record<string, number>>(
        `SELECT sum(duration_count) AS timed, sum(${HISTOGRAM_COLUMNS.join(" + ")}) AS bucketed,
                sum(errors) AS errors
         FROM ${grain.totals}`,
      );
      const raw = await service.sql.get<{ timed: number; errors: number }>(
        `SELECT count(duration_ms) AS timed,
                (SELECT count(*) FROM auth_metrics WHERE NOT success)
                  + (SELECT count(*) FROM tool_metrics WHERE NOT success) AS errors
         FROM metrics WHERE metric_type <> 'protocol_latency'`,
      );
      const latencies = await service.sql.get<{ n: number }>(
        "SELECT count(*) AS n FROM metrics WHERE metric_type = 'protocol_latency'",
      );
      expect(Number(row?.bucketed)).toBe(Number(row?.timed));
      // A protocol latency is timed by its value (seconds), whatever its duration.
      expect(Number(row?.timed)).toBe(Number(raw?.timed) + Number(latencies?.n));
      expect(Number(row?.errors), grain.totals).toBe(Number(raw?.errors));
    }
  });

  it("should count each bucket of the histogram as the raw events' latencies fall, in every table", async () => {
    // Cells of one event add one bucket's column, cells of several all 42:
    // both kinds of statement must land each latency in its own bucket.
    const raw = await service.sql.all<StoredEventRow>(
      `SELECT id, service, metric_type AS "metricType", timestamp, value,
              duration_ms AS "durationMs", dimensions, metadata FROM metrics`,
    );
    /** Per dimension ("" for the totals), the events' latencies per bucket. */
    const expected = new Map<string, number[]>();
    const count = (key: string, bucket: number) => {
      const buckets = expected.get(key) ?? new Array<number>(HISTOGRAM_BUCKETS).fill(0);
      buckets[bucket] = (buckets[bucket] as number) + 1;
      expected.set(key, buckets);
    };
    for (const event of raw) {
      const { latencyMs, dimensions } = rollupRowOfStored(event).rollup;
      if (latencyMs === null) continue;
      count("", histogramBucket(latencyMs));
      for (const [name] of dimensions) count(name, histogramBucket(latencyMs));
    }
    expect(expected.get("")?.filter((n) => n > 0).length).toBeGreaterThan(3);
    const sums = HISTOGRAM_COLUMNS.map((h) => `CAST(sum(${h}) AS BIGINT) AS ${h}`).join(", ");
    const bucketsOf = (row: Record<string, number> | undefined) =>
      HISTOGRAM_COLUMNS.map((h) => Number(row?.[h] ?? 0));
    for (const grain of GRAINS) {
      const totals = await service.sql.get<Record<string, number>>(
        `SELECT ${sums} FROM ${grain.totals}`,
      );
      expect(bucketsOf(totals), grain.totals).toEqual(expected.get(""));
      for (const table of [grain.dimensions, grain.acrossServices]) {
        if (table === undefined) continue;
        for (const [dimension, buckets] of expected) {
          if (dimension === "") continue;
          const row = await service.sql.get<Record<string, number>>(
            `SELECT ${sums} FROM ${table} WHERE dimension = ?`,
            dimension,
          );
          expect(bucketsOf(row), `${table} ${dimension}`).toEqual(buckets);
        }
      }
    }
  });
});
