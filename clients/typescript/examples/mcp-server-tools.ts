/**
 * An MCP server's JSON-RPC dispatch, measured: a tool-execution event per
 * method call, and the protocol-flow latencies (initialize → tools/list →
 * tools/call) per session from the flow tracker.
 *
 * Run it as a script, after `npm run build` at the repository root:
 *
 *   METRICS_SERVICE_URL=http://127.0.0.1:8890 METRICS_API_KEY=<key> \
 *     node dist/clients/typescript/examples/mcp-server-tools.js
 *
 * It plays one session (initialize, tools/list, tools/call) against a
 * stand-in dispatch, reporting as METRICS_SERVICE_NAME (default "mcp-server"),
 * drains the client and prints its counters: three tool executions and three
 * protocol-flow latencies. It exits 1 if the six events were not sent.
 */
import { fileURLToPath } from "node:url";
import { createFlowTracker, createMetricsClient, type MetricsClient } from "../src/index.js";

/** One JSON-RPC request as an MCP server receives it. */
export interface JsonRpcRequest {
  method: string;
  params?: { name?: string; clientInfo?: { name?: string; version?: string } };
}

/** Wraps the server's dispatch function so that every call is measured. */
export function measureDispatch(
  metrics: MetricsClient,
  serverName: string,
  dispatch: (request: JsonRpcRequest) => Promise<unknown>,
) {
  const flows = createFlowTracker(metrics, { serverName });
  return async (sessionId: string, request: JsonRpcRequest): Promise<unknown> => {
    const clientName = request.params?.clientInfo?.name;
    flows.record(sessionId, request.method, { clientName });
    const started = performance.now();
    let success = false;
    try {
      const result = await dispatch(request);
      success = true;
      return result;
    } finally {
      metrics.toolExecution({
        method: request.method,
        serverName,
        success,
        durationMs: performance.now() - started,
        toolName: request.params?.name,
        clientName,
      });
    }
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!process.env.METRICS_API_KEY) {
    console.error(
      "set METRICS_API_KEY (and METRICS_SERVICE_URL, default http://metrics-service:8890)",
    );
    process.exit(2);
  }
  const metrics = createMetricsClient({
    baseUrl: process.env.METRICS_SERVICE_URL ?? "http://metrics-service:8890",
    apiKey: process.env.METRICS_API_KEY,
    service: process.env.METRICS_SERVICE_NAME ?? "mcp-server",
  });
  const handle = measureDispatch(metrics, "time", async (request) =>
    request.method === "tools/call"
      ? { content: [{ type: "text", text: new Date().toISOString() }] }
      : {},
  );
  const clientInfo = { name: "example-client", version: "1.0.0" };
  await handle("session-1", { method: "initialize", params: { clientInfo } });
  await handle("session-1", { method: "tools/list" });
  console.log(
    await handle("session-1", { method: "tools/call", params: { name: "current_time" } }),
  );
  await metrics.close();
  const stats = metrics.stats();
  console.log(stats);
  process.exitCode = stats.sent === 6 ? 0 : 1;
}
