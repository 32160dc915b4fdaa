/**
 * Charts drawn with uPlot (a small canvas time-series library, bundled at
 * build time): lines over time, and a forecast with its band.
 */
import uPlot from "uplot";

/** A line of a chart: its label and one value (or gap) per time. */
export interface Line {
  readonly label: string;
  readonly values: readonly (number | null)[];
}

const COLORS = [
  "#2563eb",
  "#dc2626",
  "#16a34a",
  "#9333ea",
  "#ea580c",
  "#0891b2",
  "#4b5563",
  "#ca8a04",
];

export const colorOf = (i: number): string => COLORS[i % COLORS.length] as string;

/** Charts resize with their panel. */
const resizing = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const chart = charts.get(entry.target);
    if (chart !== undefined) chart.setSize(sizeOf(entry.target as HTMLElement));
  }
});
const charts = new WeakMap<Element, uPlot>();

function sizeOf(el: HTMLElement): { width: number; height: number } {
  return { width: Math.max(240, el.clientWidth), height: 220 };
}

function mount(
  el: HTMLElement,
  options: Omit<uPlot.Options, "width" | "height">,
  data: uPlot.AlignedData,
): void {
  el.replaceChildren();
  const chart = new uPlot({ ...options, ...sizeOf(el) }, data, el);
  charts.set(el, chart);
  resizing.observe(el);
}

/** Lines over `times` (seconds since the epoch), values in `unit`. */
export function lineChart(
  el: HTMLElement,
  times: readonly number[],
  lines: readonly Line[],
  unit: string,
): void {
  mount(
    el,
    {
      series: [
        {},
        ...lines.map((l, i) => ({
          label: l.label,
          stroke: colorOf(i),
          width: 1.5,
          spanGaps: false,
          // Measures absent in empty steps (a rate, a percentile) are often lone points: drawn.
          points: { show: true, size: 4 },
          value: (_u: uPlot, v: number | null) => (v === null ? "–" : `${formatNumber(v)} ${unit}`),
        })),
      ],
      axes: [{}, { size: 60, values: (_u, ticks) => ticks.map((t) => formatNumber(t)) }],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    },
    [times as number[], ...lines.map((l) => l.values as (number | null)[])],
  );
}

/** The history, its trend and the forecast with its band, on one time axis. */
export function forecastChart(
  el: HTMLElement,
  times: readonly number[],
  series: {
    readonly history: readonly (number | null)[];
    readonly trend: readonly (number | null)[];
    readonly lower: readonly (number | null)[];
    readonly upper: readonly (number | null)[];
  },
): void {
  mount(
    el,
    {
      series: [
        {},
        { label: "history", stroke: colorOf(0), width: 1.5 },
        { label: "trend and forecast", stroke: colorOf(1), width: 1.5, dash: [6, 4] },
        { label: "band low", stroke: "rgba(220,38,38,0.35)", width: 1 },
        { label: "band high", stroke: "rgba(220,38,38,0.35)", width: 1 },
      ],
      bands: [{ series: [4, 3], fill: "rgba(220,38,38,0.10)" }],
      axes: [{}, { size: 60, values: (_u, ticks) => ticks.map((t) => formatNumber(t)) }],
      cursor: { drag: { x: false, y: false } },
    },
    [
      times as number[],
      series.history as (number | null)[],
      series.trend as (number | null)[],
      series.lower as (number | null)[],
      series.upper as (number | null)[],
    ],
  );
}

/** A number as the page writes it: grouped thousands, at most two decimals (three significant digits when small). */
export function formatNumber(v: number): string {
  const abs = Math.abs(v);
  // A small rate (0.00036 events/s) keeps three significant digits, not a 0.
  if (abs > 0 && abs < 0.01) return v.toLocaleString("en-US", { maximumSignificantDigits: 3 });
  const digits = abs >= 100 || Number.isInteger(v) ? 0 : abs >= 1 ? 2 : 3;
  return v.toLocaleString("en-US", { maximumFractionDigits: digits });
}
