/**
 * Growth trends of a soak's time series: a least-squares line through the
 * points after warm-up, its slope scaled to a 10-minute horizon, and whether
 * that growth is larger than a limit and larger than the noise around it.
 *
 * The noise is not independent from one sample to the next: memory rises
 * between full collections for several samples, then falls at once. The
 * slope's standard error is therefore widened by the residuals' lag-1
 * autocorrelation (an AR(1) model: an effective sample size of
 * n (1 - rho) / (1 + rho)), so that a collector's sawtooth caught at one
 * phase is not taken for a trend.
 */

/** The horizon every growth is quoted over, s (the "per 10 minutes"). */
export const HORIZON_SECONDS = 600;

/** A fitted line and what it says. */
export interface Trend {
  /** Points fitted. */
  readonly points: number;
  readonly mean: number;
  /** Units per second. */
  readonly slope: number;
  /** Standard error of the slope, units per second, widened for autocorrelation (NaN below 3 points). */
  readonly slopeStandardError: number;
  /** Lag-1 autocorrelation of the residuals, clamped to [0, 0.95]. */
  readonly residualAutocorrelation: number;
  /** `slope * HORIZON_SECONDS`. */
  readonly growthPerHorizon: number;
  /** The limit it was held to, in units per horizon. */
  readonly limitPerHorizon: number;
  /**
   * Growth over the limit and more than twice its standard error: a trend the
   * noise of the run cannot explain.
   */
  readonly growing: boolean;
}

/** Ordinary least squares of `y` on `x`, the pairs with a finite `y` only. */
export function fitTrend(
  xs: readonly number[],
  ys: readonly number[],
  limitPerHorizon: number,
): Trend {
  const pairs = xs
    .map((x, i) => [x, ys[i] ?? Number.NaN] as const)
    .filter(([, y]) => Number.isFinite(y));
  const n = pairs.length;
  const meanX = pairs.reduce((s, [x]) => s + x, 0) / n;
  const mean = pairs.reduce((s, [, y]) => s + y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const [x, y] of pairs) {
    sxx += (x - meanX) ** 2;
    sxy += (x - meanX) * (y - mean);
  }
  const slope = n >= 2 && sxx > 0 ? sxy / sxx : Number.NaN;
  const residuals = [...pairs]
    .sort((a, b) => a[0] - b[0])
    .map(([x, y]) => y - (mean + slope * (x - meanX)));
  let squares = 0;
  let lagged = 0;
  residuals.forEach((e, i) => {
    squares += e * e;
    if (i > 0) lagged += e * (residuals[i - 1] ?? 0);
  });
  const rho = squares > 0 ? Math.min(0.95, Math.max(0, lagged / squares)) : 0;
  const slopeStandardError =
    n >= 3 && sxx > 0
      ? Math.sqrt(squares / (n - 2) / sxx) * Math.sqrt((1 + rho) / (1 - rho))
      : Number.NaN;
  const growthPerHorizon = slope * HORIZON_SECONDS;
  // With no error estimate (too few points) the limit alone decides.
  const beyondNoise = !(slope <= 2 * slopeStandardError);
  return {
    points: n,
    mean,
    slope,
    slopeStandardError,
    residualAutocorrelation: rho,
    growthPerHorizon,
    limitPerHorizon,
    growing: growthPerHorizon > limitPerHorizon && beyondNoise,
  };
}
