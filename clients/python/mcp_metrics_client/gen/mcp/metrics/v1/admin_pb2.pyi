from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

CLEANUP_STATUS_COMPLETED: CleanupStatus
CLEANUP_STATUS_DRY_RUN: CleanupStatus
CLEANUP_STATUS_SKIPPED: CleanupStatus
CLEANUP_STATUS_UNSPECIFIED: CleanupStatus
DESCRIPTOR: _descriptor.FileDescriptor

class GetDatabaseSizeRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetDatabaseSizeResponse(_message.Message):
    __slots__ = ["database_efficiency", "free_pages", "main_db_bytes", "page_count", "page_size", "shm_bytes", "total_bytes", "used_pages", "wal_bytes"]
    DATABASE_EFFICIENCY_FIELD_NUMBER: _ClassVar[int]
    FREE_PAGES_FIELD_NUMBER: _ClassVar[int]
    MAIN_DB_BYTES_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHM_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_PAGES_FIELD_NUMBER: _ClassVar[int]
    WAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    database_efficiency: float
    free_pages: int
    main_db_bytes: int
    page_count: int
    page_size: int
    shm_bytes: int
    total_bytes: int
    used_pages: int
    wal_bytes: int
    def __init__(self, main_db_bytes: _Optional[int] = ..., wal_bytes: _Optional[int] = ..., shm_bytes: _Optional[int] = ..., total_bytes: _Optional[int] = ..., page_count: _Optional[int] = ..., page_size: _Optional[int] = ..., free_pages: _Optional[int] = ..., used_pages: _Optional[int] = ..., database_efficiency: _Optional[float] = ...) -> None: ...

class GetDatabaseStatsRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetDatabaseStatsResponse(_message.Message):
    __slots__ = ["tables"]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[TableStats]
    def __init__(self, tables: _Optional[_Iterable[_Union[TableStats, _Mapping]]] = ...) -> None: ...

class ListRetentionPoliciesRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListRetentionPoliciesResponse(_message.Message):
    __slots__ = ["policies"]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[RetentionPolicy]
    def __init__(self, policies: _Optional[_Iterable[_Union[RetentionPolicy, _Mapping]]] = ...) -> None: ...

class PreviewRetentionRequest(_message.Message):
    __slots__ = ["table_name"]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    table_name: str
    def __init__(self, table_name: _Optional[str] = ...) -> None: ...

class PreviewRetentionResponse(_message.Message):
    __slots__ = ["tables"]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[TablePreview]
    def __init__(self, tables: _Optional[_Iterable[_Union[TablePreview, _Mapping]]] = ...) -> None: ...

class RetentionPolicy(_message.Message):
    __slots__ = ["is_active", "retention_days", "table_name", "timestamp_column"]
    IS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_COLUMN_FIELD_NUMBER: _ClassVar[int]
    is_active: bool
    retention_days: int
    table_name: str
    timestamp_column: str
    def __init__(self, table_name: _Optional[str] = ..., retention_days: _Optional[int] = ..., is_active: bool = ..., timestamp_column: _Optional[str] = ...) -> None: ...

class RunRetentionCleanupRequest(_message.Message):
    __slots__ = ["dry_run", "table_name"]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    table_name: str
    def __init__(self, table_name: _Optional[str] = ..., dry_run: bool = ...) -> None: ...

class RunRetentionCleanupResponse(_message.Message):
    __slots__ = ["completed_at", "duration_seconds", "operation", "results", "started_at", "tables_processed", "total_records_processed"]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    TABLES_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RECORDS_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    completed_at: _timestamp_pb2.Timestamp
    duration_seconds: float
    operation: str
    results: _containers.RepeatedCompositeFieldContainer[TableCleanupResult]
    started_at: _timestamp_pb2.Timestamp
    tables_processed: int
    total_records_processed: int
    def __init__(self, operation: _Optional[str] = ..., total_records_processed: _Optional[int] = ..., tables_processed: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., started_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., results: _Optional[_Iterable[_Union[TableCleanupResult, _Mapping]]] = ...) -> None: ...

class TableCleanupResult(_message.Message):
    __slots__ = ["duration_seconds", "reason", "records_deleted", "records_would_delete", "retention_days", "status", "table_name"]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECORDS_DELETED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_WOULD_DELETE_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    duration_seconds: float
    reason: str
    records_deleted: int
    records_would_delete: int
    retention_days: int
    status: CleanupStatus
    table_name: str
    def __init__(self, table_name: _Optional[str] = ..., status: _Optional[_Union[CleanupStatus, str]] = ..., reason: _Optional[str] = ..., records_deleted: _Optional[int] = ..., records_would_delete: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., retention_days: _Optional[int] = ...) -> None: ...

class TablePreview(_message.Message):
    __slots__ = ["cutoff", "newest_record_to_delete", "oldest_record_to_delete", "percentage_to_delete", "records_to_delete", "retention_days", "table_name", "total_records"]
    CUTOFF_FIELD_NUMBER: _ClassVar[int]
    NEWEST_RECORD_TO_DELETE_FIELD_NUMBER: _ClassVar[int]
    OLDEST_RECORD_TO_DELETE_FIELD_NUMBER: _ClassVar[int]
    PERCENTAGE_TO_DELETE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_TO_DELETE_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RECORDS_FIELD_NUMBER: _ClassVar[int]
    cutoff: _timestamp_pb2.Timestamp
    newest_record_to_delete: _timestamp_pb2.Timestamp
    oldest_record_to_delete: _timestamp_pb2.Timestamp
    percentage_to_delete: float
    records_to_delete: int
    retention_days: int
    table_name: str
    total_records: int
    def __init__(self, table_name: _Optional[str] = ..., retention_days: _Optional[int] = ..., records_to_delete: _Optional[int] = ..., total_records: _Optional[int] = ..., oldest_record_to_delete: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., newest_record_to_delete: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., cutoff: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., percentage_to_delete: _Optional[float] = ...) -> None: ...

class TableStats(_message.Message):
    __slots__ = ["has_retention_policy", "newest_record", "oldest_record", "policy_active", "record_count", "retention_days", "table_name"]
    HAS_RETENTION_POLICY_FIELD_NUMBER: _ClassVar[int]
    NEWEST_RECORD_FIELD_NUMBER: _ClassVar[int]
    OLDEST_RECORD_FIELD_NUMBER: _ClassVar[int]
    POLICY_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    has_retention_policy: bool
    newest_record: _timestamp_pb2.Timestamp
    oldest_record: _timestamp_pb2.Timestamp
    policy_active: bool
    record_count: int
    retention_days: int
    table_name: str
    def __init__(self, table_name: _Optional[str] = ..., record_count: _Optional[int] = ..., oldest_record: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., newest_record: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., has_retention_policy: bool = ..., retention_days: _Optional[int] = ..., policy_active: bool = ...) -> None: ...

class UpdateRetentionPolicyRequest(_message.Message):
    __slots__ = ["is_active", "retention_days", "table_name"]
    IS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    is_active: bool
    retention_days: int
    table_name: str
    def __init__(self, table_name: _Optional[str] = ..., retention_days: _Optional[int] = ..., is_active: bool = ...) -> None: ...

class UpdateRetentionPolicyResponse(_message.Message):
    __slots__ = ["policy"]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: RetentionPolicy
    def __init__(self, policy: _Optional[_Union[RetentionPolicy, _Mapping]] = ...) -> None: ...

class CleanupStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
