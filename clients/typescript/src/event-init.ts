import type { JsonObject, Message, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type {
  AuthRequest,
  Custom,
  EventSchema,
  HealthCheck,
  ProtocolLatency,
  RegistryOperation,
  ToolDiscovery,
  ToolExecution,
} from "../../../gen/mcp/metrics/v1/events_pb.js";

/**
 * Fields every event may carry besides its typed ones (see `events.proto`).
 * Here and in the typed fields, `undefined` means "not set".
 */
export interface CommonEventFields {
  /** When it happened: a Date or epoch milliseconds. Default: when emitted. */
  timestamp?: Date | number | undefined;
  /** How long the operation took, in milliseconds. */
  durationMs?: number | undefined;
  /** The measured value; default 1 for counted events. */
  value?: number | undefined;
  /** Free-form dimensions (at most 20 keys, typed fields included). */
  dimensions?: JsonObject | undefined;
  /** Free-form metadata (at most 30 keys, typed fields included). */
  metadata?: JsonObject | undefined;
}

/** The typed fields of a generated message, all optional, as plain values. */
type Fields<T extends Message> = {
  [K in Exclude<keyof T, "$typeName" | "$unknown">]?: T[K] | undefined;
};

/** An authentication attempt. */
export type AuthEvent = CommonEventFields & Fields<AuthRequest>;
/** An MCP method call; byte sizes may be numbers. */
export type ToolExecutionEvent = CommonEventFields &
  Omit<Fields<ToolExecution>, "inputSizeBytes" | "outputSizeBytes"> & {
    /** Size of the request payload in bytes. */
    inputSizeBytes?: number | bigint | undefined;
    /** Size of the response payload in bytes. */
    outputSizeBytes?: number | bigint | undefined;
  };
/** A semantic tool search. */
export type DiscoveryEvent = CommonEventFields & Fields<ToolDiscovery>;
/** The latency between two protocol steps; `value` is the latency in seconds. */
export type ProtocolLatencyEvent = CommonEventFields & Fields<ProtocolLatency> & { value: number };
/** A registry operation. */
export type RegistryOperationEvent = CommonEventFields & Fields<RegistryOperation>;
/** A health probe. */
export type HealthCheckEvent = CommonEventFields & Fields<HealthCheck>;
/** Any other metric; `value` is the metric's value. */
export type CustomEvent = CommonEventFields & Fields<Custom> & { value: number };

/** The `kind` cases of `Event`, one per emitter. */
export type EventKind =
  | "authRequest"
  | "toolExecution"
  | "toolDiscovery"
  | "protocolLatency"
  | "registryOperation"
  | "healthCheck"
  | "custom";

/** An event as the buffer holds it: a shallow copy taken at emit time. */
export interface BufferedEvent {
  /** Emission order, used by `flush()` to know what it waits for. */
  readonly seq: number;
  readonly kind: EventKind;
  /** Epoch milliseconds. */
  readonly atMillis: number;
  readonly fields: CommonEventFields & Record<string, unknown>;
}

/** Turns a buffered event into the `Event` message init (done when sending, off the caller's path). */
export function toEventInit(buffered: BufferedEvent): MessageInitShape<typeof EventSchema> {
  const {
    timestamp: _ignored,
    durationMs,
    value,
    dimensions,
    metadata,
    ...typed
  } = buffered.fields;
  for (const key of ["inputSizeBytes", "outputSizeBytes"]) {
    const size = typed[key];
    if (typeof size === "number") {
      // BigInt() throws on NaN and infinities: the sender counts that event rejected.
      typed[key] = BigInt(Math.trunc(size));
    }
  }
  const event: MessageInitShape<typeof EventSchema> = {
    timestamp: timestampFromMs(buffered.atMillis),
    kind: { case: buffered.kind, value: typed },
  } as MessageInitShape<typeof EventSchema>;
  if (durationMs !== undefined) event.durationMs = durationMs;
  if (value !== undefined) event.value = value;
  if (dimensions !== undefined) event.dimensions = dimensions;
  if (metadata !== undefined) event.metadata = metadata;
  return event;
}
