import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createAuthServer } from "../../clients/typescript/examples/auth-server.js";
import { measureDispatch } from "../../clients/typescript/examples/mcp-server-tools.js";
import {
  createMeasuredSearch,
  createRegistryMetrics,
} from "../../clients/typescript/examples/registry-search.js";
import { createMetricsClient } from "../../clients/typescript/src/index.js";
import { countIn, jsonField, startTestService, type TestService } from "../support/service.js";

/** The examples the client's README shows, run against the real service with their own keys. */
describe("the TypeScript client's README examples", () => {
  let svc: TestService;
  const keys = { auth: "key-auth-server-example", registry: "key-registry-example" };
  beforeAll(async () => {
    svc = await startTestService({
      METRICS_API_KEY_AUTH_SERVER: keys.auth,
      METRICS_API_KEY_REGISTRY: keys.registry,
    });
    vi.stubEnv("METRICS_SERVICE_URL", svc.url);
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await svc.close();
  });

  it("should measure an auth server's /validate", async () => {
    vi.stubEnv("METRICS_API_KEY", keys.auth);
    const { server, metrics } = createAuthServer((token) => (token === "good" ? "bob" : undefined));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/validate`;
    const original = { "x-original-url": "/example-srv/mcp" };
    expect(
      (await fetch(url, { headers: { ...original, authorization: "Bearer good" } })).status,
    ).toBe(200);
    expect((await fetch(url, { headers: original })).status).toBe(401);
    server.close();
    expect(await metrics.close()).toBe(true);
    expect(
      await countIn(svc.sql, "auth_metrics", "service = 'auth-server' AND server = 'example-srv'"),
    ).toBe(2);
    expect(
      await countIn(
        svc.sql,
        "auth_metrics",
        "service = 'auth-server' AND success = TRUE AND method = 'jwt'",
      ),
    ).toBe(1);
  });

  it("should measure a registry's search", async () => {
    vi.stubEnv("METRICS_API_KEY", keys.registry);
    const metrics = createRegistryMetrics();
    const search = createMeasuredSearch(
      {
        embed: async (text) => [text.length],
        nearest: async (_vector, topN) => ["current_time", "weather"].slice(0, topN),
      },
      metrics,
    );
    expect(await search("what time is it", 5)).toEqual(["current_time", "weather"]);
    expect(await metrics.close()).toBe(true);
    const row = await svc.sql.get<{
      results_count: number;
      top_n_tools: number;
      embedding_time_ms: number;
    }>(
      "SELECT results_count, top_n_tools, embedding_time_ms FROM discovery_metrics WHERE service = 'registry'",
    );
    expect(row).toMatchObject({ results_count: 2, top_n_tools: 5 });
    expect(row?.embedding_time_ms).toBeGreaterThanOrEqual(0);
  });

  it("should measure an MCP server's tool calls and protocol flow", async () => {
    const metrics = createMetricsClient({
      baseUrl: svc.url,
      apiKey: svc.key,
      service: "test-service",
    });
    const handle = measureDispatch(metrics, "example-mcp", async (request) => {
      if (request.params?.name === "broken") throw new Error("tool failed");
      return {};
    });
    const init = { method: "initialize", params: { clientInfo: { name: "claude-desktop" } } };
    await handle("sess-1", init);
    await handle("sess-1", { method: "tools/list" });
    await handle("sess-1", { method: "tools/call", params: { name: "current_time" } });
    await expect(
      handle("sess-1", { method: "tools/call", params: { name: "broken" } }),
    ).rejects.toThrow();
    expect(await metrics.close()).toBe(true);
    expect(await countIn(svc.sql, "tool_metrics", "server_name = 'example-mcp'")).toBe(4);
    expect(
      await countIn(
        svc.sql,
        "tool_metrics",
        "server_name = 'example-mcp' AND tool_name = 'broken' AND success = FALSE",
      ),
    ).toBe(1);
    expect(
      await countIn(
        svc.sql,
        "metrics",
        `metric_type = 'protocol_latency' AND ${jsonField("dimensions", "server_name")} = 'example-mcp'`,
      ),
    ).toBe(3);
  });
});
