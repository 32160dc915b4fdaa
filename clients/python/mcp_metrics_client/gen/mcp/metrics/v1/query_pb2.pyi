from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Answered(_message.Message):
    __slots__ = ["end", "raw_kept_since", "sources", "start"]
    END_FIELD_NUMBER: _ClassVar[int]
    RAW_KEPT_SINCE_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    end: _timestamp_pb2.Timestamp
    raw_kept_since: _timestamp_pb2.Timestamp
    sources: _containers.RepeatedCompositeFieldContainer[Source]
    start: _timestamp_pb2.Timestamp
    def __init__(self, start: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., sources: _Optional[_Iterable[_Union[Source, _Mapping]]] = ..., raw_kept_since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EventsRequest(_message.Message):
    __slots__ = ["end", "event_type", "filters", "page_size", "page_token", "start"]
    class FiltersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    END_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    end: _timestamp_pb2.Timestamp
    event_type: str
    filters: _containers.ScalarMap[str, str]
    page_size: int
    page_token: str
    start: _timestamp_pb2.Timestamp
    def __init__(self, event_type: _Optional[str] = ..., start: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., filters: _Optional[_Mapping[str, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class EventsResponse(_message.Message):
    __slots__ = ["events", "next_page_token"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[StoredEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[StoredEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ["end", "event_type", "filters", "start"]
    class FiltersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    END_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    end: _timestamp_pb2.Timestamp
    event_type: str
    filters: _containers.ScalarMap[str, str]
    start: _timestamp_pb2.Timestamp
    def __init__(self, event_type: _Optional[str] = ..., start: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., filters: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExportResponse(_message.Message):
    __slots__ = ["events"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[StoredEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[StoredEvent, _Mapping]]] = ...) -> None: ...

class ForecastPoint(_message.Message):
    __slots__ = ["lower", "time", "upper", "value"]
    LOWER_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    lower: float
    time: _timestamp_pb2.Timestamp
    upper: float
    value: float
    def __init__(self, time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ..., lower: _Optional[float] = ..., upper: _Optional[float] = ...) -> None: ...

class ForecastRequest(_message.Message):
    __slots__ = ["end", "event_type", "filters", "history_days", "horizon_days", "measure"]
    class FiltersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    END_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_DAYS_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    MEASURE_FIELD_NUMBER: _ClassVar[int]
    end: _timestamp_pb2.Timestamp
    event_type: str
    filters: _containers.ScalarMap[str, str]
    history_days: int
    horizon_days: int
    measure: str
    def __init__(self, event_type: _Optional[str] = ..., measure: _Optional[str] = ..., horizon_days: _Optional[int] = ..., history_days: _Optional[int] = ..., end: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., filters: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ForecastResponse(_message.Message):
    __slots__ = ["answered", "fitted", "forecast", "history", "holdout", "method", "r_squared", "residual_sd", "slope_per_day", "unavailable", "weekday_factors", "weekly"]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    FITTED_FIELD_NUMBER: _ClassVar[int]
    FORECAST_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    RESIDUAL_SD_FIELD_NUMBER: _ClassVar[int]
    R_SQUARED_FIELD_NUMBER: _ClassVar[int]
    SLOPE_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    WEEKDAY_FACTORS_FIELD_NUMBER: _ClassVar[int]
    WEEKLY_FIELD_NUMBER: _ClassVar[int]
    answered: Answered
    fitted: _containers.RepeatedCompositeFieldContainer[Point]
    forecast: _containers.RepeatedCompositeFieldContainer[ForecastPoint]
    history: _containers.RepeatedCompositeFieldContainer[Point]
    holdout: Holdout
    method: str
    r_squared: float
    residual_sd: float
    slope_per_day: float
    unavailable: str
    weekday_factors: _containers.RepeatedScalarFieldContainer[float]
    weekly: bool
    def __init__(self, method: _Optional[str] = ..., history: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., fitted: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., forecast: _Optional[_Iterable[_Union[ForecastPoint, _Mapping]]] = ..., slope_per_day: _Optional[float] = ..., weekly: bool = ..., weekday_factors: _Optional[_Iterable[float]] = ..., residual_sd: _Optional[float] = ..., r_squared: _Optional[float] = ..., holdout: _Optional[_Union[Holdout, _Mapping]] = ..., answered: _Optional[_Union[Answered, _Mapping]] = ..., unavailable: _Optional[str] = ...) -> None: ...

class Holdout(_message.Message):
    __slots__ = ["coverage", "days", "relative_error"]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_ERROR_FIELD_NUMBER: _ClassVar[int]
    coverage: float
    days: int
    relative_error: float
    def __init__(self, days: _Optional[int] = ..., relative_error: _Optional[float] = ..., coverage: _Optional[float] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ["time", "value"]
    TIME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    value: float
    def __init__(self, time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ...) -> None: ...

class SeriesGroup(_message.Message):
    __slots__ = ["group", "points"]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    group: str
    points: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, group: _Optional[str] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class SeriesRequest(_message.Message):
    __slots__ = ["end", "event_type", "filters", "group_by", "limit", "measure", "start", "step"]
    class FiltersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    END_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEASURE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    end: _timestamp_pb2.Timestamp
    event_type: str
    filters: _containers.ScalarMap[str, str]
    group_by: str
    limit: int
    measure: str
    start: _timestamp_pb2.Timestamp
    step: str
    def __init__(self, event_type: _Optional[str] = ..., measure: _Optional[str] = ..., start: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., step: _Optional[str] = ..., filters: _Optional[_Mapping[str, str]] = ..., group_by: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SeriesResponse(_message.Message):
    __slots__ = ["answered", "groups"]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    answered: Answered
    groups: _containers.RepeatedCompositeFieldContainer[SeriesGroup]
    def __init__(self, groups: _Optional[_Iterable[_Union[SeriesGroup, _Mapping]]] = ..., answered: _Optional[_Union[Answered, _Mapping]] = ...) -> None: ...

class Source(_message.Message):
    __slots__ = ["end", "grain", "start"]
    END_FIELD_NUMBER: _ClassVar[int]
    GRAIN_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    end: _timestamp_pb2.Timestamp
    grain: str
    start: _timestamp_pb2.Timestamp
    def __init__(self, grain: _Optional[str] = ..., start: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StoredEvent(_message.Message):
    __slots__ = ["dimensions", "duration_ms", "event_type", "instance_id", "key_service", "metadata", "request_id", "service", "service_version", "timestamp", "value"]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_SERVICE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    dimensions: _struct_pb2.Struct
    duration_ms: float
    event_type: str
    instance_id: str
    key_service: str
    metadata: _struct_pb2.Struct
    request_id: str
    service: str
    service_version: str
    timestamp: _timestamp_pb2.Timestamp
    value: float
    def __init__(self, event_type: _Optional[str] = ..., timestamp: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., service: _Optional[str] = ..., service_version: _Optional[str] = ..., instance_id: _Optional[str] = ..., value: _Optional[float] = ..., duration_ms: _Optional[float] = ..., dimensions: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., request_id: _Optional[str] = ..., key_service: _Optional[str] = ...) -> None: ...

class SummaryRequest(_message.Message):
    __slots__ = ["end", "event_type", "filters", "start"]
    class FiltersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    END_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    end: _timestamp_pb2.Timestamp
    event_type: str
    filters: _containers.ScalarMap[str, str]
    start: _timestamp_pb2.Timestamp
    def __init__(self, event_type: _Optional[str] = ..., start: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., filters: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SummaryResponse(_message.Message):
    __slots__ = ["answered", "types"]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    answered: Answered
    types: _containers.RepeatedCompositeFieldContainer[TypeSummary]
    def __init__(self, types: _Optional[_Iterable[_Union[TypeSummary, _Mapping]]] = ..., answered: _Optional[_Union[Answered, _Mapping]] = ...) -> None: ...

class TopRequest(_message.Message):
    __slots__ = ["dimension", "end", "event_type", "filters", "limit", "order", "start"]
    class FiltersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    dimension: str
    end: _timestamp_pb2.Timestamp
    event_type: str
    filters: _containers.ScalarMap[str, str]
    limit: int
    order: str
    start: _timestamp_pb2.Timestamp
    def __init__(self, event_type: _Optional[str] = ..., dimension: _Optional[str] = ..., start: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., filters: _Optional[_Mapping[str, str]] = ..., order: _Optional[str] = ...) -> None: ...

class TopResponse(_message.Message):
    __slots__ = ["answered", "rows"]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    answered: Answered
    rows: _containers.RepeatedCompositeFieldContainer[TopRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[TopRow, _Mapping]]] = ..., answered: _Optional[_Union[Answered, _Mapping]] = ...) -> None: ...

class TopRow(_message.Message):
    __slots__ = ["count", "errors", "p95_ms", "value"]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    count: int
    errors: int
    p95_ms: float
    value: str
    def __init__(self, value: _Optional[str] = ..., count: _Optional[int] = ..., errors: _Optional[int] = ..., p95_ms: _Optional[float] = ...) -> None: ...

class TypeSummary(_message.Message):
    __slots__ = ["error_rate", "errors", "event_type", "events", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "timed_events"]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    TIMED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    error_rate: float
    errors: int
    event_type: str
    events: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    timed_events: int
    def __init__(self, event_type: _Optional[str] = ..., events: _Optional[int] = ..., errors: _Optional[int] = ..., error_rate: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., timed_events: _Optional[int] = ..., mean_ms: _Optional[float] = ...) -> None: ...
