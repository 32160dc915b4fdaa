import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Event } from "../../gen/mcp/metrics/v1/events_pb.js";
import {
  EVENT_KINDS,
  type EventKind,
  KIND_BY_CASE,
  readTypedField,
  type TypedField,
} from "../catalog/catalog.js";
import type { Violation } from "../errors.js";
import { pyFloat, pyJsonDumps, pyLen, pyStr } from "./python-format.js";
import { pyIsoFormat } from "./timestamps.js";

/** A batch as both ingress paths present it to validation. */
export interface BatchInput {
  readonly service: string;
  readonly version?: string | undefined;
  readonly instanceId?: string | undefined;
  /** The emitter's id for this batch, which makes a retry of it safe (stored once). */
  readonly batchId?: string | undefined;
  readonly events: readonly Event[];
}

/**
 * How violations name fields. RPCs name proto fields (`events[0].auth_request.method`);
 * the legacy JSON route names its own keys (`metrics[0].dimensions.method`).
 */
export interface PathStyle {
  /** The array of events: `events` or `metrics`. */
  readonly events: string;
  /** Path of a typed field below its event, e.g. `auth_request.method`. */
  typedField(kind: EventKind, field: TypedField): string;
}

/** The kinds' proto names in field-number order, as the RPC's missing-kind message lists them. */
const KIND_NAMES_BY_NUMBER = [...EVENT_KINDS]
  .sort((a, b) => a.number - b.number)
  .map((k) => k.name)
  .join(", ");

/** Paths in proto field names, for the RPCs. */
export const RPC_PATHS: PathStyle = {
  events: "events",
  typedField: (kind, field) => `${kind.name}.${field.name}`,
};

/** Paths in legacy JSON keys, for `POST /metrics`. */
export const LEGACY_PATHS: PathStyle = {
  events: "metrics",
  typedField: (_kind, field) => `${field.origin}.${field.name}`,
};

/** Everything wrong with a batch, and what is merely suspicious. */
export interface ValidationResult {
  readonly violations: Violation[];
  /** Logged, never sent (docs/legacy-contract.md §2: warnings are only logged). */
  readonly warnings: string[];
}

/** The limits of docs/legacy-contract.md §2. The string limits are pydantic's, which fire before the validator's dead 100. */
export const LIMITS = {
  serviceMaxLength: 50,
  versionMaxLength: 20,
  instanceIdMaxLength: 50,
  batchIdMaxLength: 128,
  /**
   * Most events per batch unless configured (`METRICS_MAX_BATCH_EVENTS`). The
   * Python service took 100; the gateway's nginx flushes up to 1,024 at once.
   */
  maxEvents: 5000,
  maxFutureSkewSeconds: 300,
  oldAfterSeconds: 7 * 24 * 3600,
  minValue: -1e12,
  maxValue: 1e12,
  maxDurationMs: 86_400_000,
  maxDimensions: 20,
  dimensionKeyMaxLength: 50,
  dimensionValueMaxLength: 200,
  maxMetadata: 30,
  metadataKeyMaxLength: 50,
  metadataValueMaxLength: 1000,
  /** Deepest nesting of a dimension or metadata value (Python's recursion limit stopped it too). */
  maxNesting: 32,
} as const;

/** Whether a JSON value nests objects or arrays deeper than `max` (iterative: no stack to overflow). */
function nestedDeeperThan(value: JsonValue, max: number): boolean {
  const pending: [JsonValue, number][] = [[value, 0]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [v, depth] = next;
    if (v === null || typeof v !== "object") continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) pending.push([child, depth + 1]);
  }
  return false;
}

const SERVICE_PATTERN = /^[a-zA-Z0-9_-]+$/;
const INSTANCE_ID_PATTERN = /^[a-zA-Z0-9_.-]+$/;
const BATCH_ID_PATTERN = /^[A-Za-z0-9._:-]+$/;
const VERSION_PATTERN = /^\d+\.\d+\.\d+(-[a-zA-Z0-9.-]+)?$/;
const DIMENSION_KEY_PATTERN = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of google.protobuf.Timestamp. */
const MIN_SECONDS = -62_135_596_800n;
const MAX_SECONDS = 253_402_300_799n;

/** What is wrong with a batch id, if anything (1 to 128 characters of `[A-Za-z0-9._:-]`). */
export function batchIdProblem(batchId: string): string | undefined {
  if (batchId === "" || batchId.length > LIMITS.batchIdMaxLength) {
    return `Batch ID must be 1 to ${LIMITS.batchIdMaxLength} characters, got ${pyLen(batchId)}`;
  }
  if (!BATCH_ID_PATTERN.test(batchId)) {
    return "Batch ID must contain only alphanumeric characters, dots, underscores, colons, and hyphens";
  }
  return undefined;
}

/** Options of {@link validateBatch}. */
export interface ValidateOptions {
  /** Wall-clock milliseconds: the reference for timestamp checks. */
  readonly nowMs: number;
  readonly paths: PathStyle;
  /** How each event's timestamp was written, for messages (legacy JSON keeps Python's form). */
  readonly timestampDisplays?: readonly (string | undefined)[] | undefined;
  /** Most events in the batch (default {@link LIMITS.maxEvents}). */
  readonly maxEvents?: number | undefined;
}

/**
 * Applies the rule set of docs/legacy-contract.md §2 to a typed batch. Pure: the same input
 * and clock give the same result. The whole batch is judged: callers reject it
 * whole when any violation is found.
 */
export function validateBatch(batch: BatchInput, options: ValidateOptions): ValidationResult {
  const violations: Violation[] = [];
  const warnings: string[] = [];
  const fail = (field: string, description: string) => violations.push({ field, description });

  const service = batch.service;
  if (service === "") {
    fail("service", "Service name is required");
  } else if (pyLen(service) > LIMITS.serviceMaxLength) {
    fail(
      "service",
      `Service name too long: ${pyLen(service)} chars, max ${LIMITS.serviceMaxLength}`,
    );
  } else if (!SERVICE_PATTERN.test(service)) {
    fail(
      "service",
      "Service name must contain only alphanumeric characters, underscores, and hyphens",
    );
  }

  const version = batch.version;
  if (version) {
    if (pyLen(version) > LIMITS.versionMaxLength) {
      fail("version", `Version too long: ${pyLen(version)} chars, max ${LIMITS.versionMaxLength}`);
    } else if (version.includes(NUL)) {
      fail("version", "Version must not contain a NUL character (U+0000)");
    } else if (!VERSION_PATTERN.test(version)) {
      warnings.push(`Version '${version}' does not follow semantic versioning (x.y.z)`);
    }
  }

  const instanceId = batch.instanceId;
  if (instanceId) {
    if (pyLen(instanceId) > LIMITS.instanceIdMaxLength) {
      fail(
        "instance_id",
        `Instance ID too long: ${pyLen(instanceId)} chars, max ${LIMITS.instanceIdMaxLength}`,
      );
    } else if (!INSTANCE_ID_PATTERN.test(instanceId)) {
      fail(
        "instance_id",
        "Instance ID must contain only alphanumeric characters, underscores, dots, and hyphens",
      );
    }
  }

  const batchIdError = batch.batchId === undefined ? undefined : batchIdProblem(batch.batchId);
  if (batchIdError !== undefined) fail("batch_id", batchIdError);

  const { events } = batch;
  const eventsPath = options.paths.events;
  const maxEvents = options.maxEvents ?? LIMITS.maxEvents;
  if (events.length === 0) {
    fail(eventsPath, "At least one metric is required");
  } else if (events.length > maxEvents) {
    fail(eventsPath, `Too many metrics in request: ${events.length}, max ${maxEvents}`);
  } else {
    events.forEach((event, i) => {
      validateEvent(
        event,
        `${eventsPath}[${i}]`,
        options.timestampDisplays?.[i],
        options,
        fail,
        warnings,
      );
    });
  }
  return { violations, warnings };
}

function validateEvent(
  event: Event,
  path: string,
  timestampDisplay: string | undefined,
  options: ValidateOptions,
  fail: (field: string, description: string) => void,
  warnings: string[],
): void {
  const kind = event.kind.case === undefined ? undefined : KIND_BY_CASE.get(event.kind.case);
  if (kind === undefined) {
    fail(`${path}.kind`, `Event kind is required: set one of ${KIND_NAMES_BY_NUMBER}`);
  }

  if (event.timestamp !== undefined) {
    const ts = event.timestamp;
    // Formatted only for a message, once in range: a time past what a Date holds would throw.
    const display = () => timestampDisplay ?? pyIsoFormat(ts);
    validateTimestamp(ts, display, `${path}.timestamp`, options.nowMs, fail, warnings);
  }

  if (event.value === undefined) {
    if (kind?.valueRequired) fail(`${path}.value`, "Metric value is required");
  } else {
    validateValue(event.value, `${path}.value`, fail);
  }

  if (event.durationMs !== undefined) {
    const d = event.durationMs;
    if (Number.isNaN(d)) fail(`${path}.duration_ms`, "Duration cannot be NaN");
    if (d < 0) fail(`${path}.duration_ms`, `Duration cannot be negative: ${pyFloat(d)}`);
    if (d > LIMITS.maxDurationMs) {
      fail(
        `${path}.duration_ms`,
        `Duration too large: ${pyFloat(d)}ms, max ${pyFloat(LIMITS.maxDurationMs)}ms`,
      );
    }
  }

  const message = event.kind.value as unknown as Record<string, unknown> | undefined;
  validateMap(event.dimensions, "dimensions", message, path, kind, options.paths, fail, warnings);
  validateMap(event.metadata, "metadata", message, path, kind, options.paths, fail, warnings);
}

function validateTimestamp(
  ts: Timestamp,
  display: () => string,
  path: string,
  nowMs: number,
  fail: (field: string, description: string) => void,
  warnings: string[],
): void {
  if (
    ts.seconds < MIN_SECONDS ||
    ts.seconds > MAX_SECONDS ||
    ts.nanos < 0 ||
    ts.nanos > 999_999_999
  ) {
    fail(path, "Timestamp must be a valid time between 0001-01-01 and 9999-12-31 UTC");
    return;
  }
  const seconds = Number(ts.seconds) + ts.nanos / 1e9;
  const now = nowMs / 1000;
  if (seconds > now + LIMITS.maxFutureSkewSeconds) {
    fail(path, `Timestamp is too far in the future: ${display()}`);
  }
  if (seconds < now - LIMITS.oldAfterSeconds) {
    warnings.push(`Timestamp is very old: ${display()}`);
  }
}

function validateValue(
  value: number,
  path: string,
  fail: (field: string, description: string) => void,
): void {
  // Written as the Python comparison so NaN and infinities are "out of range" too (docs/legacy-contract.md §2).
  if (!(LIMITS.minValue <= value && value <= LIMITS.maxValue)) {
    fail(
      path,
      `Metric value out of range: ${pyFloat(value)}, must be between ${pyFloat(LIMITS.minValue)} and ${pyFloat(LIMITS.maxValue)}`,
    );
  }
  if (Number.isNaN(value)) fail(path, "Metric value cannot be NaN");
  else if (!Number.isFinite(value)) fail(path, "Metric value cannot be infinite");
}

/** The text whose length the legacy service limited: `str(v)`, or `json.dumps(v)` for metadata containers. */
function legacyText(value: JsonValue, origin: "dimensions" | "metadata"): string {
  if (origin === "metadata" && value !== null && typeof value === "object")
    return pyJsonDumps(value);
  return pyStr(value);
}

/**
 * Longest text Python's `str()` or `repr()` gives a number or a boolean
 * (`-1.2345678901234567e-308` is 24): values of these types cannot exceed a
 * length limit of at least this much, so their text is never built.
 */
const LONGEST_SCALAR_TEXT = 32;

/**
 * Whether a scalar's legacy text is surely within `max` code points without
 * building it: a string whose UTF-16 length is within it, any other scalar
 * when `max` is at least {@link LONGEST_SCALAR_TEXT}.
 */
function shortEnough(value: string | number | boolean, max: number): boolean {
  return typeof value === "string" ? value.length <= max : max >= LONGEST_SCALAR_TEXT;
}

/** The typed fields of the event's kind set on `message` that the legacy JSON carries in `origin`, with their values. */
function typedIn(
  message: Record<string, unknown> | undefined,
  kind: EventKind | undefined,
  origin: "dimensions" | "metadata",
): { readonly field: TypedField; readonly value: boolean | string | number }[] {
  const typed: { field: TypedField; value: boolean | string | number }[] = [];
  if (message === undefined || kind === undefined) return typed;
  for (const field of kind.fields) {
    if (field.origin !== origin) continue;
    const value = readTypedField(message, field);
    if (value !== undefined) typed.push({ field, value });
  }
  return typed;
}

/**
 * NUL, which a text column cannot hold on PostgreSQL (SQLite would store it):
 * refused in every value that may land in one, on both backends alike, so
 * that moving to PostgreSQL changes no answer. Values inside nested objects
 * and arrays are stored as escaped JSON text and may hold it.
 */
const NUL = "\u0000";
const nulMessage = (label: string) => `${label} value must not contain a NUL character (U+0000)`;

function validateMap(
  map: JsonObject | undefined,
  origin: "dimensions" | "metadata",
  message: Record<string, unknown> | undefined,
  eventPath: string,
  kind: EventKind | undefined,
  paths: PathStyle,
  fail: (field: string, description: string) => void,
  warnings: string[],
): void {
  const isDims = origin === "dimensions";
  const keys = map === undefined ? [] : Object.keys(map);
  const typed = typedIn(message, kind, origin);
  const count = keys.length + typed.length;
  const max = isDims ? LIMITS.maxDimensions : LIMITS.maxMetadata;
  const mapPath = `${eventPath}.${origin}`;
  if (count > max) {
    fail(
      mapPath,
      isDims
        ? `Too many dimensions: ${count}, max ${max}`
        : `Too many metadata fields: ${count}, max ${max}`,
    );
  }
  const valueMax = isDims ? LIMITS.dimensionValueMaxLength : LIMITS.metadataValueMaxLength;
  const label = isDims ? "Dimension" : "Metadata";

  for (const { field, value } of typed) {
    if (kind === undefined) break;
    const path = () => `${eventPath}.${paths.typedField(kind, field)}`;
    if (field.type === "enum" && !field.labels?.has(value as number)) {
      fail(
        path(),
        `Unknown value ${value}: expected one of ${[...(field.labels?.values() ?? [])].join(", ")}`,
      );
      continue;
    }
    if (typeof value === "string" && value.includes(NUL)) {
      fail(path(), nulMessage(label));
      continue;
    }
    if (field.type === "double" && !Number.isFinite(value)) {
      fail(path(), `${label} value must be a finite number, got ${pyFloat(value as number)}`);
      continue;
    }
    if (shortEnough(value, valueMax)) continue;
    const length = pyLen(field.type === "double" ? pyFloat(value as number) : pyStr(value));
    if (length > valueMax)
      fail(path(), `${label} value too long: ${length} chars, max ${valueMax}`);
  }
  if (keys.length === 0 || map === undefined) return;

  const keyMax = isDims ? LIMITS.dimensionKeyMaxLength : LIMITS.metadataKeyMaxLength;
  for (const key of keys) {
    const value = map[key] as JsonValue;
    if (key.length > keyMax && pyLen(key) > keyMax) {
      fail(`${mapPath}.${key}`, `${label} key too long: ${pyLen(key)} chars, max ${keyMax}`);
    } else if (isDims && !DIMENSION_KEY_PATTERN.test(key)) {
      fail(
        `${mapPath}.${key}`,
        "Dimension key must start with letter/underscore and contain only alphanumeric/underscore characters",
      );
    }
    if (kind && typed.some((t) => t.field.name === key)) {
      fail(
        `${mapPath}.${key}`,
        `${label} key repeats the typed field ${kind.name}.${key}; set only one of them`,
      );
    }
    if (value === null) continue;
    if (typeof value === "string" && value.includes(NUL)) {
      fail(`${mapPath}.${key}`, nulMessage(label));
      continue;
    }
    if (typeof value !== "object") {
      if (shortEnough(value, valueMax)) continue;
    } else if (nestedDeeperThan(value, LIMITS.maxNesting)) {
      fail(
        `${mapPath}.${key}`,
        `${label} value nested too deeply: max ${LIMITS.maxNesting} levels`,
      );
      continue;
    }
    const length = pyLen(legacyText(value, origin));
    if (length > valueMax)
      fail(`${mapPath}.${key}`, `${label} value too long: ${length} chars, max ${valueMax}`);
    if (isDims && typeof value === "object") {
      warnings.push(
        `Dimension value at ${mapPath}.${key} will be converted to string: ${Array.isArray(value) ? "list" : "dict"}`,
      );
    }
  }
}
