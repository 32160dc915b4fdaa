from . import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestRequest(_message.Message):
    __slots__ = ["batch_id", "events", "instance_id", "service", "version"]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.Event]
    instance_id: str
    service: str
    version: str
    def __init__(self, service: _Optional[str] = ..., version: _Optional[str] = ..., instance_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_events_pb2.Event, _Mapping]]] = ..., batch_id: _Optional[str] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ["accepted", "rejected", "request_id"]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    request_id: str
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class IngestStreamRequest(_message.Message):
    __slots__ = ["batch_id", "events", "instance_id", "service", "version"]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.Event]
    instance_id: str
    service: str
    version: str
    def __init__(self, service: _Optional[str] = ..., version: _Optional[str] = ..., instance_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_events_pb2.Event, _Mapping]]] = ..., batch_id: _Optional[str] = ...) -> None: ...

class IngestStreamResponse(_message.Message):
    __slots__ = ["accepted", "messages", "rejected", "request_id"]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    messages: int
    rejected: int
    request_id: str
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., request_id: _Optional[str] = ..., messages: _Optional[int] = ...) -> None: ...
