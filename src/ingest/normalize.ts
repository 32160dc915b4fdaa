import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Event } from "../../gen/mcp/metrics/v1/events_pb.js";
import {
  type EventKind,
  KIND_BY_CASE,
  KIND_BY_TYPE,
  type LegacyOrigin,
  legacyValue,
  newEvent,
  readTypedField,
  type TypedField,
  writeTypedField,
} from "../catalog/catalog.js";
import type { StoredEventRow } from "../storage/rollup-backfill.js";
import type { RollupFacts, RollupRow } from "../storage/rollups.js";
import type { ColumnValue, EventRow } from "../storage/rows.js";
import { formatMillis, formatTimestamp } from "./timestamps.js";

/** The envelope fields every row of a batch shares. */
export interface Envelope {
  readonly service: string;
  readonly version?: string | undefined;
  readonly instanceId?: string | undefined;
  /** The service of the API key that sent the batch, whatever `service` says. */
  readonly keyService?: string | undefined;
}

function kindOf(event: Event): EventKind | undefined {
  return event.kind.case === undefined ? undefined : KIND_BY_CASE.get(event.kind.case);
}

/** The texts read as a boolean, lowercased and trimmed. */
const BOOLEAN_TEXTS: ReadonlyMap<string, boolean> = new Map([
  ["true", true],
  ["false", false],
  ["1", true],
  ["0", false],
]);

/**
 * A boolean as the gateway's emitters spell it: JSON `true`/`false` (Python),
 * the strings `"true"`/`"false"` in any case and with blanks around (the nginx
 * Lua emitter sends strings; `str(True)` gives `"True"`), or 1 and 0, as
 * numbers or strings. Anything else (`"yes"`) is no boolean and stays free-form.
 */
function legacyBoolean(value: JsonValue): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (value === 1 || value === 0) return value === 1;
  return typeof value === "string" ? BOOLEAN_TEXTS.get(value.trim().toLowerCase()) : undefined;
}

/** Converts a legacy JSON value to a typed field's value, or undefined when it does not fit. */
function fromLegacy(field: TypedField, value: JsonValue): boolean | string | number | undefined {
  switch (field.type) {
    case "bool":
      return legacyBoolean(value);
    case "string":
      return typeof value === "string" ? value : undefined;
    case "double":
      // Python stored NaN and infinities as they came; they stay free-form here.
      return typeof value === "number" && Number.isFinite(value) ? value : undefined;
    case "int": {
      const [min, max] = field.range ?? [0, 0];
      return typeof value === "number" && Number.isInteger(value) && value >= min && value <= max
        ? value
        : undefined;
    }
    case "enum":
      return typeof value === "string" ? field.values?.get(value) : undefined;
  }
}

/** `map` without `keys`, its other keys in their order (see {@link renderTarget} for `__proto__`). */
function without(map: JsonObject, keys: readonly string[]): JsonObject {
  const rest = renderTarget(map);
  for (const key of Object.keys(map)) {
    if (!keys.includes(key)) rest[key] = map[key] as JsonValue;
  }
  return rest;
}

/**
 * Dimensions whose stored JSON keeps the value as the emitter sent it (the
 * string `"true"` of a boolean field), where the typed field holds it converted.
 */
export type VerbatimDimensions = Readonly<Record<string, JsonValue>>;

/**
 * Moves legacy keys that a typed field models (e.g. `dimensions.success` of an
 * auth event, `metadata.error_code`) into that field, so both ingress paths
 * store and count the same event the same way. A key whose value does not fit
 * the field's type stays free-form; a null is dropped (the field stays unset).
 * Keys of typed fields that are already set are left for validation to report.
 * The event gets new dimension and metadata objects without the moved keys
 * (deleting keys would turn V8's objects slow for the rest of the request).
 * Returns the dimensions a boolean field took from another spelling (`"true"`,
 * `1`), for {@link renderEvent} to store as sent.
 */
export function liftLegacyKeys(event: Event): VerbatimDimensions | undefined {
  const kind = kindOf(event);
  if (kind === undefined) return undefined;
  const message = event.kind.value as unknown as Record<string, unknown>;
  const moved: Record<LegacyOrigin, string[]> = { dimensions: [], metadata: [] };
  let verbatim: Record<string, JsonValue> | undefined;
  for (const field of kind.fields) {
    const map = event[field.origin];
    if (map === undefined) continue;
    for (const key of field.legacyKeys) {
      if (!Object.hasOwn(map, key) || readTypedField(message, field) !== undefined) continue;
      const raw = map[key] as JsonValue;
      const value = raw === null ? undefined : fromLegacy(field, raw);
      if (raw !== null && value === undefined) continue;
      moved[field.origin].push(key);
      if (value !== undefined) writeTypedField(message, field, value);
      if (field.type === "bool" && raw !== null && typeof raw !== "boolean") {
        verbatim ??= {};
        verbatim[key] = raw;
      }
    }
  }
  if (event.dimensions !== undefined && moved.dimensions.length > 0)
    event.dimensions = without(event.dimensions, moved.dimensions);
  if (event.metadata !== undefined && moved.metadata.length > 0)
    event.metadata = without(event.metadata, moved.metadata);
  return verbatim;
}

/**
 * A JSON object to copy `source`'s keys into: an ordinary object (V8 keeps it
 * fast), unless `source` holds a key named `__proto__`, which an ordinary
 * object would take as its prototype instead of a key.
 */
function renderTarget(source: JsonObject | undefined): JsonObject {
  return source !== undefined && Object.hasOwn(source, "__proto__") ? Object.create(null) : {};
}

/** A set typed value as its column stores it: booleans as 1 or 0, enums by their legacy text. */
function columnValue(field: TypedField, value: boolean | string | number): ColumnValue {
  if (typeof value === "boolean") return value ? 1 : 0;
  return legacyValue(field, value) as string | number;
}

/** A dimension's value as the rollups key it: booleans and numbers as text, enums by their legacy name. */
function dimensionText(field: TypedField, value: boolean | string | number): string {
  return String(legacyValue(field, value));
}

/**
 * What the rollups count an event by (src/storage/rollups.ts): its kind's
 * label fields that are set, whether its outcome field is false, and its
 * latency in ms (the duration, or the value in seconds where the kind's
 * histogram is of the value).
 */
function rollupFacts(
  kind: EventKind,
  message: Readonly<Record<string, unknown>>,
  event: Event,
): RollupFacts {
  const dimensions: (readonly [string, string])[] = [];
  for (const field of kind.labelFields) {
    const value = readTypedField(message, field);
    if (value !== undefined) dimensions.push([field.name, dimensionText(field, value)]);
  }
  const outcome = kind.outcome && readTypedField(message, kind.outcome);
  const latencyMs =
    kind.histogram?.source === "value_seconds"
      ? (event.value ?? 1) * 1000
      : (event.durationMs ?? null);
  return { dimensions, failed: outcome === false, latencyMs };
}

/**
 * Turns one valid event into the rows that store it. Typed fields are written
 * back under their legacy keys into the `dimensions`/`metadata` JSON, so the
 * universal table reads the same whichever ingress the event came through.
 */
export function toEventRow(event: Event, envelope: Envelope, receivedAtMs: number): EventRow {
  return renderEvent(event, envelope, receivedAtMs).row;
}

/**
 * An event rendered for storage, with its dimensions and metadata as objects
 * for the instruments: typed values as their fields hold them (`true`, not
 * the `"true"` the row's JSON keeps as sent).
 */
export interface RenderedEvent {
  readonly row: EventRow;
  readonly dimensions: JsonObject;
  readonly metadata: JsonObject;
}

/**
 * {@link toEventRow}, also returning the rendered dimensions and metadata.
 * `verbatim` (from {@link liftLegacyKeys}) replaces typed values in the
 * stored dimensions with what the emitter sent.
 */
export function renderEvent(
  event: Event,
  envelope: Envelope,
  receivedAtMs: number,
  verbatim?: VerbatimDimensions,
): RenderedEvent {
  const kind = kindOf(event);
  if (kind === undefined) throw new Error("toEventRow needs a validated event with a kind");
  const message = event.kind.value as unknown as Record<string, unknown>;
  const dimensions = renderTarget(event.dimensions);
  const metadata = renderTarget(event.metadata);
  // The specialized row's columns are filled in the same pass: NULL where unset.
  const table = kind.table;
  const columns = table && new Array<ColumnValue>(table.fields.length).fill(null);
  for (const field of kind.fields) {
    const value = readTypedField(message, field);
    if (value === undefined) continue;
    (field.origin === "dimensions" ? dimensions : metadata)[field.name] = legacyValue(field, value);
    if (columns && field.column) columns[field.column.index] = columnValue(field, value);
  }
  const rollup = rollupFacts(kind, message, event);
  if (event.dimensions !== undefined) Object.assign(dimensions, event.dimensions);
  if (event.metadata !== undefined) Object.assign(metadata, event.metadata);

  const row: EventRow = {
    service: envelope.service,
    serviceVersion: envelope.version || null,
    instanceId: envelope.instanceId || null,
    metricType: kind.name,
    timestamp: event.timestamp ? formatTimestamp(event.timestamp) : formatMillis(receivedAtMs),
    value: event.value ?? 1,
    durationMs: event.durationMs ?? null,
    // Spread over a copy, each key keeps its place: the row reads as it was sent.
    dimensions: JSON.stringify(verbatim ? { ...dimensions, ...verbatim } : dimensions),
    metadata: JSON.stringify(metadata),
    keyService: envelope.keyService ?? null,
    specialized: table && columns && { table, values: columns },
    rollup,
  };
  return { row, dimensions, metadata };
}

/** A stored raw event lifted as at ingestion: its kind, and the event with its typed fields set. */
function liftStored(stored: StoredEventRow): { kind: EventKind; event: Event } | undefined {
  const kind = KIND_BY_TYPE.get(stored.metricType);
  if (kind === undefined) return undefined;
  const event = newEvent(kind, jsonObject(stored.dimensions), jsonObject(stored.metadata));
  event.value = stored.value;
  if (stored.durationMs !== null) event.durationMs = stored.durationMs;
  liftLegacyKeys(event);
  return { kind, event };
}

const messageOf = (event: Event) => event.kind.value as unknown as Record<string, unknown>;

/**
 * A stored raw event as the rollups count it, its typed fields lifted from
 * its stored JSON as at ingestion (src/storage/rollup-backfill.ts). An event
 * of a type this build does not know counts by its totals only.
 */
export function rollupRowOfStored(stored: StoredEventRow): RollupRow {
  const row = {
    timestamp: stored.timestamp,
    service: stored.service,
    metricType: stored.metricType,
    value: stored.value,
  };
  const lifted = liftStored(stored);
  if (lifted === undefined) {
    return { ...row, rollup: { dimensions: [], failed: false, latencyMs: stored.durationMs } };
  }
  return { ...row, rollup: rollupFacts(lifted.kind, messageOf(lifted.event), lifted.event) };
}

/**
 * Every dimension of a stored raw event as text, as the history's filters
 * and rankings read it (src/query/history.ts): `service`, each typed field
 * that is set (the rollups' spelling: `true`, an enum's legacy name), and
 * each other key of its dimensions whose value is a string, number or boolean.
 * A key named as one of the kind's typed fields is that field or nothing: a
 * value that did not fit it (`"results_count": "0"` sent as text) stays a
 * free-form key in the stored event, but is not its dimension, as the
 * rollups and the kind's own table do not count it either.
 */
export function storedDimensions(stored: StoredEventRow): Map<string, string> {
  const out = new Map<string, string>([["service", stored.service]]);
  const lifted = liftStored(stored);
  if (lifted === undefined) return out;
  const { kind, event } = lifted;
  const message = messageOf(event);
  for (const field of kind.fields) {
    const value = readTypedField(message, field);
    if (value !== undefined) out.set(field.name, dimensionText(field, value));
  }
  const typed = typedKeysOf(kind);
  for (const [key, value] of Object.entries(event.dimensions ?? {})) {
    if (!out.has(key) && !typed.has(key) && value !== null && typeof value !== "object") {
      out.set(key, String(value));
    }
  }
  return out;
}

/** Each kind's typed fields' legacy keys, made once. */
const TYPED_KEYS = new Map<EventKind, ReadonlySet<string>>();

function typedKeysOf(kind: EventKind): ReadonlySet<string> {
  let keys = TYPED_KEYS.get(kind);
  if (keys === undefined) {
    keys = new Set(kind.fields.flatMap((f) => f.legacyKeys));
    TYPED_KEYS.set(kind, keys);
  }
  return keys;
}

/** Stored JSON object text as an object ({} for anything else). */
function jsonObject(text: string | null): JsonObject {
  try {
    const value = text === null ? null : (JSON.parse(text) as unknown);
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as JsonObject)
      : {};
  } catch {
    return {};
  }
}
