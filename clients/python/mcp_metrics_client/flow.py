"""Protocol-flow timing: initialize -> tools/list -> tools/call, per MCP session."""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Optional

from .gen.mcp.metrics.v1 import events_pb2

_METHODS = ("initialize", "tools/list", "tools/call")


class _Flow:
    __slots__ = ("started_at", "initialized_at", "listed_at", "client_name", "server_name")

    def __init__(self, started_at, client_name, server_name):
        self.started_at = started_at
        self.initialized_at = None
        self.listed_at = None
        self.client_name = client_name
        self.server_name = server_name


class ProtocolFlowTracker:
    """Emits the three flow-step latencies of each MCP session as soon as they are known.

    Call :meth:`record` with each JSON-RPC method as it arrives. The latencies
    (in seconds) are initialize -> first tools/list, first tools/list -> first
    tools/call, and initialize -> first tools/call. Memory is bounded: at most
    ``max_sessions`` sessions, each forgotten after ``session_ttl`` seconds.
    Thread-safe.
    """

    def __init__(self, client, server_name: Optional[str] = None, *, max_sessions: int = 10_000,
                 session_ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._server_name = server_name
        self._max_sessions = max_sessions
        self._ttl = session_ttl
        self._clock = clock
        # Ordered by start: the oldest sessions are always at the front.
        self._sessions: "collections.OrderedDict[str, _Flow]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def record(self, session_id: str, method: str, client_name: Optional[str] = None,
               server_name: Optional[str] = None) -> None:
        """Records that ``method`` arrived on ``session_id`` now; other methods are ignored."""
        if method not in _METHODS:
            return
        at = self._clock()
        latencies = []
        with self._lock:
            if method == "initialize":
                self._start(session_id, at, client_name, server_name).initialized_at = at
                return
            # A session first seen at tools/list still yields tools/list -> tools/call.
            flow = self._sessions.get(session_id)
            # An expired session is not measured against: its latency would exceed the TTL.
            if flow is None or at - flow.started_at > self._ttl:
                flow = self._start(session_id, at, client_name, server_name)
            if client_name is not None:
                flow.client_name = client_name
            if method == "tools/list":
                if flow.listed_at is not None:
                    return
                flow.listed_at = at
                if flow.initialized_at is not None:
                    latencies.append((events_pb2.FLOW_STEP_INITIALIZE_TO_TOOLS_LIST, at - flow.initialized_at))
            else:
                # The first tools/call completes the flow.
                del self._sessions[session_id]
                if flow.listed_at is not None:
                    latencies.append((events_pb2.FLOW_STEP_TOOLS_LIST_TO_TOOLS_CALL, at - flow.listed_at))
                if flow.initialized_at is not None:
                    latencies.append((events_pb2.FLOW_STEP_INITIALIZE_TO_TOOLS_CALL, at - flow.initialized_at))
        for step, seconds in latencies:
            self._client.protocol_latency(
                seconds, step, server_name=flow.server_name or self._server_name,
                client_name=flow.client_name, session_id=session_id)

    def end(self, session_id: str) -> None:
        """Forgets a session (e.g. when its transport closes)."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def _start(self, session_id, at, client_name, server_name) -> _Flow:
        flow = _Flow(at, client_name, server_name)
        self._sessions.pop(session_id, None)
        self._sessions[session_id] = flow
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if len(self._sessions) <= self._max_sessions and at - oldest.started_at <= self._ttl:
                break
            self._sessions.popitem(last=False)
        return flow
