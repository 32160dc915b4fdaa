"""The protocol-flow tracker: latencies per session, bounded memory, stored by the service."""

import unittest

from mcp_metrics_client import FlowStep, MetricsClient, ProtocolFlowTracker

from .service import MetricsService


class RecordingClient:
    """Keeps the latencies it is given (the tracker is what is under test)."""

    def __init__(self):
        self.latencies = []

    def protocol_latency(self, seconds, step, **fields):
        self.latencies.append((seconds, step, fields))


class FlowTrackerTest(unittest.TestCase):
    def test_three_latencies_in_seconds_once_per_session(self):
        client, clock = RecordingClient(), [1.0]
        tracker = ProtocolFlowTracker(client, "time", clock=lambda: clock[0])
        tracker.record("s1", "initialize", client_name="claude-desktop")
        clock[0] += 0.25
        tracker.record("s1", "notifications/initialized")
        tracker.record("s1", "tools/list")
        clock[0] += 1.5
        tracker.record("s1", "tools/list")
        clock[0] += 0.5
        tracker.record("s1", "tools/call")
        tracker.record("s1", "tools/call")
        fields = {"server_name": "time", "client_name": "claude-desktop", "session_id": "s1"}
        self.assertEqual(client.latencies, [
            (0.25, FlowStep.FLOW_STEP_INITIALIZE_TO_TOOLS_LIST, fields),
            (2.0, FlowStep.FLOW_STEP_TOOLS_LIST_TO_TOOLS_CALL, fields),
            (2.25, FlowStep.FLOW_STEP_INITIALIZE_TO_TOOLS_CALL, fields),
        ])
        self.assertEqual(len(tracker), 0)

    def test_bounded_by_size_and_time_to_live(self):
        client, clock = RecordingClient(), [0.0]
        tracker = ProtocolFlowTracker(client, max_sessions=100, session_ttl=10,
                                      clock=lambda: clock[0])
        for i in range(1000):
            tracker.record(f"s{i}", "initialize")
        self.assertEqual(len(tracker), 100)
        tracker.record("s0", "tools/list")  # forgotten: starts afresh
        self.assertEqual(client.latencies, [])
        clock[0] = 20
        tracker.record("late", "initialize")
        self.assertEqual(len(tracker), 1)
        tracker.end("late")
        self.assertEqual(len(tracker), 0)

    def test_latencies_are_stored_by_the_real_service(self):
        service = MetricsService().start()
        self.addCleanup(service.close)
        client = MetricsClient(service.url, service.key, "test-service")
        tracker = ProtocolFlowTracker(client, "py-flow")
        tracker.record("sess-1", "initialize", client_name="cursor")
        tracker.record("sess-1", "tools/list")
        tracker.record("sess-1", "tools/call")
        self.assertTrue(client.close())
        rows = service.query(
            "SELECT json_extract(dimensions, '$.flow_step') AS step FROM metrics "
            "WHERE metric_type = 'protocol_latency' "
            "AND json_extract(dimensions, '$.server_name') = 'py-flow' "
            "AND json_extract(dimensions, '$.client_name') = 'cursor'")
        self.assertEqual(sorted(r["step"] for r in rows),
                         ["initialize_to_tools_call", "initialize_to_tools_list",
                          "tools_list_to_tools_call"])


if __name__ == "__main__":
    unittest.main()
