import type { JsonObject } from "@bufbuild/protobuf";
import type { Event } from "../../gen/mcp/metrics/v1/events_pb.js";
import { EVENT_KINDS, KIND_BY_TYPE, newEvent } from "../catalog/catalog.js";
import type { BatchInput } from "../ingest/validate.js";
import { echoInput } from "./echo-input.js";
import { parseLegacyTimestamp } from "./legacy-timestamp.js";

/** One schema error, in the shape FastAPI gives pydantic's errors (docs/legacy-contract.md §1: 422 bodies). */
export interface SchemaError {
  readonly type: string;
  readonly loc: (string | number)[];
  readonly msg: string;
  readonly input: unknown;
  readonly ctx?: Record<string, unknown>;
}

/** A legacy request decoded into the typed batch every ingress shares. */
export interface LegacyBatch {
  readonly batch: BatchInput;
  /** How Python printed each event's timestamp, for the legacy messages. */
  readonly timestampDisplays: readonly (string | undefined)[];
}

/** The errors as they can be sent: an input nested too deeply is cut off (see {@link echoInput}). */
const sendable = (errors: SchemaError[]): SchemaError[] =>
  errors.map((error) => ({ ...error, input: echoInput(error.input) }));

/** The legacy `MetricType` members in the Python enum's order (the catalog's), as pydantic lists them. */
const TYPE_NAMES = EVENT_KINDS.map(({ name }) => `'${name}'`);
const EXPECTED_TYPES = `${TYPE_NAMES.slice(0, -1).join(", ")} or ${TYPE_NAMES.at(-1)}`;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** The string limits pydantic enforced before the validator ran (docs/legacy-contract.md §2 layer A). */
const STRING_FIELDS = [
  { key: "service", localName: "service", required: true, max: 50 },
  { key: "version", localName: "version", required: false, max: 20 },
  { key: "instance_id", localName: "instanceId", required: false, max: 50 },
  // Not in the Python service: the batch id of idempotent retries (issue 10).
  { key: "batch_id", localName: "batchId", required: false, max: 128 },
] as const;

/** The texts Python's float() reads as NaN and infinities. */
const SPECIAL_FLOATS = new Map([
  ["nan", Number.NaN],
  ["inf", Infinity],
  ["+inf", Infinity],
  ["-inf", -Infinity],
  ["infinity", Infinity],
  ["+infinity", Infinity],
  ["-infinity", -Infinity],
]);

/** A decimal number as pydantic reads one from a string (no hex, binary or blanks). */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/;

/** Where metric `i`'s `key` is, as pydantic locates it; built only for an error. */
const metricLoc = (i: number, key?: string): (string | number)[] =>
  key === undefined ? ["body", "metrics", i] : ["body", "metrics", i, key];

/** pydantic's lax `float`: numbers, booleans and numeric strings. */
function toFloat(
  input: unknown,
  i: number,
  key: string,
  errors: SchemaError[],
): number | undefined {
  if (typeof input === "number") return input;
  if (typeof input === "boolean") return input ? 1 : 0;
  if (typeof input === "string") {
    const text = input.trim().toLowerCase();
    const special = SPECIAL_FLOATS.get(text);
    if (special !== undefined) return special;
    if (DECIMAL.test(text)) return Number(text);
    errors.push({
      type: "float_parsing",
      loc: metricLoc(i, key),
      msg: "Input should be a valid number, unable to parse string as a number",
      input,
    });
    return undefined;
  }
  errors.push({
    type: "float_type",
    loc: metricLoc(i, key),
    msg: "Input should be a valid number",
    input,
  });
  return undefined;
}

function toDict(
  metric: Record<string, unknown>,
  key: string,
  i: number,
  errors: SchemaError[],
): JsonObject {
  if (!(key in metric)) return {};
  const input = metric[key];
  if (isObject(input)) return input as JsonObject;
  errors.push({
    type: "dict_type",
    loc: metricLoc(i, key),
    msg: "Input should be a valid dictionary",
    input,
  });
  return {};
}

function decodeMetric(
  input: unknown,
  i: number,
  errors: SchemaError[],
): { event: Event; display: string | undefined } | undefined {
  if (!isObject(input)) {
    errors.push({
      type: "model_attributes_type",
      loc: metricLoc(i),
      msg: "Input should be a valid dictionary or object to extract fields from",
      input,
    });
    return undefined;
  }
  const before = errors.length;
  const kind = typeof input.type === "string" ? KIND_BY_TYPE.get(input.type) : undefined;
  if (!("type" in input)) {
    errors.push({ type: "missing", loc: metricLoc(i, "type"), msg: "Field required", input });
  } else if (kind === undefined) {
    errors.push({
      type: "enum",
      loc: metricLoc(i, "type"),
      msg: `Input should be ${EXPECTED_TYPES}`,
      input: input.type,
      ctx: { expected: EXPECTED_TYPES },
    });
  }
  let value: number | undefined;
  if (!("value" in input))
    errors.push({ type: "missing", loc: metricLoc(i, "value"), msg: "Field required", input });
  else value = toFloat(input.value, i, "value", errors);

  // An explicit null timestamp means "now", like a missing one (docs/legacy-contract.md W20: Python rejected the batch).
  let timestamp: Event["timestamp"];
  let display: string | undefined;
  if (input.timestamp !== undefined && input.timestamp !== null) {
    const parsed = parseLegacyTimestamp(input.timestamp);
    if (parsed.ok) {
      timestamp = parsed.timestamp;
      display = parsed.display;
    } else {
      errors.push({
        type: parsed.type,
        loc: metricLoc(i, "timestamp"),
        msg: parsed.msg,
        input: input.timestamp,
      });
    }
  }
  const durationMs =
    input.duration_ms === undefined || input.duration_ms === null
      ? undefined
      : toFloat(input.duration_ms, i, "duration_ms", errors);
  const dimensions = toDict(input, "dimensions", i, errors);
  const metadata = toDict(input, "metadata", i, errors);
  if (errors.length > before || kind === undefined) return undefined;

  const event = newEvent(kind, dimensions, metadata);
  if (value !== undefined) event.value = value;
  if (durationMs !== undefined) event.durationMs = durationMs;
  if (timestamp !== undefined) event.timestamp = timestamp;
  return { event, display };
}

/**
 * Decodes a legacy `POST /metrics` body into the typed batch, applying the
 * checks the Python service's pydantic models made (docs/legacy-contract.md §2 layer A): the
 * shape, the types, the metric `type` enum and the string length limits.
 * Every problem is reported, as pydantic did; the legacy keys of dimensions
 * and metadata are mapped onto typed fields later, by the shared ingest path.
 */
export function decodeLegacyBatch(
  body: unknown,
): { ok: true; value: LegacyBatch } | { ok: false; errors: SchemaError[] } {
  const errors: SchemaError[] = [];
  if (!isObject(body)) {
    errors.push({
      type: "model_attributes_type",
      loc: ["body"],
      msg: "Input should be a valid dictionary or object to extract fields from",
      input: body,
    });
    return { ok: false, errors: sendable(errors) };
  }
  const envelope: Record<string, string | undefined> = {};
  for (const field of STRING_FIELDS) {
    const input = body[field.key];
    const loc = ["body", field.key];
    if (input === undefined) {
      if (field.required) errors.push({ type: "missing", loc, msg: "Field required", input: body });
    } else if (input === null && !field.required) {
      // optional and explicitly null: allowed
    } else if (typeof input !== "string") {
      errors.push({ type: "string_type", loc, msg: "Input should be a valid string", input });
    } else if ([...input].length > field.max) {
      errors.push({
        type: "string_too_long",
        loc,
        msg: `String should have at most ${field.max} characters`,
        input,
        ctx: { max_length: field.max },
      });
    } else {
      envelope[field.localName] = input;
    }
  }
  const events: Event[] = [];
  const timestampDisplays: (string | undefined)[] = [];
  if (!("metrics" in body)) {
    errors.push({ type: "missing", loc: ["body", "metrics"], msg: "Field required", input: body });
  } else if (!Array.isArray(body.metrics)) {
    errors.push({
      type: "list_type",
      loc: ["body", "metrics"],
      msg: "Input should be a valid list",
      input: body.metrics,
    });
  } else {
    body.metrics.forEach((metric: unknown, i: number) => {
      const decoded = decodeMetric(metric, i, errors);
      if (decoded) {
        events.push(decoded.event);
        timestampDisplays.push(decoded.display);
      }
    });
  }
  if (errors.length > 0) return { ok: false, errors: sendable(errors) };
  return {
    ok: true,
    value: {
      batch: {
        service: envelope.service ?? "",
        version: envelope.version,
        instanceId: envelope.instanceId,
        batchId: envelope.batchId,
        events,
      },
      timestampDisplays,
    },
  };
}
