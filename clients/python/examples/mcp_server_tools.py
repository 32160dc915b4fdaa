"""An MCP server's JSON-RPC dispatch, measured: a tool-execution event per call,
and the protocol-flow latencies per session.

Run it as a script from the repository root::

    METRICS_SERVICE_URL=http://127.0.0.1:8890 METRICS_API_KEY=<key> PYTHONPATH=clients/python \
      /usr/bin/python3 clients/python/examples/mcp_server_tools.py

It plays one session (initialize, tools/list, tools/call) against a stand-in
dispatch, reporting as METRICS_SERVICE_NAME (default ``mcp-server``), drains
the client and prints its counters: three tool executions and three
protocol-flow latencies. It exits 1 if the six events were not sent.
"""

import os
import sys
import time
from datetime import datetime, timezone

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


def _main() -> int:
    if not os.environ.get("METRICS_API_KEY"):
        print("set METRICS_API_KEY (and METRICS_SERVICE_URL, default http://localhost:8890)",
              file=sys.stderr)
        return 2
    metrics = MetricsClient(service_name=os.environ.get("METRICS_SERVICE_NAME", "mcp-server"))

    def dispatch(request):
        if request["method"] == "tools/call":
            return {"content": [{"type": "text", "text": datetime.now(timezone.utc).isoformat()}]}
        return {}

    handle = measured_dispatch(metrics, "time", dispatch)
    client_info = {"name": "example-client", "version": "1.0.0"}
    handle("session-1", {"method": "initialize", "params": {"clientInfo": client_info}})
    handle("session-1", {"method": "tools/list"})
    print(handle("session-1", {"method": "tools/call", "params": {"name": "current_time"}}))
    metrics.close()
    stats = metrics.stats()
    print(stats)
    return 0 if stats.sent == 6 else 1


if __name__ == "__main__":
    sys.exit(_main())
