from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import catalog_pb2 as _catalog_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
FLOW_STEP_INITIALIZE_TO_TOOLS_CALL: FlowStep
FLOW_STEP_INITIALIZE_TO_TOOLS_LIST: FlowStep
FLOW_STEP_TOOLS_LIST_TO_TOOLS_CALL: FlowStep
FLOW_STEP_UNSPECIFIED: FlowStep

class AuthRequest(_message.Message):
    __slots__ = ["error_code", "method", "server", "success", "target_kind", "user_hash"]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    TARGET_KIND_FIELD_NUMBER: _ClassVar[int]
    USER_HASH_FIELD_NUMBER: _ClassVar[int]
    error_code: str
    method: str
    server: str
    success: bool
    target_kind: str
    user_hash: str
    def __init__(self, success: bool = ..., method: _Optional[str] = ..., server: _Optional[str] = ..., user_hash: _Optional[str] = ..., error_code: _Optional[str] = ..., target_kind: _Optional[str] = ...) -> None: ...

class Custom(_message.Message):
    __slots__ = ["metric_name"]
    METRIC_NAME_FIELD_NUMBER: _ClassVar[int]
    metric_name: str
    def __init__(self, metric_name: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ["auth_request", "custom", "dimensions", "duration_ms", "health_check", "metadata", "protocol_latency", "registry_operation", "timestamp", "tool_discovery", "tool_execution", "value"]
    AUTH_REQUEST_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CHECK_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_LATENCY_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_OPERATION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TOOL_DISCOVERY_FIELD_NUMBER: _ClassVar[int]
    TOOL_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    auth_request: AuthRequest
    custom: Custom
    dimensions: _struct_pb2.Struct
    duration_ms: float
    health_check: HealthCheck
    metadata: _struct_pb2.Struct
    protocol_latency: ProtocolLatency
    registry_operation: RegistryOperation
    timestamp: _timestamp_pb2.Timestamp
    tool_discovery: ToolDiscovery
    tool_execution: ToolExecution
    value: float
    def __init__(self, timestamp: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ..., duration_ms: _Optional[float] = ..., dimensions: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., auth_request: _Optional[_Union[AuthRequest, _Mapping]] = ..., tool_discovery: _Optional[_Union[ToolDiscovery, _Mapping]] = ..., tool_execution: _Optional[_Union[ToolExecution, _Mapping]] = ..., registry_operation: _Optional[_Union[RegistryOperation, _Mapping]] = ..., health_check: _Optional[_Union[HealthCheck, _Mapping]] = ..., protocol_latency: _Optional[_Union[ProtocolLatency, _Mapping]] = ..., custom: _Optional[_Union[Custom, _Mapping]] = ...) -> None: ...

class HealthCheck(_message.Message):
    __slots__ = ["endpoint", "healthy", "status_code"]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    healthy: bool
    status_code: int
    def __init__(self, endpoint: _Optional[str] = ..., status_code: _Optional[int] = ..., healthy: bool = ...) -> None: ...

class ProtocolLatency(_message.Message):
    __slots__ = ["client_name", "flow_step", "server_name", "session_id"]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_STEP_FIELD_NUMBER: _ClassVar[int]
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    client_name: str
    flow_step: FlowStep
    server_name: str
    session_id: str
    def __init__(self, flow_step: _Optional[_Union[FlowStep, str]] = ..., server_name: _Optional[str] = ..., client_name: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class RegistryOperation(_message.Message):
    __slots__ = ["error_code", "operation", "resource_id", "resource_type", "success", "user_id"]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    error_code: str
    operation: str
    resource_id: str
    resource_type: str
    success: bool
    user_id: str
    def __init__(self, operation: _Optional[str] = ..., resource_type: _Optional[str] = ..., success: bool = ..., resource_id: _Optional[str] = ..., user_id: _Optional[str] = ..., error_code: _Optional[str] = ...) -> None: ...

class ToolDiscovery(_message.Message):
    __slots__ = ["embedding_time_ms", "faiss_search_time_ms", "query", "results_count", "top_k_services", "top_n_tools"]
    EMBEDDING_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    FAISS_SEARCH_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    RESULTS_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOP_K_SERVICES_FIELD_NUMBER: _ClassVar[int]
    TOP_N_TOOLS_FIELD_NUMBER: _ClassVar[int]
    embedding_time_ms: float
    faiss_search_time_ms: float
    query: str
    results_count: int
    top_k_services: int
    top_n_tools: int
    def __init__(self, query: _Optional[str] = ..., results_count: _Optional[int] = ..., top_k_services: _Optional[int] = ..., top_n_tools: _Optional[int] = ..., embedding_time_ms: _Optional[float] = ..., faiss_search_time_ms: _Optional[float] = ...) -> None: ...

class ToolExecution(_message.Message):
    __slots__ = ["client_name", "client_version", "error_code", "input_size_bytes", "method", "output_size_bytes", "server_name", "server_path", "success", "tool_name", "user_hash"]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVER_PATH_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_HASH_FIELD_NUMBER: _ClassVar[int]
    client_name: str
    client_version: str
    error_code: str
    input_size_bytes: int
    method: str
    output_size_bytes: int
    server_name: str
    server_path: str
    success: bool
    tool_name: str
    user_hash: str
    def __init__(self, tool_name: _Optional[str] = ..., server_path: _Optional[str] = ..., server_name: _Optional[str] = ..., success: bool = ..., client_name: _Optional[str] = ..., client_version: _Optional[str] = ..., method: _Optional[str] = ..., user_hash: _Optional[str] = ..., error_code: _Optional[str] = ..., input_size_bytes: _Optional[int] = ..., output_size_bytes: _Optional[int] = ...) -> None: ...

class FlowStep(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
