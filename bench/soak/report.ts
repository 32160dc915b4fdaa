/**
 * The soak's report: the verdicts and the time series as Markdown, and the
 * series as an SVG chart (Vega-Lite, as the ingest bench's chart), one panel
 * per concern, all against elapsed time.
 */
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { Sample } from "./sample.js";
import { HORIZON_SECONDS, type Trend } from "./trend.js";

/** One check of the soak. */
export interface Verdict {
  readonly name: string;
  /** False only for a FAIL: a check reported, not judged, does not fail the run. */
  readonly passed: boolean;
  /** PASS or FAIL; REPORTED when this run does not judge it (a quick run's trends and delay bound). */
  readonly status: "PASS" | "FAIL" | "REPORTED";
  /** Why a REPORTED check was not judged. */
  readonly reason?: string;
  readonly detail: string;
}

const fixed = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "–");

/** The verdicts as a Markdown table. */
export function verdictTable(verdicts: readonly Verdict[]): string {
  return [
    "| Check | Result | Detail |",
    "|---|---|---|",
    ...verdicts.map(
      (v) =>
        `| ${v.name} | ${v.status === "FAIL" ? "**FAIL**" : v.status === "REPORTED" ? `REPORTED (${v.reason})` : "PASS"} | ${v.detail.replaceAll("|", "\\|")} |`,
    ),
  ].join("\n");
}

/** The fitted trends, growth quoted per 10 minutes. */
export function trendTable(trends: Readonly<Record<string, Trend>>): string {
  return [
    "| Series | Mean | Growth per 10 min | ± 2 standard errors | Residual autocorrelation | Limit | Growing |",
    "|---|---:|---:|---:|---:|---:|---|",
    ...Object.entries(trends).map(
      ([name, t]) =>
        `| ${name} | ${fixed(t.mean, 2)} | ${fixed(t.growthPerHorizon, 2)} | ${fixed(2 * t.slopeStandardError * HORIZON_SECONDS, 2)} | ${fixed(t.residualAutocorrelation, 2)} | ${fixed(t.limitPerHorizon, 2)} | ${t.growing ? "**yes**" : "no"} |`,
    ),
  ].join("\n");
}

/** One row per sample. */
export function sampleTable(samples: readonly Sample[]): string {
  return [
    "| s | RSS MiB | heap used / committed MiB | live heap MiB | loop p50 ms | loop p99 ms | loop max ms | health ms | CPU % | CPU µs/event | commit ms | machine load | events/s | acked | req p99 ms | scrape ms | series | rows | expired rows | deleted | WAL MiB |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...samples.map(
      (s) =>
        `| ${fixed(s.elapsedSeconds, 0)} | ${fixed(s.rssMiB)} | ${fixed(s.heapUsedMiB)} / ${fixed(s.heapTotalMiB)} | ${fixed(s.liveHeapMiB)} | ${fixed(s.loopDelayP50Ms)} | ${fixed(s.loopDelayP99Ms)} | ${fixed(s.loopDelayMaxMs)} | ${fixed(s.healthMedianMs, 2)} | ${fixed(s.cpuPercent, 0)} | ${fixed(s.cpuMicrosPerEvent)} | ${fixed(s.commitMeanMs, 2)} | ${fixed(s.machineLoad, 2)} | ${Math.round(s.eventsPerSecond)} | ${s.ackedEvents} | ${fixed(s.requestP99Ms)} | ${fixed(s.scrapeMs)} | ${s.series} | ${s.rows} | ${s.expiredRows} | ${s.deletedRows} | ${fixed(s.walMiB)} |`,
    ),
  ].join("\n");
}

/** A panel: some fields of the samples, one line each, against elapsed seconds. */
function panel(
  title: string,
  unit: string,
  fields: Readonly<Record<string, (s: Sample) => number>>,
  samples: readonly Sample[],
): object {
  const values = samples.flatMap((s) =>
    Object.entries(fields)
      .map(([series, read]) => ({ elapsed: s.elapsedSeconds, series, value: read(s) }))
      .filter((p) => Number.isFinite(p.value)),
  );
  return {
    title,
    width: 640,
    height: 140,
    data: { values },
    mark: { type: "line", point: { size: 12 } },
    encoding: {
      x: { field: "elapsed", type: "quantitative", title: "elapsed s" },
      y: { field: "value", type: "quantitative", title: unit },
      color: { field: "series", type: "nominal", title: null, legend: { labelLimit: 240 } },
    },
  };
}

/** The chart: memory, latencies, throughput and scrapes over the run. */
export async function soakChart(samples: readonly Sample[], title: string): Promise<string> {
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    resolve: { scale: { color: "independent" } },
    vconcat: [
      panel(
        "Memory",
        "MiB",
        {
          RSS: (s) => s.rssMiB,
          "V8 heap used": (s) => s.heapUsedMiB,
          "V8 heap committed": (s) => s.heapTotalMiB,
          "heap after a full GC": (s) => s.liveHeapMiB,
          external: (s) => s.externalMiB,
        },
        samples,
      ),
      panel(
        "Event loop and requests",
        "ms",
        {
          "loop delay p99": (s) => s.loopDelayP99Ms,
          "loop delay p50": (s) => s.loopDelayP50Ms,
          "GET /health median": (s) => s.healthMedianMs,
          "ingest request p99": (s) => s.requestP99Ms,
        },
        samples,
      ),
      panel(
        "Throughput",
        "events/s",
        {
          "events acknowledged per second": (s) => s.eventsPerSecond,
        },
        samples,
      ),
      panel(
        "Scrape and storage",
        "ms / MiB",
        {
          "scrape ms": (s) => s.scrapeMs,
          "WAL MiB": (s) => s.walMiB,
        },
        samples,
      ),
    ],
  } as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  return await view.toSVG();
}
