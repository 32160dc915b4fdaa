import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Event } from "../../gen/mcp/metrics/v1/events_pb.js";
import type { EventRow, SqlBool } from "../storage/rows.js";
import {
  type EventKind,
  KIND_BY_CASE,
  legacyValue,
  readTypedField,
  type TypedField,
  writeTypedField,
} from "./event-kinds.js";
import { formatMillis, formatTimestamp } from "./timestamps.js";

/** The envelope fields every row of a batch shares. */
export interface Envelope {
  readonly service: string;
  readonly version?: string | undefined;
  readonly instanceId?: string | undefined;
}

function kindOf(event: Event): EventKind | undefined {
  return event.kind.case === undefined ? undefined : KIND_BY_CASE.get(event.kind.case);
}

/** Converts a legacy JSON value to a typed field's value, or undefined when it does not fit. */
function fromLegacy(field: TypedField, value: JsonValue): boolean | string | number | undefined {
  switch (field.type) {
    case "bool":
      return typeof value === "boolean" ? value : undefined;
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

/**
 * Moves legacy keys that a typed field models (e.g. `dimensions.success` of an
 * auth event, `metadata.error_code`) into that field, so both ingress paths
 * store and count the same event the same way. A key whose value does not fit
 * the field's type stays free-form; a null is dropped (the field stays unset).
 * Keys of typed fields that are already set are left for validation to report.
 */
export function liftLegacyKeys(event: Event): void {
  const kind = kindOf(event);
  if (kind === undefined) return;
  const message = event.kind.value as unknown as Record<string, unknown>;
  for (const field of kind.fields) {
    const map = event[field.origin];
    if (map === undefined) continue;
    for (const key of [field.name, ...field.aliases]) {
      if (!Object.hasOwn(map, key) || readTypedField(message, field) !== undefined) continue;
      const raw = map[key] as JsonValue;
      const value = raw === null ? undefined : fromLegacy(field, raw);
      if (raw !== null && value === undefined) continue;
      delete map[key];
      if (value !== undefined) writeTypedField(message, field, value);
    }
  }
}

const sqlBool = (v: unknown): SqlBool => (v === undefined ? null : v ? 1 : 0);
const text = (v: unknown): string | null => (v === undefined ? null : String(v));
const num = (v: unknown): number | null => (v === undefined ? null : Number(v));

/**
 * Turns one valid event into the rows that store it. Typed fields are written
 * back under their legacy keys into the `dimensions`/`metadata` JSON, so the
 * universal table reads the same whichever ingress the event came through.
 */
export function toEventRow(event: Event, envelope: Envelope, receivedAtMs: number): EventRow {
  return renderEvent(event, envelope, receivedAtMs).row;
}

/** An event rendered for storage, with its dimensions and metadata as objects for the instruments. */
export interface RenderedEvent {
  readonly row: EventRow;
  readonly dimensions: JsonObject;
  readonly metadata: JsonObject;
}

/** {@link toEventRow}, also returning the rendered dimensions and metadata. */
export function renderEvent(event: Event, envelope: Envelope, receivedAtMs: number): RenderedEvent {
  const kind = kindOf(event);
  if (kind === undefined) throw new Error("toEventRow needs a validated event with a kind");
  const message = event.kind.value as unknown as Record<string, unknown>;
  // Null-prototype objects: a key named "__proto__" stays an ordinary key.
  const dimensions: JsonObject = Object.create(null);
  const metadata: JsonObject = Object.create(null);
  const typed: Record<string, unknown> = {};
  for (const field of kind.fields) {
    const value = readTypedField(message, field);
    if (value === undefined) continue;
    typed[field.name] = value;
    (field.origin === "dimensions" ? dimensions : metadata)[field.name] = legacyValue(field, value);
  }
  Object.assign(dimensions, event.dimensions);
  Object.assign(metadata, event.metadata);

  const timestamp = event.timestamp ? formatTimestamp(event.timestamp) : formatMillis(receivedAtMs);
  const t = typed;
  const row: EventRow = {
    service: envelope.service,
    serviceVersion: envelope.version || null,
    instanceId: envelope.instanceId || null,
    metricType: kind.name,
    timestamp,
    value: event.value ?? 1,
    durationMs: event.durationMs ?? null,
    dimensions: JSON.stringify(dimensions),
    metadata: JSON.stringify(metadata),
    ...(kind.name === "auth_request" && {
      auth: {
        success: sqlBool(t.success),
        method: text(t.method),
        server: text(t.server),
        userHash: text(t.user_hash),
        errorCode: text(t.error_code),
      },
    }),
    ...(kind.name === "tool_execution" && {
      tool: {
        toolName: text(t.tool_name),
        serverPath: text(t.server_path),
        serverName: text(t.server_name),
        success: sqlBool(t.success),
        clientName: text(t.client_name),
        clientVersion: text(t.client_version),
        method: text(t.method),
        userHash: text(t.user_hash),
        errorCode: text(t.error_code),
        inputSizeBytes: num(t.input_size_bytes),
        outputSizeBytes: num(t.output_size_bytes),
      },
    }),
    ...(kind.name === "tool_discovery" && {
      discovery: {
        query: text(t.query),
        resultsCount: num(t.results_count),
        topKServices: num(t.top_k_services),
        topNTools: num(t.top_n_tools),
        embeddingTimeMs: num(t.embedding_time_ms),
        faissSearchTimeMs: num(t.faiss_search_time_ms),
      },
    }),
  };
  return { row, dimensions, metadata };
}
