"""Reads the rich error details the metrics service sends with a failed call.

gRPC carries them in the ``grpc-status-details-bin`` trailer as a
``google.rpc.Status``. The classes that decode it live in googleapis-common-protos,
which is not one of this client's dependencies, and registering those
well-known file names in protobuf's default pool could clash with a copy the
application imports. So the three wire-compatible messages needed here are
declared in a private descriptor pool and parsed by protobuf itself.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional, Set, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "mcp_metrics_client.rpc"

_MESSAGES = {
    # google.rpc.Status, with google.protobuf.Any spelled out as AnyValue.
    "Status": [("code", 1, _F.TYPE_INT32, None, False),
               ("message", 2, _F.TYPE_STRING, None, False),
               ("details", 3, _F.TYPE_MESSAGE, "AnyValue", True)],
    "AnyValue": [("type_url", 1, _F.TYPE_STRING, None, False),
                 ("value", 2, _F.TYPE_BYTES, None, False)],
    "BadRequest": [("field_violations", 1, _F.TYPE_MESSAGE, "FieldViolation", True)],
    "FieldViolation": [("field", 1, _F.TYPE_STRING, None, False),
                       ("description", 2, _F.TYPE_STRING, None, False)],
    "RetryInfo": [("retry_delay", 1, _F.TYPE_MESSAGE, "DurationValue", False)],
    "DurationValue": [("seconds", 1, _F.TYPE_INT64, None, False),
                      ("nanos", 2, _F.TYPE_INT32, None, False)],
}


def _build_classes():
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="mcp_metrics_client/rpc_status.proto", package=_PACKAGE, syntax="proto3"
    )
    for name, fields in _MESSAGES.items():
        message = file_proto.message_type.add(name=name)
        for field_name, number, field_type, type_name, repeated in fields:
            field = message.field.add(
                name=field_name,
                number=number,
                type=field_type,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    get_class = getattr(message_factory, "GetMessageClass", None)
    if get_class is None:  # protobuf < 4.22
        factory = message_factory.MessageFactory(pool)
        get_class = factory.GetPrototype
    return {
        name: get_class(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")) for name in _MESSAGES
    }


_CLASSES = _build_classes()
_EVENT_PATH = re.compile(r"^events\[(\d+)\]")


def _details(trailing_metadata: Optional[Iterable[Tuple[str, object]]]):
    for key, value in trailing_metadata or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = _CLASSES["Status"]()
            try:
                status.ParseFromString(value)
            except Exception:  # a malformed trailer is no reason to fail the caller
                return
            yield from status.details


def retry_delay_seconds(trailing_metadata) -> Optional[float]:
    """The server's retry delay: ``google.rpc.RetryInfo``, else the ``retry-after`` trailer."""
    for detail in _details(trailing_metadata):
        if detail.type_url.endswith("/google.rpc.RetryInfo"):
            info = _CLASSES["RetryInfo"]()
            info.ParseFromString(detail.value)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    for key, value in trailing_metadata or ():
        if key == "retry-after":
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                return None
            return seconds if seconds >= 0 else None
    return None


def invalid_event_indexes(trailing_metadata) -> Set[int]:
    """Which events of a rejected batch were invalid (``events[3].duration_ms``).

    Empty when a violation concerns the batch itself: then resending the rest
    cannot help.
    """
    indexes: Set[int] = set()
    for detail in _details(trailing_metadata):
        if not detail.type_url.endswith("/google.rpc.BadRequest"):
            continue
        bad_request = _CLASSES["BadRequest"]()
        bad_request.ParseFromString(detail.value)
        for violation in bad_request.field_violations:
            match = _EVENT_PATH.match(violation.field)
            if match is None:
                return set()
            indexes.add(int(match.group(1)))
    return indexes
