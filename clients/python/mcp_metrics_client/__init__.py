"""Client of the MCP metrics service: typed emitters, background batching and
retries over gRPC, protocol-flow timing, and ASGI auth middleware."""

from .client import FlowStep, MetricsClient, MetricsClientStats, new_batch_id
from .flow import ProtocolFlowTracker
from .middleware import AuthMetricsMiddleware, add_auth_metrics_middleware, hash_user

__all__ = [
    "AuthMetricsMiddleware",
    "FlowStep",
    "MetricsClient",
    "MetricsClientStats",
    "ProtocolFlowTracker",
    "add_auth_metrics_middleware",
    "hash_user",
    "new_batch_id",
]
