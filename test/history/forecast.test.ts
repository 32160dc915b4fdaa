// backends: sqlite only: the method is pure arithmetic; test/history/forecast-api.test.ts runs it on both backends
import { describe, expect, it } from "vitest";
import { type DayValue, fitTrend, holdout, studentT975 } from "../../src/query/forecast.js";

/** A seeded generator (mulberry32), so that a failure reproduces. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A normal draw (Box-Muller). */
const normal = (next: () => number) =>
  Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());

const mean = (xs: readonly number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;

/** Day 0 is a Monday here. */
const weekdayOf = (day: number) => day % 7;
/** Weekends at 45% of a weekday's traffic, as a business gateway's. */
const WEEKLY = [1.1, 1.1, 1.1, 1.1, 1.1, 0.45, 0.45];

/**
 * Daily event counts with a known mean: `base + slope * day`, times the
 * weekday's factor, with Poisson-sized noise (sd = sqrt(mean)).
 */
function synthetic(days: number, base: number, slope: number, weekly: boolean, seed: number) {
  const next = random(seed);
  const expected = (day: number) =>
    (base + slope * day) * (weekly ? (WEEKLY[day % 7] as number) : 1);
  const values: DayValue[] = Array.from({ length: days }, (_, day) => ({
    day,
    value: Math.max(0, Math.round(expected(day) + Math.sqrt(expected(day)) * normal(next))),
  }));
  return { values, expected };
}

/** How a fit on the first `seen` days did over the next `ahead` days of the same history. */
function scoreAhead(days: number, seen: number, weekly: boolean, seed: number) {
  const { values, expected } = synthetic(days, 2_000, 15, weekly, seed);
  const fit = fitTrend(values.slice(0, seen), weekdayOf);
  if (fit === undefined) throw new Error("no fit");
  const future = values.slice(seen);
  let absolute = 0;
  let total = 0;
  let inside = 0;
  for (const { day, value } of future) {
    absolute += Math.abs(fit.at(day) - expected(day));
    total += expected(day);
    if (Math.abs(value - fit.at(day)) <= fit.halfBand(day)) inside++;
  }
  return { fit, errorAgainstTruth: absolute / total, coverage: inside / future.length };
}

describe("the forecast's method (docs/history.md, Forecast)", () => {
  it("should recover a known linear trend and project it within 2% of the truth", () => {
    // 90 days fitted, 30 projected; 50 seeds, each judged on its error.
    const coverages: number[] = [];
    for (let seed = 1; seed <= 50; seed++) {
      const { fit, errorAgainstTruth, coverage } = scoreAhead(120, 90, false, seed);
      expect(fit.slopePerDay).toBeGreaterThan(15 * 0.85);
      expect(fit.slopePerDay).toBeLessThan(15 * 1.15);
      expect(errorAgainstTruth).toBeLessThan(0.02);
      coverages.push(coverage);
    }
    // A 95% band holds most noisy future days (fewer than 95%: the noise grows with the level).
    expect(mean(coverages)).toBeGreaterThanOrEqual(0.85);
  });

  it("should fit weekday factors with three weeks or more, and project a weekly pattern within 3%", () => {
    const coverages: number[] = [];
    for (let seed = 101; seed <= 150; seed++) {
      const { fit, errorAgainstTruth, coverage } = scoreAhead(120, 90, true, seed);
      expect(fit.weekly).toBe(true);
      expect(fit.weekdayFactors).toHaveLength(7);
      expect(fit.weekdayFactors.reduce((s, v) => s + v, 0) / 7).toBeCloseTo(1, 9);
      // The synthetic factors, scaled to average 1: 1.1 and 0.45 over their mean of 0.914.
      const average = mean(WEEKLY);
      fit.weekdayFactors.forEach((f, w) => {
        expect(f).toBeCloseTo((WEEKLY[w] as number) / average, 1);
      });
      expect(errorAgainstTruth).toBeLessThan(0.03);
      coverages.push(coverage);
    }
    expect(mean(coverages)).toBeGreaterThanOrEqual(0.85);
  });

  it("should do worse without the factors on a weekly history: the factors are what the pattern needs", () => {
    const { values, expected } = synthetic(120, 2_000, 15, true, 21);
    const withFactors = fitTrend(values.slice(0, 90), weekdayOf);
    // The line alone: fitted on fewer than three weeks' span is not weekly, so shift nothing
    // and fit the same 90 days as if all were one weekday.
    const lineOnly = fitTrend(values.slice(0, 90), () => 0);
    if (withFactors === undefined || lineOnly === undefined) throw new Error("no fit");
    const error = (at: (d: number) => number) =>
      values.slice(90).reduce((s, { day }) => s + Math.abs(at(day) - expected(day)), 0);
    expect(lineOnly.weekly).toBe(false);
    expect(error((d) => withFactors.at(d))).toBeLessThan(error((d) => lineOnly.at(d)) / 4);
  });

  it("should fit a line alone below three weeks, and nothing below a week", () => {
    const { values } = synthetic(20, 100, 1, false, 31);
    const fit = fitTrend(values, weekdayOf);
    expect(fit?.weekly).toBe(false);
    expect(fit?.weekdayFactors).toEqual([]);
    expect(fitTrend(values.slice(0, 6), weekdayOf)).toBeUndefined();
  });

  it("should fit an exact line exactly, with a band of nothing but its fit", () => {
    const values = Array.from({ length: 30 }, (_, day) => ({ day, value: 50 + 3 * day }));
    const fit = fitTrend(values, weekdayOf);
    expect(fit?.slopePerDay).toBeCloseTo(3, 9);
    expect(fit?.at(40)).toBeCloseTo(170, 6);
    expect(fit?.rSquared).toBeCloseTo(1, 9);
    expect(fit?.halfBand(40)).toBeLessThan(1e-6);
  });

  it("should widen the band the further it projects", () => {
    const { values } = synthetic(60, 500, 2, false, 41);
    const fit = fitTrend(values, weekdayOf);
    if (fit === undefined) throw new Error("no fit");
    expect(fit.halfBand(120)).toBeGreaterThan(fit.halfBand(61));
  });

  it("should score itself on days held out", () => {
    const { values } = synthetic(90, 2_000, 15, true, 51);
    const check = holdout(values, 21, weekdayOf);
    expect(check?.days).toBe(21);
    expect(check?.relativeError).toBeLessThan(0.05);
    expect(check?.coverage).toBeGreaterThanOrEqual(0.7);
    // A broken trend (a step down after the days fitted) shows as a large error.
    const broken = values.map((v) => (v.day >= 69 ? { ...v, value: v.value / 2 } : v));
    expect(holdout(broken, 21, weekdayOf)?.relativeError).toBeGreaterThan(0.5);
  });

  it("should fall back to the line when a weekday has no whole week around it", () => {
    // Weekdays only: Saturday and Sunday are never seen.
    const values = Array.from({ length: 40 }, (_, day) => ({ day, value: 10 + day })).filter(
      (v) => v.day % 7 < 5,
    );
    const fit = fitTrend(values, weekdayOf);
    expect(fit?.weekly).toBe(false);
    expect(fit?.slopePerDay).toBeCloseTo(1, 6);
  });

  it("should project 0 on a weekday without traffic, and fit the line on the others", () => {
    const values = Array.from({ length: 42 }, (_, day) => ({
      day,
      value: day % 7 === 6 ? 0 : 100 + 2 * day,
    }));
    const fit = fitTrend(values, weekdayOf);
    expect(fit?.weekly).toBe(true);
    expect(fit?.at(48)).toBe(0);
    expect(fit?.slopePerDay).toBeGreaterThan(0);
  });

  it("should use Student's t for the band (within 1% of the table)", () => {
    const table: [number, number][] = [
      [3, 3.182],
      [5, 2.571],
      [10, 2.228],
      [30, 2.042],
      [120, 1.98],
    ];
    for (const [dof, t] of table) expect(Math.abs(studentT975(dof) / t - 1)).toBeLessThan(0.01);
  });
});
