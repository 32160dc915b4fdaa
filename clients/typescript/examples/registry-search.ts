/**
 * A registry's semantic tool search, measured: the embedding and vector-search
 * times and the result count go out as one discovery event per search.
 */
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
