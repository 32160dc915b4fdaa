"""Every kind of the event catalog can be emitted, with every one of its typed fields."""

import inspect
import unittest

from mcp_metrics_client import client
from mcp_metrics_client.gen.mcp.metrics.v1 import events_pb2


class CatalogTest(unittest.TestCase):
    def test_every_kind_has_an_emitter_taking_every_typed_field(self):
        kinds = events_pb2.Event.DESCRIPTOR.oneofs_by_name["kind"].fields
        self.assertGreater(len(kinds), 0)
        for kind in kinds:
            name = client.EMITTERS.get(kind.name)
            self.assertIsNotNone(name, f"event kind {kind.name} has no emitter in EMITTERS")
            emitter = getattr(client.MetricsClient, name, None)
            self.assertTrue(callable(emitter), f"EMITTERS names {name} for {kind.name}, no such method")
            parameters = inspect.signature(emitter).parameters
            for field in kind.message_type.fields:
                # A protocol latency's flow step is its second positional argument.
                self.assertIn(field.name, parameters,
                              f"{name}() cannot send {kind.name}.{field.name}")

    def test_no_emitter_for_a_kind_the_schema_does_not_have(self):
        kinds = {k.name for k in events_pb2.Event.DESCRIPTOR.oneofs_by_name["kind"].fields}
        self.assertEqual(set(client.EMITTERS) - kinds, set())


if __name__ == "__main__":
    unittest.main()
