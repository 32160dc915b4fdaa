/**
 * How long a Prometheus scrape of the service takes while it ingests, at
 * about 1,000 and 4,000 series. Series are made the way production makes
 * them: tool calls with distinct label values (each label set is a counter and
 * a histogram of 20 series). "Series" counts the sample lines of the
 * exposition, as Prometheus does. The ingest meanwhile re-sends label sets
 * already seeded (the benchmark's mixed workload alone makes ~40,000 series),
 * from this process at a light rate.
 */
import { freePort, KEY, startServer } from "./processes.js";
import { quantile } from "./quantile.js";
import { BENCH_SERVICE } from "./workload.js";

export interface ScrapeTiming {
  readonly series: number;
  readonly scrapes: number;
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly bytes: number;
  /** Events per second ingested meanwhile. */
  readonly ingestingEventsPerSecond: number;
}

const TARGETS = [1000, 4000];
const INGEST_REQUESTS_PER_SECOND = 50;
const SCRAPE_EVERY_MS = 200;

const sampleLines = (text: string) =>
  text.split("\n").filter((line) => line !== "" && !line.startsWith("#")).length;

/** Tool calls whose label sets start at `from`: distinct tool and server names. */
function seedBody(from: number, count: number): string {
  const metrics = Array.from({ length: count }, (_, i) => {
    const n = from + i;
    return {
      type: "tool_execution",
      value: 1,
      duration_ms: 12.5,
      dimensions: {
        tool_name: `tool_${n % 100}`,
        server_name: `server_${Math.floor(n / 100)}`,
        method: "tools/call",
        success: true,
        client_name: "bench",
      },
    };
  });
  return JSON.stringify({ service: BENCH_SERVICE, metrics });
}

export async function measureScrapes(dir: string, seconds: number): Promise<ScrapeTiming[]> {
  const prometheusPort = await freePort();
  const server = await startServer("scrape", "json", dir, {
    OTEL_PROMETHEUS_PORT: String(prometheusPort),
  });
  const scrapeUrl = `http://127.0.0.1:${prometheusPort}/metrics`;
  const post = (body: string) =>
    fetch(`${server.url}/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": KEY },
      body,
    });
  const results: ScrapeTiming[] = [];
  try {
    let labelSets = 0;
    for (const target of TARGETS) {
      // Add label sets until the exposition has the target's series.
      for (;;) {
        const series = sampleLines(await (await fetch(scrapeUrl)).text());
        if (series >= target) break;
        const response = await post(seedBody(labelSets, 10));
        if (!response.ok) throw new Error(`seeding series: HTTP ${response.status}`);
        labelSets += 10;
      }
      const timings: number[] = [];
      let bytes = 0;
      let series = 0;
      let ingested = 0;
      let sent = 0;
      const ingest = setInterval(() => {
        // Up to 100 events over label sets that already exist.
        const count = Math.min(100, labelSets);
        const from = (sent++ * count) % (labelSets - count + 1);
        void post(seedBody(from, count)).then((r) => {
          if (r.ok) ingested += count;
        });
      }, 1000 / INGEST_REQUESTS_PER_SECOND);
      const started = performance.now();
      while (performance.now() - started < seconds * 1000) {
        const before = performance.now();
        const text = await (await fetch(scrapeUrl)).text();
        timings.push(performance.now() - before);
        bytes = text.length;
        series = sampleLines(text);
        await new Promise((r) => setTimeout(r, SCRAPE_EVERY_MS));
      }
      clearInterval(ingest);
      const elapsed = (performance.now() - started) / 1000;
      timings.sort((a, b) => a - b);
      results.push({
        series,
        scrapes: timings.length,
        medianMs: quantile(timings, 0.5),
        p99Ms: quantile(timings, 0.99),
        maxMs: timings.at(-1) ?? 0,
        bytes,
        ingestingEventsPerSecond: ingested / elapsed,
      });
    }
  } finally {
    await server.stop();
  }
  return results;
}
