"""The README's examples, run against the real service with their own keys."""

import os
import threading
import unittest
import unittest.mock
import urllib.error
import urllib.request

import uvicorn

from examples.auth_server import create_auth_server
from examples.mcp_server_tools import measured_dispatch
from examples.registry_search import measured_search
from mcp_metrics_client import MetricsClient

from .service import MetricsService, free_port, wait_until


class ExamplesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.service = MetricsService(METRICS_API_KEY_AUTH_SERVER="py-auth-example-key",
                                     METRICS_API_KEY_REGISTRY="py-registry-example-key").start()

    @classmethod
    def tearDownClass(cls):
        cls.service.close()

    def count(self, sql: str) -> int:
        return self.service.query(f"SELECT count(*) AS n FROM {sql}")[0]["n"]

    def test_auth_server(self):
        env = {"METRICS_SERVICE_URL": self.service.url, "METRICS_API_KEY": "py-auth-example-key"}
        with unittest.mock.patch.dict(os.environ, env):
            app = create_auth_server(lambda token: "bob" if token == "good" else None)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
        server.install_signal_handlers = lambda: None
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        self.assertTrue(wait_until(lambda: server.started))
        for authorization in ("Bearer good", "Bearer bad"):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/validate",
                headers={"Authorization": authorization, "X-Original-URL": "/py-example-srv/mcp"})
            try:
                urllib.request.urlopen(request).close()
            except urllib.error.HTTPError as error:
                self.assertEqual(error.code, 401)
        server.should_exit = True  # the shutdown handler closes (drains) the client
        thread.join(10)
        self.assertEqual(self.count("auth_metrics WHERE service = 'auth-server' "
                                    "AND server = 'py-example-srv'"), 2)
        self.assertEqual(self.count("auth_metrics WHERE service = 'auth-server' "
                                    "AND success = 1 AND method = 'jwt'"), 1)

    def test_registry_search(self):
        metrics = MetricsClient(self.service.url, "py-registry-example-key", "registry")
        search = measured_search(metrics, lambda text: [len(text)],
                                 lambda vector, top_n: ["current_time", "weather"][:top_n])
        self.assertEqual(search("what time is it", 5), ["current_time", "weather"])
        self.assertTrue(metrics.close())
        [row] = self.service.query("SELECT results_count, top_n_tools FROM discovery_metrics "
                                   "WHERE service = 'registry'")
        self.assertEqual(row, {"results_count": 2, "top_n_tools": 5})

    def test_mcp_server_tool_calls(self):
        metrics = MetricsClient(self.service.url, self.service.key, "test-service")

        def dispatch(request):
            if (request.get("params") or {}).get("name") == "broken":
                raise RuntimeError("tool failed")
            return {}

        handle = measured_dispatch(metrics, "py-example-mcp", dispatch)
        handle("s1", {"method": "initialize", "params": {"clientInfo": {"name": "claude-desktop"}}})
        handle("s1", {"method": "tools/list"})
        handle("s1", {"method": "tools/call", "params": {"name": "current_time"}})
        with self.assertRaises(RuntimeError):
            handle("s1", {"method": "tools/call", "params": {"name": "broken"}})
        self.assertTrue(metrics.close())
        self.assertEqual(self.count("tool_metrics WHERE server_name = 'py-example-mcp'"), 4)
        self.assertEqual(self.count("tool_metrics WHERE server_name = 'py-example-mcp' "
                                    "AND tool_name = 'broken' AND success = 0"), 1)
        self.assertEqual(self.count("metrics WHERE metric_type = 'protocol_latency' AND "
                                    "json_extract(dimensions, '$.server_name') = 'py-example-mcp'"), 3)


if __name__ == "__main__":
    unittest.main()
