/**
 * An MCP server's JSON-RPC dispatch, measured: a tool-execution event per
 * method call, and the protocol-flow latencies (initialize → tools/list →
 * tools/call) per session from the flow tracker.
 */
import { createFlowTracker, type MetricsClient } from "../src/index.js";

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
