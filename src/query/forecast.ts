/**
 * The growth forecast (docs/history.md, "Forecast"): a least-squares line
 * through a measure's daily values, with weekday factors when there are
 * three weeks of history or more, and a 95% prediction band from the
 * residuals. Plain on purpose: an operator can check it with a spreadsheet,
 * and on the synthetic histories of test/history/forecast.test.ts (a known
 * trend, with and without a weekly pattern) it lands within a few percent of
 * the truth.
 */

/** One day's value: `day` counts days from the history's first. */
export interface DayValue {
  readonly day: number;
  readonly value: number;
}

/** A fitted model, ready to project. */
export interface Fit {
  /** The line's change per day (of the week's average, when weekly). */
  readonly slopePerDay: number;
  /** Factors by weekday index (0 Monday), averaging 1; empty without weekly. */
  readonly weekdayFactors: readonly number[];
  readonly weekly: boolean;
  /** The residuals' standard deviation on the measure's own scale. */
  readonly residualSd: number;
  readonly rSquared: number;
  /** The model's value on a day. */
  at(day: number): number;
  /** Half the 95% prediction band's width on a day. */
  halfBand(day: number): number;
}

/** Days of history below which no weekday factors are fitted. */
export const WEEKLY_FROM_DAYS = 21;
/** Fewest days a fit needs. */
export const MIN_DAYS = 7;

/** The method as answers name it. */
export function methodName(weekly: boolean): string {
  return weekly
    ? "least-squares linear trend of the values divided by their weekday's factor (each weekday's mean ratio to its centred 7-day average), multiplied back; 95% prediction band from the residuals"
    : "least-squares linear trend; 95% prediction band from the residuals";
}

/**
 * Fits the values; `weekdayOf(day)` is the day's weekday index (0 Monday).
 * With three weeks or more the weekly pattern is multiplicative, as a
 * gateway's is (weekends at a share of weekdays, whatever the level):
 * each weekday's factor is its days' mean ratio to the centred 7-day
 * average around them, the line is fitted to the values divided by their
 * factor, and projections are multiplied back. Undefined with fewer than
 * {@link MIN_DAYS} values.
 */
export function fitTrend(
  values: readonly DayValue[],
  weekdayOf: (day: number) => number,
): Fit | undefined {
  if (values.length < MIN_DAYS) return undefined;
  const span = (values.at(-1) as DayValue).day - (values[0] as DayValue).day + 1;
  const factors = span >= WEEKLY_FROM_DAYS ? weekdayFactors(values, weekdayOf) : undefined;
  const factorOf = (day: number) =>
    factors === undefined ? 1 : (factors[weekdayOf(day)] as number);
  // A weekday with no traffic at all (factor 0) tells the line nothing.
  const adjusted = values
    .filter((v) => factorOf(v.day) > 0)
    .map((v) => ({ day: v.day, value: v.value / factorOf(v.day) }));
  const line = fitLine(adjusted);
  if (line === undefined) return undefined;
  const at = (day: number) => factorOf(day) * line.at(day);
  const n = values.length;
  const mean = values.reduce((s, v) => s + v.value, 0) / n;
  let sse = 0;
  let sst = 0;
  for (const { day, value } of values) {
    sse += (value - at(day)) ** 2;
    sst += (value - mean) ** 2;
  }
  // Two parameters of the line and, when weekly, six free factors.
  const dof = Math.max(1, n - (factors === undefined ? 2 : 8));
  const t = studentT975(dof);
  return {
    slopePerDay: line.slope,
    weekdayFactors: factors ?? [],
    weekly: factors !== undefined,
    residualSd: Math.sqrt(sse / dof),
    rSquared: sst > 0 ? Math.max(0, 1 - sse / sst) : 1,
    at,
    // sqrt(1 + leverage): a new day's spread plus the line's own uncertainty
    // there, on the adjusted scale, multiplied back.
    halfBand: (day) => factorOf(day) * t * line.residualSd * line.spread(day),
  };
}

/**
 * Each weekday's mean ratio of its value to the centred 7-day average
 * around it, scaled to average 1; undefined when a weekday has no day with
 * a whole week around it or the averages are all 0.
 */
function weekdayFactors(
  values: readonly DayValue[],
  weekdayOf: (day: number) => number,
): number[] | undefined {
  const byDay = new Map(values.map((v) => [v.day, v.value]));
  const sums = new Array<number>(7).fill(0);
  const counts = new Array<number>(7).fill(0);
  for (const { day, value } of values) {
    let window = 0;
    let whole = true;
    for (let d = day - 3; d <= day + 3 && whole; d++) {
      const v = byDay.get(d);
      if (v === undefined) whole = false;
      else window += v;
    }
    if (!whole || window <= 0) continue;
    const w = weekdayOf(day);
    sums[w] = (sums[w] as number) + value / (window / 7);
    counts[w] = (counts[w] as number) + 1;
  }
  if (counts.some((c) => c === 0)) return undefined;
  const raw = sums.map((s, w) => s / (counts[w] as number));
  const average = raw.reduce((s, v) => s + v, 0) / 7;
  return average > 0 ? raw.map((v) => v / average) : undefined;
}

/** A least-squares line, with what its band needs. */
interface Line {
  readonly slope: number;
  readonly residualSd: number;
  at(day: number): number;
  /** sqrt(1 + 1/n + (day - mean day)² / Sxx): how the band widens away from the days fitted. */
  spread(day: number): number;
}

function fitLine(values: readonly DayValue[]): Line | undefined {
  const n = values.length;
  if (n < MIN_DAYS) return undefined;
  const meanDay = values.reduce((s, v) => s + v.day, 0) / n;
  const meanValue = values.reduce((s, v) => s + v.value, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const { day, value } of values) {
    sxx += (day - meanDay) ** 2;
    sxy += (day - meanDay) * (value - meanValue);
  }
  if (sxx === 0) return undefined;
  const slope = sxy / sxx;
  const intercept = meanValue - slope * meanDay;
  const at = (day: number) => intercept + slope * day;
  const sse = values.reduce((s, v) => s + (v.value - at(v.day)) ** 2, 0);
  return {
    slope,
    residualSd: Math.sqrt(sse / Math.max(1, n - 2)),
    at,
    spread: (day) => Math.sqrt(1 + 1 / n + (day - meanDay) ** 2 / sxx),
  };
}

/** How a fit did on days it did not see. */
export interface HoldoutResult {
  readonly days: number;
  /** Mean absolute error over the days held out, over their mean. */
  readonly relativeError: number;
  /** Share of the held-out days inside the band. */
  readonly coverage: number;
}

/**
 * Fits all but the last `days` values and compares the projection with
 * them; undefined when what is left is too short to fit.
 */
export function holdout(
  values: readonly DayValue[],
  days: number,
  weekdayOf: (day: number) => number,
  clamp: (v: number) => number = (v) => v,
): HoldoutResult | undefined {
  const last = values.at(-1);
  if (last === undefined || days < 1) return undefined;
  const cut = last.day - days;
  const seen = values.filter((v) => v.day <= cut);
  const held = values.filter((v) => v.day > cut);
  const fit = fitTrend(seen, weekdayOf);
  if (fit === undefined || held.length === 0) return undefined;
  let absolute = 0;
  let inside = 0;
  let sum = 0;
  for (const { day, value } of held) {
    const trend = fit.at(day);
    absolute += Math.abs(value - clamp(trend));
    sum += Math.abs(value);
    const half = fit.halfBand(day);
    if (value >= clamp(trend - half) && value <= clamp(trend + half)) inside++;
  }
  return {
    days: held.length,
    relativeError: sum > 0 ? absolute / sum : absolute === 0 ? 0 : 1,
    coverage: inside / held.length,
  };
}

/**
 * Student's t 0.975 quantile for `dof` degrees of freedom: the normal
 * quantile with the Cornish-Fisher terms (within 1% of the table from 3
 * degrees of freedom on; the table's own values below).
 */
export function studentT975(dof: number): number {
  if (dof <= 1) return 12.706;
  if (dof === 2) return 4.303;
  const z = 1.959964;
  const g1 = (z ** 3 + z) / 4;
  const g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96;
  const g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384;
  return z + g1 / dof + g2 / dof ** 2 + g3 / dof ** 3;
}
