// backends: sqlite only: the histogram and the range planner are functions; no database
import { describe, expect, it } from "vitest";
import { planPieces } from "../../src/query/plan.js";
import {
  emptyCell,
  HISTOGRAM_BOUNDS_MS,
  HISTOGRAM_BUCKETS,
  histogramBucket,
  mergeCell,
  quantileOf,
} from "../../src/storage/rollups.js";

/** A cell of these latencies. */
function cellOf(latencies: readonly number[]) {
  const cell = emptyCell();
  for (const ms of latencies) {
    const one = emptyCell();
    one.count = one.timed = 1;
    one.sumLatency = one.minLatency = one.maxLatency = ms;
    one.minValue = one.maxValue = one.sumValue = 1;
    one.histogram[histogramBucket(ms)] = 1;
    mergeCell(cell, one);
  }
  return cell;
}

describe("the rollups' latency histogram", () => {
  it("should put a latency in the first bucket whose bound it does not exceed, the longest in the last", () => {
    expect(histogramBucket(0)).toBe(0);
    expect(histogramBucket(0.1)).toBe(0);
    HISTOGRAM_BOUNDS_MS.forEach((bound, i) => {
      expect(histogramBucket(bound), `bound ${bound}`).toBe(i);
      expect(histogramBucket(bound * 1.000001), `past ${bound}`).toBe(i + 1);
    });
    expect(histogramBucket(86_400_000)).toBe(HISTOGRAM_BUCKETS - 1);
    expect(histogramBucket(Number.MAX_VALUE)).toBe(HISTOGRAM_BUCKETS - 1);
  });

  it("should estimate percentiles within a bucket, and never outside the observed range", () => {
    const uniform = cellOf(Array.from({ length: 1000 }, (_, i) => 1 + i * 0.1)); // 1..100.9 ms
    for (const [q, exact] of [
      [0.5, 50.95],
      [0.95, 95.95],
      [0.99, 99.95],
    ] as const) {
      const estimate = quantileOf(uniform, q) as number;
      expect(Math.abs(estimate - exact) / exact, `p${q * 100}`).toBeLessThan(0.1);
    }
    const one = cellOf([42]);
    expect(quantileOf(one, 0.5)).toBe(42);
    expect(quantileOf(cellOf([5, 7_200_000]), 0.99)).toBeLessThanOrEqual(7_200_000);
    expect(quantileOf(emptyCell(), 0.5)).toBeUndefined();
  });
});

describe("the range planner", () => {
  const H = 3_600_000;
  const D = 24 * H;
  const M = 60_000;
  const kept = {
    minute: Number.NEGATIVE_INFINITY,
    hour: Number.NEGATIVE_INFINITY,
    day: Number.NEGATIVE_INFINITY,
  };
  const t0 = Date.parse("2026-11-01T00:00:00Z");

  it("should cover a range with whole days, then hours, then minutes at its edges, aligned to minutes", () => {
    const pieces = planPieces(
      { startMs: t0 + 22 * H + 30 * M + 5_000, endMs: t0 + 3 * D + 2 * H + 10 * M },
      kept,
    );
    expect(pieces.map((p) => [p.grain, (p.startMs - t0) / M, (p.endMs - t0) / M])).toEqual([
      ["minute", 22 * 60 + 30, 23 * 60],
      ["hour", 23 * 60, 24 * 60],
      ["day", 24 * 60, 3 * 24 * 60],
      ["hour", 3 * 24 * 60, 3 * 24 * 60 + 120],
      ["minute", 3 * 24 * 60 + 120, 3 * 24 * 60 + 130],
    ]);
  });

  it("should never use a grain coarser than asked (a series' step)", () => {
    const pieces = planPieces({ startMs: t0, endMs: t0 + 2 * D }, kept, "hour");
    expect(pieces).toEqual([{ grain: "hour", startMs: t0, endMs: t0 + 2 * D }]);
  });

  it("should widen the parts whose finer rollups are gone to the next grain kept", () => {
    const pieces = planPieces(
      { startMs: t0 + 10 * H + 15 * M, endMs: t0 + 2 * D + 5 * M },
      { minute: t0 + 2 * D - H, hour: t0 + 5 * H, day: Number.NEGATIVE_INFINITY },
    );
    expect(pieces.map((p) => [p.grain, (p.startMs - t0) / H, (p.endMs - t0) / H])).toEqual([
      ["hour", 10, 24],
      ["day", 24, 48],
      ["minute", 48, 48 + 5 / 60],
    ]);
  });
});
