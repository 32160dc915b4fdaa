"""A batching, retrying gRPC client of the MCP metrics service.

Emitters only append to a bounded buffer and return at once; one background
thread sends batches of up to 100 events with ``IngestService/Ingest``, retries
what may succeed later, and counts everything (see :meth:`MetricsClient.stats`).
"""

from __future__ import annotations

import atexit
import collections
import datetime
import logging
import os
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Mapping, Optional, Union
from urllib.parse import urlsplit

import grpc
from google.protobuf import timestamp_pb2

from . import _rpc_status
from .gen.mcp.metrics.v1 import events_pb2, ingest_pb2, ingest_pb2_grpc

logger = logging.getLogger("mcp_metrics_client")

FlowStep = events_pb2.FlowStep
"""Which protocol steps a latency is measured between (``FlowStep.FLOW_STEP_...``)."""

# The service's own rules (docs/legacy-contract.md §2), checked here so that a bad argument
# fails at start-up rather than as every batch rejected.
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9_-]{1,50}")
_INSTANCE_ID = re.compile(r"[a-zA-Z0-9_.-]{1,50}")
_SERVER_BATCH_LIMIT = 100


def new_batch_id(now: Optional[float] = None) -> str:
    """A new batch id: a UUIDv7 (RFC 9562), Unix milliseconds then random bits.

    Time-ordered, so the service's index of batch ids takes each new one at its
    right edge instead of at a random page.
    """
    millis = int((time.time() if now is None else now) * 1000)
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant 10
    return str(uuid.UUID(int=value))

_FLOW_STEPS = {
    "initialize_to_tools_list": events_pb2.FLOW_STEP_INITIALIZE_TO_TOOLS_LIST,
    "tools_list_to_tools_call": events_pb2.FLOW_STEP_TOOLS_LIST_TO_TOOLS_CALL,
    "initialize_to_tools_call": events_pb2.FLOW_STEP_INITIALIZE_TO_TOOLS_CALL,
}
# The OTLP exporter specification's retryable codes (CANCELLED only ever comes
# from this client's own close; RESOURCE_EXHAUSTED is decided apart).
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}
_KEY_PROBLEMS = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
_COMMON_FIELDS = frozenset({"timestamp", "value", "duration_ms", "dimensions", "metadata"})

#: The emitter of each kind of the event catalog (``Event.kind`` in events.proto),
#: by the kind's legacy name; tests/test_catalog.py checks that every kind has
#: one and that it takes every typed field of its kind.
EMITTERS: Dict[str, str] = {
    "auth_request": "auth",
    "tool_discovery": "discovery",
    "tool_execution": "tool_execution",
    "registry_operation": "registry_operation",
    "health_check": "health_check",
    "protocol_latency": "protocol_latency",
    "custom": "custom",
}

Timestamp = Union[datetime.datetime, float, int, None]


@dataclass(frozen=True)
class MetricsClientStats:
    """What happened to the events emitted so far.

    At any moment ``emitted == sent + dropped + rejected + unauthenticated +
    failed + buffered + in_flight``.
    """

    emitted: int
    """Events passed to an emitter."""
    sent: int
    """Events the service acknowledged (committed to its storage)."""
    dropped: int
    """Events dropped because the buffer was full (oldest first), or emitted after close() or while disabled."""
    rejected: int
    """Events the service refused as invalid (INVALID_ARGUMENT); never retried."""
    unauthenticated: int
    """Events refused for the key (UNAUTHENTICATED, PERMISSION_DENIED); never retried."""
    failed: int
    """Events given up after other errors, after retrying too long, or at close()'s deadline."""
    retries: int
    """Requests sent again after a retryable error."""
    buffered: int
    """Events waiting in the buffer."""
    in_flight: int
    """Events in the request being sent."""


class _Buffered:
    __slots__ = ("seq", "kind", "typed", "common", "at")

    def __init__(self, seq, kind, typed, common, at):
        self.seq = seq
        self.kind = kind
        self.typed = typed
        self.common = common
        self.at = at


class MetricsClient:
    """Sends typed events to the metrics service in the background.

    The first five parameters are those of the Python service's own
    ``metrics_client.MetricsClient``. With no API key the client is disabled
    (one warning; every emit returns False).
    """

    def __init__(
        self,
        metrics_url: Optional[str] = None,
        api_key: Optional[str] = None,
        service_name: str = "unknown",
        service_version: str = "1.0.0",
        instance_id: Optional[str] = None,
        *,
        timeout: float = 5.0,
        max_buffered_events: int = 10_000,
        max_batch_events: int = 100,
        flush_interval: float = 1.0,
        initial_backoff: float = 0.2,
        max_backoff: float = 30.0,
        max_retry_elapsed: float = 300.0,
        enabled: bool = True,
        channel_credentials: Optional[grpc.ChannelCredentials] = None,
    ) -> None:
        url = metrics_url or os.environ.get("METRICS_SERVICE_URL") or "http://localhost:8890"
        key = api_key if api_key is not None else os.environ.get("METRICS_API_KEY", "")
        if not _SERVICE_NAME.fullmatch(service_name):
            raise ValueError(f"service_name must be 1 to 50 characters of [a-zA-Z0-9_-], got {service_name!r}")
        pid = str(os.getpid())
        instance_id = instance_id or f"{service_name[:49 - len(pid)]}-{pid}"
        if not _INSTANCE_ID.fullmatch(instance_id):
            raise ValueError(f"instance_id must be 1 to 50 characters of [a-zA-Z0-9_.-], got {instance_id!r}")
        if len(service_version) > 20:
            raise ValueError(f"service_version must be at most 20 characters, got {len(service_version)}")
        if not 1 <= max_batch_events <= _SERVER_BATCH_LIMIT:
            raise ValueError(f"max_batch_events must be from 1 to 100, got {max_batch_events}")
        if max_buffered_events < max_batch_events:  # a full batch could never form
            raise ValueError(f"max_buffered_events must be at least max_batch_events, got {max_buffered_events}")
        self.service_name = service_name
        self._header = {
            "service": service_name,
            "version": service_version,
            "instance_id": instance_id,
        }
        self._metadata = (("x-api-key", key),)
        self._timeout = timeout
        self._batch = max_batch_events
        self._interval = flush_interval
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._max_retry_elapsed = max_retry_elapsed
        self.enabled = enabled and bool(key)
        if enabled and not key:
            logger.warning("metrics client has no API key: metrics are not sent")

        self._buffer: Deque[_Buffered] = collections.deque(maxlen=max_buffered_events)
        self._cond = threading.Condition()
        self._abort = threading.Event()
        self._counts = dict(sent=0, dropped=0, rejected=0, unauthenticated=0, failed=0, retries=0)
        self._emitted = 0
        self._last_seq = 0
        self._partial_through = 0
        self._in_flight_min_seq: Optional[int] = None
        self._in_flight = 0
        self._closing = False
        self._closed = threading.Event()
        self._drained = False
        self._warned: set = set()

        self._channel = _open_channel(url, channel_credentials)
        self._stub = ingest_pb2_grpc.IngestServiceStub(self._channel)
        self._thread = threading.Thread(target=self._run, name="mcp-metrics-sender", daemon=True)
        if self.enabled:
            self._thread.start()
            # The sender is a daemon thread: without this, whatever is still
            # buffered when the interpreter exits would be lost.
            atexit.register(self.close, 2.0)

    # ----------------------------------------------------------------- emitters

    def auth(self, success: Optional[bool] = None, method: Optional[str] = None, *,
             server: Optional[str] = None, user_hash: Optional[str] = None,
             error_code: Optional[str] = None, target_kind: Optional[str] = None,
             **common: Any) -> bool:
        """An authentication attempt (stored in ``auth_metrics``)."""
        return self._emit("auth_request", dict(success=success, method=method, server=server,
                                               user_hash=user_hash, error_code=error_code,
                                               target_kind=target_kind), common)

    def tool_execution(self, tool_name: Optional[str] = None, *, server_path: Optional[str] = None,
                       server_name: Optional[str] = None, success: Optional[bool] = None,
                       client_name: Optional[str] = None, client_version: Optional[str] = None,
                       method: Optional[str] = None, user_hash: Optional[str] = None,
                       error_code: Optional[str] = None, input_size_bytes: Optional[int] = None,
                       output_size_bytes: Optional[int] = None, **common: Any) -> bool:
        """An MCP method call (stored in ``tool_metrics``)."""
        return self._emit("tool_execution", dict(
            tool_name=tool_name, server_path=server_path, server_name=server_name, success=success,
            client_name=client_name, client_version=client_version, method=method,
            user_hash=user_hash, error_code=error_code, input_size_bytes=input_size_bytes,
            output_size_bytes=output_size_bytes), common)

    def discovery(self, query: Optional[str] = None, results_count: Optional[int] = None, *,
                  top_k_services: Optional[int] = None, top_n_tools: Optional[int] = None,
                  embedding_time_ms: Optional[float] = None,
                  faiss_search_time_ms: Optional[float] = None, **common: Any) -> bool:
        """A semantic tool search (stored in ``discovery_metrics``)."""
        return self._emit("tool_discovery", dict(
            query=query, results_count=results_count, top_k_services=top_k_services,
            top_n_tools=top_n_tools, embedding_time_ms=embedding_time_ms,
            faiss_search_time_ms=faiss_search_time_ms), common)

    def protocol_latency(self, latency_seconds: float, flow_step: Union[int, str], *,
                         server_name: Optional[str] = None, client_name: Optional[str] = None,
                         session_id: Optional[str] = None, **common: Any) -> bool:
        """The time between two protocol steps of a session, in seconds.

        ``flow_step`` is a :data:`FlowStep` value or its legacy name, e.g.
        ``"initialize_to_tools_list"``.
        """
        step = _FLOW_STEPS.get(flow_step, flow_step) if isinstance(flow_step, str) else flow_step
        common["value"] = latency_seconds
        return self._emit("protocol_latency", dict(flow_step=step, server_name=server_name,
                                                   client_name=client_name, session_id=session_id),
                          common)

    def registry_operation(self, operation: Optional[str] = None,
                           resource_type: Optional[str] = None, success: Optional[bool] = None, *,
                           resource_id: Optional[str] = None, user_id: Optional[str] = None,
                           error_code: Optional[str] = None, **common: Any) -> bool:
        """An operation on the registry."""
        return self._emit("registry_operation", dict(
            operation=operation, resource_type=resource_type, success=success,
            resource_id=resource_id, user_id=user_id, error_code=error_code), common)

    def health_check(self, endpoint: Optional[str] = None, status_code: Optional[int] = None,
                     healthy: Optional[bool] = None, **common: Any) -> bool:
        """A health probe of an endpoint."""
        return self._emit("health_check", dict(endpoint=endpoint, status_code=status_code,
                                               healthy=healthy), common)

    def custom(self, metric_name: str, value: float, **common: Any) -> bool:
        """Any other metric; ``value`` is the metric's value."""
        common["value"] = value
        return self._emit("custom", dict(metric_name=metric_name), common)

    # The Python service's client names, as coroutines, for code written against it.

    async def emit_auth_metric(self, success: bool, method: str, duration_ms: float,
                               server_name: Optional[str] = None, user_hash: Optional[str] = None,
                               error_code: Optional[str] = None) -> bool:
        """Same as :meth:`auth`; the Python service client's name and arguments."""
        return self.auth(success, method, server=server_name, user_hash=user_hash,
                         error_code=error_code, duration_ms=duration_ms)

    async def emit_tool_execution_metric(self, tool_name: str, server_path: str, server_name: str,
                                         success: bool, duration_ms: float,
                                         input_size_bytes: Optional[int] = None,
                                         output_size_bytes: Optional[int] = None,
                                         error_code: Optional[str] = None) -> bool:
        """Same as :meth:`tool_execution`; the Python service client's name and arguments."""
        return self.tool_execution(tool_name, server_path=server_path, server_name=server_name,
                                   success=success, input_size_bytes=input_size_bytes,
                                   output_size_bytes=output_size_bytes, error_code=error_code,
                                   duration_ms=duration_ms)

    async def emit_discovery_metric(self, query: str, results_count: int, duration_ms: float,
                                    top_k_services: Optional[int] = None,
                                    top_n_tools: Optional[int] = None,
                                    embedding_time_ms: Optional[float] = None,
                                    faiss_search_time_ms: Optional[float] = None) -> bool:
        """Same as :meth:`discovery` (query cut to 100 characters, as before)."""
        return self.discovery(query[:100], results_count, top_k_services=top_k_services,
                              top_n_tools=top_n_tools, embedding_time_ms=embedding_time_ms,
                              faiss_search_time_ms=faiss_search_time_ms, duration_ms=duration_ms)

    async def emit_registry_metric(self, operation: str, resource_type: str, success: bool,
                                   duration_ms: float, resource_id: Optional[str] = None,
                                   user_id: Optional[str] = None,
                                   error_code: Optional[str] = None) -> bool:
        """Same as :meth:`registry_operation`; the Python service client's name and arguments."""
        return self.registry_operation(operation, resource_type, success, resource_id=resource_id,
                                       user_id=user_id, error_code=error_code,
                                       duration_ms=duration_ms)

    async def emit_health_metric(self, endpoint: str, status_code: int, duration_ms: float,
                                 healthy: bool = True) -> bool:
        """Same as :meth:`health_check`; the Python service client's name and arguments."""
        return self.health_check(endpoint, status_code, healthy, duration_ms=duration_ms)

    async def emit_custom_metric(self, metric_name: str, value: float,
                                 duration_ms: Optional[float] = None,
                                 dimensions: Optional[Dict[str, Any]] = None,
                                 metadata: Optional[Dict[str, Any]] = None) -> bool:
        """Same as :meth:`custom`; the Python service client's name and arguments."""
        return self.custom(metric_name, value, duration_ms=duration_ms, dimensions=dimensions,
                           metadata=metadata)

    # The old client's *_sync wrappers raised outside an event loop (docs/legacy-contract.md W25): these
    # are plain calls that work anywhere.

    def emit_auth_metric_sync(self, *args: Any, **kwargs: Any) -> bool:
        """:meth:`emit_auth_metric` without an event loop."""
        return _run_now(self.emit_auth_metric(*args, **kwargs))

    def emit_tool_execution_metric_sync(self, *args: Any, **kwargs: Any) -> bool:
        """:meth:`emit_tool_execution_metric` without an event loop."""
        return _run_now(self.emit_tool_execution_metric(*args, **kwargs))

    def emit_discovery_metric_sync(self, *args: Any, **kwargs: Any) -> bool:
        """:meth:`emit_discovery_metric` without an event loop."""
        return _run_now(self.emit_discovery_metric(*args, **kwargs))

    def emit_registry_metric_sync(self, *args: Any, **kwargs: Any) -> bool:
        """:meth:`emit_registry_metric` without an event loop."""
        return _run_now(self.emit_registry_metric(*args, **kwargs))

    def emit_health_metric_sync(self, *args: Any, **kwargs: Any) -> bool:
        """:meth:`emit_health_metric` without an event loop."""
        return _run_now(self.emit_health_metric(*args, **kwargs))

    def emit_custom_metric_sync(self, *args: Any, **kwargs: Any) -> bool:
        """:meth:`emit_custom_metric` without an event loop."""
        return _run_now(self.emit_custom_metric(*args, **kwargs))

    # ----------------------------------------------------------------- control

    def flush(self, timeout: float = 5.0) -> bool:
        """Sends everything emitted so far, partial batches included.

        Returns True once all of it is settled (acknowledged, rejected or given
        up), False if ``timeout`` seconds passed first; retries go on afterwards.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            through = self._last_seq
            self._partial_through = max(self._partial_through, through)
            self._cond.notify_all()
            while not self._settled_through(through):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return self._settled_through(through)
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float = 5.0) -> bool:
        """Stops accepting events and drains the buffer within ``timeout`` seconds.

        What is left then is abandoned (counted in ``failed``) and the channel
        closed. Returns True when everything was drained. A second call waits
        for the first and returns its result.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            first = not self._closing
            self._closing = True
        if not first:
            self._closed.wait(timeout)
            return self._drained
        drained = self.flush(timeout) if self._thread.is_alive() else not self._buffer
        with self._cond:
            abandoned = len(self._buffer)
            self._buffer.clear()
            self._counts["failed"] += abandoned
            self._abort.set()
            self._cond.notify_all()
        if abandoned:
            self._warn_once("close", f"closed with {abandoned} events unsent")
        # Closing the channel cancels a request still in flight.
        self._channel.close()
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()) + 0.5)
        self._drained = drained
        self._closed.set()
        atexit.unregister(self.close)
        return drained

    def stats(self) -> MetricsClientStats:
        """Counters of what happened to the events; cheap to call."""
        with self._cond:
            return MetricsClientStats(emitted=self._emitted, buffered=len(self._buffer),
                                      in_flight=self._in_flight, **self._counts)

    def __enter__(self) -> "MetricsClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "MetricsClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- internals

    def _emit(self, kind: str, typed: Dict[str, Any], common: Dict[str, Any]) -> bool:
        if not common.keys() <= _COMMON_FIELDS:
            unknown = ", ".join(sorted(common.keys() - _COMMON_FIELDS))
            raise TypeError(f"unknown event field(s): {unknown}")
        at = common.pop("timestamp", None)
        if at is None:
            at = time.time()
        # Copies, so the caller may reuse its dicts until the batch is sent.
        for field in ("dimensions", "metadata"):
            if common.get(field):
                common[field] = dict(common[field])
        with self._cond:
            self._emitted += 1
            if self._closing or not self.enabled:
                self._counts["dropped"] += 1
                return False
            self._last_seq += 1
            buffer = self._buffer
            overflow = len(buffer) == buffer.maxlen
            buffer.append(_Buffered(self._last_seq, kind, typed, common, at))
            if overflow:
                self._counts["dropped"] += 1
                self._cond.notify_all()  # a flush() may have been waiting for the dropped one
            if len(buffer) >= self._batch:
                self._cond.notify_all()
        if overflow:
            self._warn_once("overflow", f"buffer full ({buffer.maxlen} events): dropping the oldest")
        return True

    def _settled_through(self, seq: int) -> bool:
        if self._buffer and self._buffer[0].seq <= seq:
            return False
        return self._in_flight_min_seq is None or self._in_flight_min_seq > seq

    def _run(self) -> None:
        next_tick = time.monotonic() + self._interval
        while True:
            with self._cond:
                while not self._abort.is_set():
                    head = self._buffer[0] if self._buffer else None
                    if head is not None and (len(self._buffer) >= self._batch
                                             or head.seq <= self._partial_through):
                        break
                    remaining = next_tick - time.monotonic()
                    if remaining <= 0:
                        # The interval tick: partial batches may go now.
                        self._partial_through = self._last_seq
                        next_tick = time.monotonic() + self._interval
                        continue
                    self._cond.wait(remaining)
                if self._abort.is_set():
                    return
                batch = [self._buffer.popleft()
                         for _ in range(min(self._batch, len(self._buffer)))]
                self._in_flight_min_seq = batch[0].seq
                self._in_flight = len(batch)
            try:
                self._send(batch)
            except Exception as error:  # a bug here must not kill the sender
                if not self._abort.is_set():
                    self._warn_once("bug", f"unexpected failure while sending: {error!r}")
                with self._cond:
                    self._settle("failed", self._in_flight)
            with self._cond:
                self._in_flight_min_seq = None
                self._cond.notify_all()

    def _send(self, batch: List[_Buffered]) -> None:
        """Sends one batch until acknowledged, refused for good or given up.

        Every count goes through :meth:`_settle`, which takes the events off
        ``in_flight`` under the same lock, so :meth:`stats` always balances.
        """
        events = []
        for entry in batch:
            try:
                events.append(_to_event(entry))
            except Exception as error:  # any value protobuf refuses
                self._settle_locked("rejected", 1)
                self._warn_once("encode", f"an event could not be encoded and was dropped: {error!r}")
        started = time.monotonic()
        attempt = 0
        # Sent with every retry of these events, so that a retry of a batch the
        # service committed (its answer lost to a timeout) is not stored twice.
        batch_id = new_batch_id()
        while events:
            request = ingest_pb2.IngestRequest(events=events, batch_id=batch_id, **self._header)
            try:
                # wait_for_ready: while the channel reconnects, the call waits
                # (within its deadline) instead of failing at once.
                response = self._stub.Ingest(request, timeout=self._timeout, metadata=self._metadata,
                                             wait_for_ready=True)
                self._settle_locked("sent", len(events), response.accepted)
                return
            except grpc.RpcError as error:
                if self._abort.is_set():
                    break
                code = error.code()
                trailers = error.trailing_metadata()
                attempt += 1
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    self._warn_once("invalid", f"the service rejected events as invalid: {error.details()}")
                    invalid = _rpc_status.invalid_event_indexes(trailers)
                    if not invalid or len(invalid) >= len(events):
                        self._settle_locked("rejected", len(events))
                        return
                    # Resend the valid rest: one bad event must not cost its neighbours.
                    self._settle_locked("rejected", len(invalid))
                    events = [e for i, e in enumerate(events) if i not in invalid]
                    batch_id = new_batch_id()  # another batch now
                    continue
                delay = self._retry_delay(code, trailers, attempt, error)
                if delay is None:
                    self._warn_once(f"code:{code}", f"the service refused a batch: {code.name}: {error.details()}")
                    self._settle_locked("unauthenticated" if code in _KEY_PROBLEMS else "failed", len(events))
                    return
                if time.monotonic() - started + delay > self._max_retry_elapsed:
                    self._warn_once("exhausted", f"gave up a batch after retrying: {code.name}")
                    break
                self._add("retries", 1)
                if self._abort.wait(delay):
                    break
        self._settle_locked("failed", len(events))

    def _settle(self, counter: str, events: int, amount: Optional[int] = None) -> None:
        """Counts ``events`` of the batch in flight under ``counter``; the caller holds the lock."""
        self._counts[counter] += events if amount is None else amount
        self._in_flight -= events

    def _settle_locked(self, counter: str, events: int, amount: Optional[int] = None) -> None:
        with self._cond:
            self._settle(counter, events, amount)

    def _retry_delay(self, code, trailers, attempt: int, error) -> Optional[float]:
        """Seconds to wait before resending, or None when the batch cannot succeed later."""
        server_delay = _rpc_status.retry_delay_seconds(trailers)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            # Only a rate limit says when to come back; an oversized message never would.
            retryable = server_delay is not None
        else:
            # A stream refused by HTTP/2 (after a GOAWAY) was never processed.
            retryable = code in _RETRYABLE or "REFUSED_STREAM" in (error.details() or "")
        if not retryable:
            return None
        # Full jitter, and never sooner than the server asked.
        jittered = random.random() * min(self._max_backoff, self._initial_backoff * 2 ** (attempt - 1))
        if server_delay is None:
            return jittered
        return max(server_delay * (1 + 0.1 * random.random()), jittered)

    def _add(self, counter: str, n: int) -> None:
        with self._cond:
            self._counts[counter] += n

    def _warn_once(self, key: str, message: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        logger.warning(message)


def _run_now(coroutine) -> bool:
    """Runs one of the enqueue-only coroutines above to completion: they never await."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("an emit coroutine awaited")  # cannot happen: they only enqueue


def _open_channel(url: str, credentials: Optional[grpc.ChannelCredentials]) -> grpc.Channel:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"metrics_url must be an http:// or https:// URL, got {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = f"{parts.hostname}:{port}"
    # gRPC's default reconnect backoff grows to 2 minutes: a metrics endpoint
    # that restarts should be found again within seconds.
    options = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
               ("grpc.max_reconnect_backoff_ms", 5_000)]
    if parts.scheme == "https" or credentials is not None:
        return grpc.secure_channel(target, credentials or grpc.ssl_channel_credentials(), options)
    return grpc.insecure_channel(target, options)


def _to_event(entry: _Buffered) -> events_pb2.Event:
    typed = {k: v for k, v in entry.typed.items() if v is not None}
    common = entry.common
    event = events_pb2.Event(**{entry.kind: typed})
    event.timestamp.CopyFrom(_timestamp(entry.at))
    for field in ("value", "duration_ms"):
        if common.get(field) is not None:
            setattr(event, field, float(common[field]))
    for field in ("dimensions", "metadata"):
        values = common.get(field)
        if values:
            getattr(event, field).update(_json_safe(values))
    return event


def _timestamp(at: Timestamp) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    if isinstance(at, datetime.datetime):
        if at.tzinfo is None:  # naive datetimes are UTC, as utcnow() makes them
            at = at.replace(tzinfo=datetime.timezone.utc)
        ts.FromDatetime(at.astimezone(datetime.timezone.utc).replace(tzinfo=None))
    else:
        ts.FromNanoseconds(int(float(at) * 1e9))
    return ts


def _json_safe(values: Mapping[str, Any]) -> Dict[str, Any]:
    """A Struct holds JSON values: anything else is sent as its text."""
    out: Dict[str, Any] = {}
    for key, value in values.items():
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif isinstance(value, Mapping):
            out[key] = _json_safe(value)
        elif isinstance(value, (list, tuple)):
            out[key] = [v if isinstance(v, (bool, int, float, str, type(None))) else str(v) for v in value]
        else:
            out[key] = str(value)
    return out


__all__ = ["FlowStep", "MetricsClient", "MetricsClientStats"]
