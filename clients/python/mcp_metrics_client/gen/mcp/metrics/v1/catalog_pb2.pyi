from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
FIELD_CATALOG_FIELD_NUMBER: _ClassVar[int]
HISTOGRAM_SOURCE_DURATION_MS: HistogramSource
HISTOGRAM_SOURCE_UNSPECIFIED: HistogramSource
HISTOGRAM_SOURCE_VALUE_SECONDS: HistogramSource
KIND_CATALOG_FIELD_NUMBER: _ClassVar[int]
LEGACY_NAMES_FIELD_NUMBER: _ClassVar[int]
LEGACY_PLACE_DIMENSIONS: LegacyPlace
LEGACY_PLACE_METADATA: LegacyPlace
LEGACY_PLACE_UNSPECIFIED: LegacyPlace
field_catalog: _descriptor.FieldDescriptor
kind_catalog: _descriptor.FieldDescriptor
legacy_names: _descriptor.FieldDescriptor

class FieldCatalog(_message.Message):
    __slots__ = ["column", "column_since", "histogram_ms", "legacy", "legacy_aliases"]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    COLUMN_SINCE_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_MS_FIELD_NUMBER: _ClassVar[int]
    LEGACY_ALIASES_FIELD_NUMBER: _ClassVar[int]
    LEGACY_FIELD_NUMBER: _ClassVar[int]
    column: bool
    column_since: int
    histogram_ms: Instrument
    legacy: LegacyPlace
    legacy_aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, legacy: _Optional[_Union[LegacyPlace, str]] = ..., legacy_aliases: _Optional[_Iterable[str]] = ..., column: bool = ..., column_since: _Optional[int] = ..., histogram_ms: _Optional[_Union[Instrument, _Mapping]] = ...) -> None: ...

class Instrument(_message.Message):
    __slots__ = ["description", "name"]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    description: str
    name: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class KindCatalog(_message.Message):
    __slots__ = ["counter", "histogram", "histogram_source", "labels", "no_instruments", "outcome", "table", "table_since", "value_required"]
    COUNTER_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_SOURCE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    NO_INSTRUMENTS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    TABLE_SINCE_FIELD_NUMBER: _ClassVar[int]
    VALUE_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    counter: Instrument
    histogram: Instrument
    histogram_source: HistogramSource
    labels: _containers.RepeatedScalarFieldContainer[str]
    no_instruments: bool
    outcome: str
    table: str
    table_since: int
    value_required: bool
    def __init__(self, table: _Optional[str] = ..., value_required: bool = ..., counter: _Optional[_Union[Instrument, _Mapping]] = ..., histogram: _Optional[_Union[Instrument, _Mapping]] = ..., histogram_source: _Optional[_Union[HistogramSource, str]] = ..., labels: _Optional[_Iterable[str]] = ..., no_instruments: bool = ..., table_since: _Optional[int] = ..., outcome: _Optional[str] = ...) -> None: ...

class LegacyPlace(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class HistogramSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
