import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type {
  AnsweredSchema,
  QueryService,
  StoredEventSchema,
} from "../../gen/mcp/metrics/v1/query_pb.js";
import { admittedIn } from "../auth/admission.js";
import { mayRead } from "../auth/principal.js";
import { EVENT_KINDS, type EventKind, KIND_BY_TYPE } from "../catalog/catalog.js";
import { errors } from "../errors.js";
import { type Grain, grainOf, quantileOf } from "../storage/rollups.js";
import { StorageError } from "../storage/storage-error.js";
import {
  type Answered,
  BeyondRawRetentionError,
  type Cursor,
  type History,
  MEASURES,
  type Measure,
  millisOfStored,
  type Selection,
  type StoredEvent,
} from "./history.js";
import { ceilTo, floorTo } from "./plan.js";

/** A request the query API refuses, naming the field at fault. */
export class QueryRequestError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "QueryRequestError";
  }
}

const DAY_MS = 86_400_000;
/** Most points per series. */
export const MAX_POINTS = 20_000;
const STEPS: readonly Grain[] = ["minute", "hour", "day"];
const ORDERS = ["count", "errors", "p95"] as const;
/** A dimension's name: a typed field or a legacy dimension key. */
const DIMENSION_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$/;

/** The kinds asked about: the one named, or all (when `optional`) for an empty name. */
export function kindsOf(eventType: string, optional: boolean): EventKind[] {
  if (eventType === "") {
    if (optional) return [...EVENT_KINDS];
    throw new QueryRequestError("event_type", "required: one of the legacy type names");
  }
  const kind = KIND_BY_TYPE.get(eventType);
  if (kind === undefined) {
    throw new QueryRequestError(
      "event_type",
      `unknown type '${eventType}'; the types are ${EVENT_KINDS.map((k) => k.name).join(", ")}`,
    );
  }
  return [kind];
}

/** A dimension name checked. */
export function dimensionName(field: string, name: string): string {
  if (!DIMENSION_NAME.test(name)) {
    throw new QueryRequestError(
      field,
      `'${name}' is not a dimension name (letters, digits, _ . : -; at most 100 characters)`,
    );
  }
  return name;
}

/** The common part of a request: type, range and filters. */
export function selectionOf(
  request: {
    readonly eventType: string;
    readonly start?: Timestamp | undefined;
    readonly end?: Timestamp | undefined;
    readonly filters: Readonly<Record<string, string>>;
  },
  optionalType: boolean,
  now: number,
): Selection {
  const kinds = kindsOf(request.eventType, optionalType);
  const endMs = request.end ? timestampMs(request.end) : now;
  const startMs = request.start ? timestampMs(request.start) : endMs - DAY_MS;
  if (!(startMs < endMs)) throw new QueryRequestError("start", "must be before end");
  const filters = new Map<string, string>();
  for (const [name, value] of Object.entries(request.filters)) {
    filters.set(dimensionName("filters", name), value);
  }
  return { kinds, startMs, endMs, filters };
}

/** A bounded count from a request, its default for 0. */
export function boundedCount(field: string, value: number, fallback: number, max: number): number {
  if (value === 0) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new QueryRequestError(field, `must be between 1 and ${max}, got ${value}`);
  }
  return value;
}

/** One of `allowed`, or the request error naming them. */
function oneOf<T extends string>(field: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new QueryRequestError(field, `must be one of ${allowed.join(", ")}, got '${value}'`);
}

/** The next page's token: where the page ended, opaque to clients. */
export function pageToken(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.timestamp, cursor.id])).toString("base64url");
}

/** A page token read back. */
export function cursorOf(token: string): Cursor | undefined {
  if (token === "") return undefined;
  try {
    const [timestamp, id] = JSON.parse(Buffer.from(token, "base64url").toString()) as unknown[];
    if (typeof timestamp === "string" && Number.isSafeInteger(id)) {
      return { timestamp, id: id as number };
    }
  } catch {
    // reported below
  }
  throw new QueryRequestError("page_token", "not a token this service gave");
}

/** A stored timestamp as a protobuf Timestamp, its microseconds kept. */
export function timestampOfStored(text: string): Timestamp {
  const ms = millisOfStored(text);
  const micros = Number(text.slice(20, 26).padEnd(6, "0"));
  const ts = timestampFromMs(Math.floor(ms / 1000) * 1000);
  ts.nanos = micros * 1000;
  return ts;
}

/** Stored JSON object text as an object ({} when there is none). */
function jsonOf(text: string | null): JsonObject {
  return text === null ? {} : (JSON.parse(text) as JsonObject);
}

/** A stored event as its message. */
export function storedEventMessage(e: StoredEvent): MessageInitShape<typeof StoredEventSchema> {
  return {
    eventType: e.metricType,
    timestamp: timestampOfStored(e.timestamp),
    service: e.service,
    serviceVersion: e.serviceVersion ?? "",
    instanceId: e.instanceId ?? "",
    value: e.value,
    ...(e.durationMs === null ? {} : { durationMs: e.durationMs }),
    dimensions: jsonOf(e.dimensions),
    metadata: jsonOf(e.metadata),
    requestId: e.requestId,
    keyService: e.keyService ?? "",
  };
}

function answeredMessage(a: Answered): MessageInitShape<typeof AnsweredSchema> {
  return {
    start: timestampFromMs(a.startMs),
    end: timestampFromMs(a.endMs),
    sources: a.sources.map((s) => ({
      grain: s.grain,
      start: timestampFromMs(s.startMs),
      end: timestampFromMs(s.endMs),
    })),
  };
}

/** The error a failed question is answered with. */
export function queryErrorOf(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof QueryRequestError)
    return new ConnectError(error.message, Code.InvalidArgument);
  if (error instanceof BeyondRawRetentionError) {
    return new ConnectError(error.message, Code.FailedPrecondition);
  }
  if (error instanceof StorageError && error.failure !== "internal") {
    return new ConnectError(
      "the history could not be read: the database did not answer; retry shortly",
      Code.Unavailable,
      undefined,
      undefined,
      error,
    );
  }
  return errors.internal(error);
}

/** Refuses a caller without the read scope (the door already did; this is its second line). */
function requireRead(ctx: HandlerContext): void {
  const principal = admittedIn(ctx.values)?.principal;
  if (principal === undefined || !mayRead(principal.scope)) {
    throw new ConnectError(
      "querying needs a key with the read or admin scope",
      Code.PermissionDenied,
    );
  }
}

/** Runs a handler's work, its failures as the query API answers them. */
async function answering<T>(ctx: HandlerContext, work: () => Promise<T>): Promise<T> {
  requireRead(ctx);
  try {
    return await work();
  } catch (error) {
    throw queryErrorOf(error);
  }
}

/** Events per Export message. */
const EXPORT_CHUNK = 500;

/** The QueryService over the history (docs/history.md). */
export function createQueryServiceImpl(
  history: History,
  now: () => number = Date.now,
): ServiceImpl<typeof QueryService> {
  return {
    summary: (req, ctx) =>
      answering(ctx, async () => {
        const { types, answered } = await history.summary(selectionOf(req, true, now()));
        return {
          types: types.map(({ eventType, cell }) => ({
            eventType,
            events: BigInt(cell.count),
            errors: BigInt(cell.errors),
            errorRate: cell.count > 0 ? cell.errors / cell.count : 0,
            timedEvents: BigInt(cell.timed),
            ...optional("p50Ms", quantileOf(cell, 0.5)),
            ...optional("p95Ms", quantileOf(cell, 0.95)),
            ...optional("p99Ms", quantileOf(cell, 0.99)),
            ...optional("meanMs", MEASURES.mean_duration(cell)),
          })),
          answered: answeredMessage(answered),
        };
      }),

    series: (req, ctx) =>
      answering(ctx, async () => {
        const selection = selectionOf(req, false, now());
        const measure = oneOf<Measure>("measure", req.measure, Object.keys(MEASURES) as Measure[]);
        const step = oneOf("step", req.step, STEPS);
        const points =
          (ceilTo(selection.endMs, step) - floorTo(selection.startMs, step)) / stepMillis(step);
        if (points > MAX_POINTS) {
          throw new QueryRequestError(
            "step",
            `${step} over this range is ${points} points, more than ${MAX_POINTS}: use a coarser step or a shorter range`,
          );
        }
        const groupBy = req.groupBy === "" ? undefined : dimensionName("group_by", req.groupBy);
        const { groups, answered } = await history.series({
          ...selection,
          step,
          measure,
          ...(groupBy ? { groupBy } : {}),
          limit: boundedCount("limit", req.limit, 10, 100),
        });
        const of = MEASURES[measure];
        // Counts are 0 where a step had no events; the other measures have no value there.
        const fill = measure === "count" || measure === "errors";
        return {
          groups: groups.map(({ group, steps }) => {
            const at = fill
              ? stepsOf(floorTo(answered.startMs, step), answered.endMs, step)
              : [...steps.keys()].sort((a, b) => a - b);
            return {
              group,
              points: at.flatMap((ms) => {
                const cell = steps.get(ms);
                const value = cell ? of(cell) : fill ? 0 : undefined;
                return value === undefined ? [] : [{ time: timestampFromMs(ms), value }];
              }),
            };
          }),
          answered: answeredMessage(answered),
        };
      }),

    top: (req, ctx) =>
      answering(ctx, async () => {
        const selection = selectionOf(req, false, now());
        if (req.dimension === "") throw new QueryRequestError("dimension", "required");
        const { rows, answered } = await history.top({
          ...selection,
          dimension: dimensionName("dimension", req.dimension),
          limit: boundedCount("limit", req.limit, 10, 1000),
          order: req.order === "" ? "count" : oneOf("order", req.order, ORDERS),
        });
        return {
          rows: rows.map(({ value, cell }) => ({
            value,
            count: BigInt(cell.count),
            errors: BigInt(cell.errors),
            ...optional("p95Ms", quantileOf(cell, 0.95)),
          })),
          answered: answeredMessage(answered),
        };
      }),

    events: (req, ctx) =>
      answering(ctx, async () => {
        const selection = selectionOf(req, true, now());
        const page = await history.events(
          selection,
          boundedCount("page_size", req.pageSize, 100, 1000),
          cursorOf(req.pageToken),
        );
        return {
          events: page.events.map(storedEventMessage),
          nextPageToken: page.next ? pageToken(page.next) : "",
        };
      }),

    async *export(req, ctx) {
      requireRead(ctx);
      let selection: Selection;
      try {
        selection = selectionOf(req, true, now());
      } catch (error) {
        throw queryErrorOf(error);
      }
      try {
        for await (const chunk of history.export(selection, EXPORT_CHUNK)) {
          if (chunk.length > 0) yield { events: chunk.map(storedEventMessage) };
        }
      } catch (error) {
        throw queryErrorOf(error);
      }
    },
  };
}

/** `{ [name]: value }` when the value is defined. */
function optional<K extends string>(name: K, value: number | undefined): { [P in K]?: number } {
  return (value === undefined ? {} : { [name]: value }) as { [P in K]?: number };
}

function stepMillis(step: Grain): number {
  return grainOf(step).millis;
}

/** Every step start in [start, end). */
function stepsOf(startMs: number, endMs: number, step: Grain): number[] {
  const out: number[] = [];
  for (let at = startMs; at < endMs; at += stepMillis(step)) out.push(at);
  return out;
}
