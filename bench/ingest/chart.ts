/**
 * The benchmark's chart: p99 request latency against the acknowledged event
 * rate, one line per arm, with the 50 ms limit drawn across, rendered to SVG
 * by Vega-Lite (no browser or canvas needed).
 */
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

export interface ChartPoint {
  readonly arm: string;
  readonly eventsPerSecond: number;
  readonly p99Ms: number;
}

export async function latencyChart(
  points: readonly ChartPoint[],
  limitMs: number,
  title: string,
): Promise<string> {
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: 640,
    height: 360,
    layer: [
      {
        data: { values: points.map((p) => ({ ...p, p99Ms: Math.max(0.1, p.p99Ms) })) },
        mark: { type: "line", point: true },
        encoding: {
          x: {
            field: "eventsPerSecond",
            type: "quantitative",
            title: "events acknowledged per second",
          },
          y: {
            field: "p99Ms",
            type: "quantitative",
            title: "p99 request latency (ms, log scale)",
            scale: { type: "log" },
          },
          color: { field: "arm", type: "nominal", title: "arm", legend: { labelLimit: 360 } },
        },
      },
      {
        data: { values: [{ limit: limitMs }] },
        mark: { type: "rule", strokeDash: [6, 4], color: "#b00" },
        encoding: { y: { field: "limit", type: "quantitative" } },
      },
    ],
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  return await view.toSVG();
}
