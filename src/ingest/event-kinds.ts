import {
  create,
  type DescField,
  type DescMessage,
  type JsonObject,
  ScalarType,
} from "@bufbuild/protobuf";
import { type Event, EventSchema } from "../../gen/mcp/metrics/v1/events_pb.js";

/** Where a typed field lives in the legacy JSON shape. */
export type LegacyOrigin = "dimensions" | "metadata";

/** How a typed field's value is represented. */
export type TypedFieldType = "bool" | "string" | "int" | "double" | "enum";

/** One typed field of an event kind, with the legacy key it maps to. */
export interface TypedField {
  /** Proto field name, which is also the legacy key, e.g. `user_hash`. */
  readonly name: string;
  /** Property name on the generated message, e.g. `userHash`. */
  readonly localName: string;
  readonly origin: LegacyOrigin;
  /** Every legacy key read into this field: `name`, then other names such as `vector_search_time_ms`. */
  readonly legacyKeys: readonly string[];
  readonly type: TypedFieldType;
  /** Smallest and largest whole value an `int` field takes. */
  readonly range?: readonly [number, number];
  /** Whether an `int` field is 64-bit, hence a bigint on the generated message. */
  readonly bigint?: boolean;
  /** For enums: the legacy text of each non-zero value, e.g. 1 -> `initialize_to_tools_list`. */
  readonly labels?: ReadonlyMap<number, string>;
  /** For enums: the reverse of `labels`, plus the other names emitters use for a value. */
  readonly values?: ReadonlyMap<string, number>;
}

/** One event kind: a case of `Event.kind`, which is also a legacy metric `type`. */
export interface EventKind {
  /** Legacy metric type and proto field name, e.g. `auth_request`. */
  readonly name: string;
  /** The oneof case on the generated message, e.g. `authRequest`. */
  readonly localName: string;
  readonly message: DescMessage;
  readonly fields: readonly TypedField[];
  /** Whether `Event.value` must be set (it is the measurement itself, not a count). */
  readonly valueRequired: boolean;
}

/**
 * Typed fields that the legacy JSON carries in `metadata` (contract §3's
 * "← metadata" columns); every other typed field is a legacy dimension.
 */
const LEGACY_METADATA_FIELDS = new Set([
  "error_code",
  "input_size_bytes",
  "output_size_bytes",
  "embedding_time_ms",
  "faiss_search_time_ms",
]);

/**
 * Legacy keys that emitters use for a typed field under another name: the
 * newer Python client sends `vector_search_time_ms` for the FAISS search time.
 */
const LEGACY_ALIASES: Readonly<Record<string, readonly string[]>> = {
  faiss_search_time_ms: ["vector_search_time_ms"],
};

/**
 * Other names emitters give an enum value, read as the value and stored and
 * labelled under its own name: the upstream auth server's middleware calls the
 * initialize -> tools/call step `full_protocol_flow`.
 */
const LEGACY_ENUM_ALIASES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  flow_step: { full_protocol_flow: "initialize_to_tools_call" },
};

/** Kinds whose `value` is a measurement: protocol_latency (seconds) and custom. */
const VALUE_REQUIRED = new Set(["protocol_latency", "custom"]);

const INT32: readonly [number, number] = [-(2 ** 31), 2 ** 31 - 1];
const SAFE: readonly [number, number] = [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];

function typedField(field: DescField): TypedField {
  const base = {
    name: field.name,
    localName: field.localName,
    origin: LEGACY_METADATA_FIELDS.has(field.name) ? "metadata" : "dimensions",
    legacyKeys: [field.name, ...(LEGACY_ALIASES[field.name] ?? [])],
  } as const;
  if (field.fieldKind === "enum") {
    const prefix = field.enum.sharedPrefix ?? "";
    const labels = new Map<number, string>();
    for (const v of field.enum.values) {
      if (v.number !== 0) labels.set(v.number, v.name.slice(prefix.length).toLowerCase());
    }
    const values = new Map([...labels].map(([n, label]) => [label, n]));
    for (const [alias, canonical] of Object.entries(LEGACY_ENUM_ALIASES[field.name] ?? {})) {
      const value = values.get(canonical);
      if (value === undefined) throw new Error(`alias ${alias} names no value of ${field.name}`);
      values.set(alias, value);
    }
    return { ...base, type: "enum", labels, values };
  }
  if (field.fieldKind !== "scalar") {
    throw new Error(`unsupported typed field ${field.parent.typeName}.${field.name}`);
  }
  switch (field.scalar) {
    case ScalarType.BOOL:
      return { ...base, type: "bool" };
    case ScalarType.STRING:
      return { ...base, type: "string" };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { ...base, type: "double" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { ...base, type: "int", range: INT32 };
    default:
      return { ...base, type: "int", range: SAFE, bigint: true };
  }
}

const kindOneof = EventSchema.oneofs.find((o) => o.name === "kind");
if (kindOneof === undefined) throw new Error("mcp.metrics.v1.Event has no oneof kind");

/** Every event kind, derived from the schema so a new proto field needs no table edit here. */
export const EVENT_KINDS: readonly EventKind[] = kindOneof.fields.map((f) => {
  if (f.message === undefined) throw new Error(`Event.${f.name} is not a message`);
  return {
    name: f.name,
    localName: f.localName,
    message: f.message,
    fields: f.message.fields.map(typedField),
    valueRequired: VALUE_REQUIRED.has(f.name),
  };
});

/**
 * A new event of `kind`, its typed fields unset, with these dimensions and
 * metadata. Made empty by `create` and then assigned: `create` with an
 * initializer walks every field through reflection (bench/ingest/breakdown.ts:
 * a tenth of the legacy decode).
 */
export function newEvent(kind: EventKind, dimensions: JsonObject, metadata: JsonObject): Event {
  const event = create(EventSchema);
  event.dimensions = dimensions;
  event.metadata = metadata;
  event.kind = { case: kind.localName, value: create(kind.message) } as Event["kind"];
  return event;
}

/** Kinds by their oneof case (`authRequest`). */
export const KIND_BY_CASE: ReadonlyMap<string, EventKind> = new Map(
  EVENT_KINDS.map((k) => [k.localName, k]),
);

/** Kinds by legacy metric type (`auth_request`). */
export const KIND_BY_TYPE: ReadonlyMap<string, EventKind> = new Map(
  EVENT_KINDS.map((k) => [k.name, k]),
);

/**
 * A typed field's value on a kind message, or undefined when unset (enum 0
 * counts as unset). 64-bit integers come back as numbers: the sizes and counts
 * modelled here stay far below 2^53.
 */
export function readTypedField(
  message: Record<string, unknown>,
  field: TypedField,
): boolean | string | number | undefined {
  const value = message[field.localName];
  if (field.type === "enum") return value === 0 ? undefined : (value as number | undefined);
  if (typeof value === "bigint") return Number(value);
  return value as boolean | string | number | undefined;
}

/** Sets a typed field on a kind message from its plain value. */
export function writeTypedField(
  message: Record<string, unknown>,
  field: TypedField,
  value: boolean | string | number,
): void {
  message[field.localName] = field.bigint ? BigInt(value as number) : value;
}

/** A typed field's value as the legacy JSON shows it (enums by their text). */
export function legacyValue(
  field: TypedField,
  value: boolean | string | number,
): boolean | string | number {
  if (field.type === "enum") return field.labels?.get(value as number) ?? value;
  return value;
}
