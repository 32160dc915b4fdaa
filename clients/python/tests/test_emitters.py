"""Every emitter's event lands in the right tables, over gRPC, against the real service."""

import asyncio
import datetime
import json
import logging
import unittest
import uuid

from mcp_metrics_client import FlowStep, MetricsClient

from .service import MetricsService, balanced


class EmittersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.service = MetricsService(**{"METRICS_API_KEY_" + "L" * 50: "py-long-name-key"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.service.close()

    def client(self, **options):
        options.setdefault("api_key", self.service.key)
        client = MetricsClient(self.service.url, service_name="test-service",
                               service_version="3.0.1", **options)
        self.addCleanup(client.close, 1.0)
        return client

    def test_every_emitter_fills_its_typed_columns(self):
        client = self.client(instance_id="py-all")
        at = datetime.datetime(2026, 11, 25, 10, 0, 0, 123000, tzinfo=datetime.timezone.utc)
        self.assertTrue(client.auth(False, "oauth", server="py-srv", user_hash="u42",
                                    error_code="expired", duration_ms=12.5, timestamp=at))
        client.tool_execution("current_time", server_path="/currenttime", server_name="py-srv",
                              success=True, client_name="claude-desktop", client_version="0.9.1",
                              method="tools/call", user_hash="u42", error_code="none",
                              input_size_bytes=321, output_size_bytes=4321, duration_ms=45)
        client.discovery("py-query", 7, top_k_services=3, top_n_tools=10, embedding_time_ms=4.5,
                         faiss_search_time_ms=1.25, duration_ms=9)
        client.protocol_latency(0.25, "initialize_to_tools_list", server_name="py-srv",
                                client_name="claude-desktop", session_id="s-1")
        client.registry_operation("create", "server", True, resource_id="py-srv", user_id="alice",
                                  error_code="none", duration_ms=3)
        client.health_check("/py-srv", 503, False, duration_ms=1)
        client.custom("py-metric", 42, dimensions={"region": "eu"}, metadata={"n": 1})

        self.assertTrue(client.flush())
        stats = client.stats()
        self.assertEqual((stats.emitted, stats.sent, stats.failed, stats.rejected), (7, 7, 0, 0))
        self.assertTrue(balanced(stats))

        [auth] = self.service.query("SELECT * FROM auth_metrics WHERE server = 'py-srv'")
        self.assertEqual(
            {k: auth[k] for k in ("service", "duration_ms", "success", "method", "user_hash",
                                   "error_code", "timestamp")},
            {"service": "test-service", "duration_ms": 12.5, "success": 0, "method": "oauth",
             "user_hash": "u42", "error_code": "expired", "timestamp": "2026-11-25T10:00:00.123000Z"})
        [tool] = self.service.query("SELECT * FROM tool_metrics WHERE server_name = 'py-srv'")
        self.assertEqual(
            {k: tool[k] for k in ("tool_name", "server_path", "success", "client_name",
                                   "client_version", "method", "user_hash", "error_code",
                                   "input_size_bytes", "output_size_bytes", "duration_ms")},
            {"tool_name": "current_time", "server_path": "/currenttime", "success": 1,
             "client_name": "claude-desktop", "client_version": "0.9.1", "method": "tools/call",
             "user_hash": "u42", "error_code": "none", "input_size_bytes": 321,
             "output_size_bytes": 4321, "duration_ms": 45})
        [discovery] = self.service.query("SELECT * FROM discovery_metrics WHERE query = 'py-query'")
        self.assertEqual(
            {k: discovery[k] for k in ("results_count", "top_k_services", "top_n_tools",
                                        "embedding_time_ms", "faiss_search_time_ms", "duration_ms")},
            {"results_count": 7, "top_k_services": 3, "top_n_tools": 10, "embedding_time_ms": 4.5,
             "faiss_search_time_ms": 1.25, "duration_ms": 9})
        rows = self.service.query(
            "SELECT metric_type, value, duration_ms, dimensions, metadata, service_version FROM metrics "
            "WHERE instance_id = 'py-all' ORDER BY id")
        self.assertEqual([r["metric_type"] for r in rows],
                         ["auth_request", "tool_execution", "tool_discovery", "protocol_latency",
                          "registry_operation", "health_check", "custom"])
        self.assertTrue(all(r["service_version"] == "3.0.1" for r in rows))
        dims = [json.loads(r["dimensions"]) for r in rows]
        self.assertEqual(rows[3]["value"], 0.25)
        self.assertEqual(dims[3], {"flow_step": "initialize_to_tools_list", "server_name": "py-srv",
                                   "client_name": "claude-desktop", "session_id": "s-1"})
        self.assertEqual(dims[4], {"operation": "create", "resource_type": "server",
                                   "success": True, "resource_id": "py-srv", "user_id": "alice"})
        self.assertEqual(dims[5], {"endpoint": "/py-srv", "status_code": 503, "healthy": False})
        self.assertEqual(rows[6]["value"], 42)
        self.assertEqual(dims[6], {"metric_name": "py-metric", "region": "eu"})
        self.assertEqual(json.loads(rows[6]["metadata"]), {"n": 1})
        self.assertEqual([r["duration_ms"] for r in rows], [12.5, 45, 9, None, 3, 1, None])

    def test_flow_step_enum_and_batches_under_the_server_limit(self):
        client = self.client(instance_id="py-batches", flush_interval=0.05)
        client.protocol_latency(1.5, FlowStep.FLOW_STEP_INITIALIZE_TO_TOOLS_CALL)
        for i in range(249):
            client.custom("batched", i)
        self.assertTrue(client.flush())
        sizes = [r["n"] for r in self.service.query(
            "SELECT count(*) AS n FROM metrics WHERE instance_id = 'py-batches' "
            "GROUP BY request_id ORDER BY n DESC")]
        self.assertEqual(sizes, [100, 100, 50])
        # Each batch carried a batch id of its own (a UUIDv7), recorded with its rows.
        batches = self.service.query(
            "SELECT batch_id, events FROM ingest_batches WHERE request_id IN "
            "(SELECT request_id FROM metrics WHERE instance_id = 'py-batches') ORDER BY events DESC")
        self.assertEqual([b["events"] for b in batches], [100, 100, 50])
        for b in batches:
            self.assertEqual(uuid.UUID(b["batch_id"]).version, 7)

    def test_valid_rest_of_a_partly_invalid_batch_is_stored(self):
        client = self.client(instance_id="py-invalid")
        with self.assertLogs("mcp_metrics_client", logging.WARNING) as logs:
            for i in range(10):
                client.custom("mixed", i, duration_ms=-5 if i % 4 == 3 else 1)
            self.assertTrue(client.flush())
        stats = client.stats()
        self.assertEqual((stats.sent, stats.rejected, stats.retries), (8, 2, 0))
        self.assertEqual(len(logs.output), 1)
        self.assertIn("invalid", logs.output[0])
        [row] = self.service.query("SELECT count(*) AS n FROM metrics WHERE instance_id = 'py-invalid'")
        self.assertEqual(row["n"], 8)

    def test_an_event_protobuf_refuses_is_dropped_and_the_others_sent(self):
        client = self.client(instance_id="py-encode")
        with self.assertLogs("mcp_metrics_client", logging.WARNING) as logs:
            client.custom("fine", 1)
            client.custom("bad-time", 2, timestamp=float("inf"))
            client.discovery("bad-count", "many")
            client.custom("fine", 3)
            self.assertTrue(client.flush())
        stats = client.stats()
        self.assertEqual((stats.sent, stats.rejected, stats.failed), (2, 2, 0))
        self.assertTrue(balanced(stats))
        self.assertEqual(len(logs.output), 1)
        [row] = self.service.query("SELECT count(*) AS n FROM metrics WHERE instance_id = 'py-encode'")
        self.assertEqual(row["n"], 2)

    def test_refused_key_is_not_retried_and_logged_once(self):
        client = self.client(api_key="wrong-key", max_batch_events=5)
        with self.assertLogs("mcp_metrics_client", logging.WARNING) as logs:
            for i in range(20):
                client.custom("refused", i)
            self.assertTrue(client.flush())
        stats = client.stats()
        self.assertEqual((stats.unauthenticated, stats.retries, stats.sent), (20, 0, 0))
        self.assertEqual(len(logs.output), 1)
        self.assertIn("Invalid API key", logs.output[0])

    def test_legacy_coroutines_enqueue(self):
        client = self.client(instance_id="py-legacy")

        async def emit():
            return [await client.emit_auth_metric(True, "jwt", 5.0, server_name="legacy-srv"),
                    await client.emit_tool_execution_metric("t", "/p", "legacy-srv", True, 7.0),
                    await client.emit_discovery_metric("x" * 150, 3, 8.0),
                    await client.emit_registry_metric("read", "server", True, 2.0),
                    await client.emit_health_metric("/health", 200, 1.0),
                    await client.emit_custom_metric("legacy-custom", 7.0, dimensions={"a": 1})]

        self.assertEqual(asyncio.run(emit()), [True] * 6)
        # The *_sync wrappers work outside any event loop (the old ones raised, W25).
        self.assertTrue(client.emit_auth_metric_sync(False, "oauth", 3.0, server_name="legacy-sync"))
        self.assertTrue(client.emit_custom_metric_sync("legacy-sync-custom", 1.0))
        self.assertTrue(client.flush())
        [row] = self.service.query("SELECT query FROM discovery_metrics WHERE query LIKE 'xxx%'")
        self.assertEqual(len(row["query"]), 100)
        types = [r["metric_type"] for r in self.service.query(
            "SELECT metric_type FROM metrics WHERE instance_id = 'py-legacy' ORDER BY id")]
        self.assertEqual(types, ["auth_request", "tool_execution", "tool_discovery",
                                 "registry_operation", "health_check", "custom", "auth_request",
                                 "custom"])

    def test_default_instance_id_fits_a_long_service_name(self):
        client = MetricsClient(self.service.url, "py-long-name-key", service_name="l" * 50)
        self.assertTrue(client.auth(True, "jwt"))
        self.assertTrue(client.close())
        self.assertEqual(client.stats().sent, 1)
        [row] = self.service.query("SELECT instance_id FROM metrics WHERE service = ?", "l" * 50)
        self.assertLessEqual(len(row["instance_id"]), 50)

    def test_no_key_disables_the_client(self):
        with self.assertLogs("mcp_metrics_client", logging.WARNING):
            client = self.client(api_key="")
        self.assertFalse(client.auth(True, "jwt"))
        self.assertTrue(client.close())

    def test_bad_arguments_are_refused_at_once(self):
        with self.assertRaisesRegex(ValueError, "service_name"):
            MetricsClient(self.service.url, "k", service_name="bad name")
        with self.assertRaisesRegex(ValueError, "max_batch_events"):
            MetricsClient(self.service.url, "k", service_name="x", max_batch_events=101)
        with self.assertRaisesRegex(ValueError, "instance_id"):
            MetricsClient(self.service.url, "k", service_name="x", instance_id="a b")
        with self.assertRaisesRegex(ValueError, "service_version"):
            MetricsClient(self.service.url, "k", service_name="x", service_version="1" * 21)
        client = self.client()
        with self.assertRaisesRegex(TypeError, "durationMs"):
            client.custom("typo", 1, durationMs=3)


if __name__ == "__main__":
    unittest.main()
