"""An MCP server's JSON-RPC dispatch, measured: a tool-execution event per call,
and the protocol-flow latencies per session."""

import time

from mcp_metrics_client import MetricsClient, ProtocolFlowTracker


def measured_dispatch(metrics: MetricsClient, server_name: str, dispatch):
    """Wraps ``dispatch(request) -> result`` of an MCP server."""
    flows = ProtocolFlowTracker(metrics, server_name)

    def handle(session_id: str, request: dict):
        params = request.get("params") or {}
        client_name = (params.get("clientInfo") or {}).get("name")
        flows.record(session_id, request["method"], client_name=client_name)
        started = time.perf_counter()
        success = False
        try:
            result = dispatch(request)
            success = True
            return result
        finally:
            metrics.tool_execution(params.get("name"), method=request["method"],
                                   server_name=server_name, client_name=client_name,
                                   success=success,
                                   duration_ms=(time.perf_counter() - started) * 1000)

    return handle
