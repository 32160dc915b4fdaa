/**
 * A registry's semantic tool search, measured: the embedding and vector-search
 * times and the result count go out as one discovery event per search.
 *
 * Run it as a script, after `npm run build` at the repository root:
 *
 *   METRICS_SERVICE_URL=http://127.0.0.1:8890 METRICS_API_KEY=<key> \
 *     node dist/clients/typescript/examples/registry-search.js
 *
 * It runs two searches on a stand-in backend, drains the client and prints its
 * counters; it exits 1 if the two events were not sent.
 */
import { fileURLToPath } from "node:url";
import { createMetricsClient, type MetricsClient } from "../src/index.js";

/** What the registry's search does; `embed` and `nearest` stand for the model and the FAISS index. */
export interface SearchBackend {
  embed(text: string): Promise<number[]>;
  nearest(vector: number[], topN: number): Promise<string[]>;
}

/** Wraps the search so that each call emits a discovery event. */
export function createMeasuredSearch(backend: SearchBackend, metrics: MetricsClient) {
  return async function search(query: string, topN = 10): Promise<string[]> {
    const started = performance.now();
    const vector = await backend.embed(query);
    const embedded = performance.now();
    const tools = await backend.nearest(vector, topN);
    const done = performance.now();
    metrics.discovery({
      query: query.slice(0, 100),
      resultsCount: tools.length,
      topNTools: topN,
      embeddingTimeMs: embedded - started,
      faissSearchTimeMs: done - embedded,
      durationMs: done - started,
    });
    return tools;
  };
}

/** The client a registry would create once at start-up. */
export function createRegistryMetrics(): MetricsClient {
  return createMetricsClient({
    baseUrl: process.env.METRICS_SERVICE_URL ?? "http://metrics-service:8890",
    apiKey: process.env.METRICS_API_KEY ?? "",
    service: "registry",
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!process.env.METRICS_API_KEY) {
    console.error(
      "set METRICS_API_KEY (and METRICS_SERVICE_URL, default http://metrics-service:8890)",
    );
    process.exit(2);
  }
  const metrics = createRegistryMetrics();
  const tools = ["current_time", "weather", "list_files"];
  const search = createMeasuredSearch(
    {
      embed: async (text) => [text.length],
      nearest: async (_vector, topN) => tools.slice(0, topN),
    },
    metrics,
  );
  console.log(await search("what time is it", 2));
  console.log(await search("read a file", 5));
  await metrics.close();
  const stats = metrics.stats();
  console.log(stats);
  process.exitCode = stats.sent === 2 ? 0 : 1;
}
