import type { JsonObject, Message, MessageInitShape } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Event, EventSchema } from "../../../gen/mcp/metrics/v1/events_pb.js";

/** Scalar types a generated message holds as a bigint. */
const INT64_SCALARS: ReadonlySet<ScalarType> = new Set([
  ScalarType.INT64,
  ScalarType.UINT64,
  ScalarType.SINT64,
  ScalarType.FIXED64,
  ScalarType.SFIXED64,
]);

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

/** The `kind` cases of `Event`, one per kind of the event catalog (`events.proto`). */
export type EventKind = NonNullable<Event["kind"]["case"]>;

/** The generated message of a kind. */
type KindMessage<K extends EventKind> = Extract<Event["kind"], { case: K }>["value"];

/**
 * The typed fields of a generated message, all optional, as plain values; a
 * 64-bit integer (a bigint on the message) may be given as a number.
 */
type Fields<T extends Message> = {
  [P in Exclude<keyof T, "$typeName" | "$unknown">]?:
    | (bigint extends T[P] ? number | bigint : T[P])
    | undefined;
};

/** An event of kind `K`: the common fields and the kind's typed fields. */
export type EventOf<K extends EventKind> = CommonEventFields & Fields<KindMessage<K>>;

/** An authentication attempt. */
export type AuthEvent = EventOf<"authRequest">;
/** An MCP method call; byte sizes may be numbers. */
export type ToolExecutionEvent = EventOf<"toolExecution">;
/** A semantic tool search. */
export type DiscoveryEvent = EventOf<"toolDiscovery">;
/** The latency between two protocol steps; `value` is the latency in seconds. */
export type ProtocolLatencyEvent = EventOf<"protocolLatency"> & { value: number };
/** A registry operation. */
export type RegistryOperationEvent = EventOf<"registryOperation">;
/** A health probe. */
export type HealthCheckEvent = EventOf<"healthCheck">;
/** Any other metric; `value` is the metric's value. */
export type CustomEvent = EventOf<"custom"> & { value: number };

/**
 * The 64-bit integer fields of each kind, read from the schema: a number
 * given for one is converted to the bigint the message holds.
 */
const INT64_FIELDS: ReadonlyMap<string, readonly string[]> = new Map(
  EventSchema.fields.flatMap((member) =>
    member.oneof?.name === "kind" && member.message
      ? [
          [
            member.localName,
            member.message.fields
              .filter((f) => f.fieldKind === "scalar" && INT64_SCALARS.has(f.scalar))
              .map((f) => f.localName),
          ] as const,
        ]
      : [],
  ),
);

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
  for (const key of INT64_FIELDS.get(buffered.kind) ?? []) {
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
