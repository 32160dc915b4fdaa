import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type {
  AnsweredSchema,
  ForecastResponseSchema,
  QueryService,
  StoredEventSchema,
} from "../../gen/mcp/metrics/v1/query_pb.js";
import { admittedIn } from "../auth/admission.js";
import { mayRead } from "../auth/principal.js";
import { EVENT_KINDS, type EventKind, KIND_BY_TYPE } from "../catalog/catalog.js";
import { errors } from "../errors.js";
import { type Cell, type Grain, grainOf, quantileOf } from "../storage/rollups.js";
import { StorageError } from "../storage/storage-error.js";
import { type DayValue, fitTrend, holdout, MIN_DAYS, methodName } from "./forecast.js";
import {
  type Answered,
  BeyondRawRetentionError,
  BY_TYPE,
  type Cursor,
  type History,
  MEASURES,
  type Measure,
  millisOfStored,
  type Selection,
  type StoredEvent,
  USER_DIMENSION,
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

/** An answer's range and sources, and where the raw events are kept from now. */
function answeredMessage(a: Answered, history: History): MessageInitShape<typeof AnsweredSchema> {
  return {
    start: timestampFromMs(a.startMs),
    end: timestampFromMs(a.endMs),
    rawKeptSince: timestampFromMs(Math.max(0, history.horizons().raw)),
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

/**
 * A measure's value in a step: count and errors are 0 where a step had no
 * events; the other measures have no value there (undefined).
 */
function stepValue(measure: Measure, cell: Cell | undefined): number | undefined {
  if (cell !== undefined) return MEASURES[measure](cell);
  return measure === "count" || measure === "errors" ? 0 : undefined;
}

/** Series' measures: the rollups' and the raw events' distinct users. */
const SERIES_MEASURES = [...(Object.keys(MEASURES) as Measure[]), "active_users"] as const;

/** Refuses `active_users` for a type whose events carry no user. */
function requireUsers(kinds: readonly EventKind[]): void {
  const kind = kinds[0] as EventKind;
  if (!kind.fields.some((f) => f.name === USER_DIMENSION)) {
    const withUsers = EVENT_KINDS.filter((k) => k.fields.some((f) => f.name === USER_DIMENSION));
    throw new QueryRequestError(
      "measure",
      `active_users counts ${USER_DIMENSION} values, which ${kind.name} events do not have; the types with users are ${withUsers.map((k) => k.name).join(", ")}`,
    );
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
          answered: answeredMessage(answered, history),
        };
      }),

    series: (req, ctx) =>
      answering(ctx, async () => {
        // Split by type, a series may ask about every type at once.
        const selection = selectionOf(req, req.groupBy === BY_TYPE, now());
        const measure = oneOf("measure", req.measure, SERIES_MEASURES);
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
        const limit = boundedCount("limit", req.limit, 10, 100);
        if (measure === "active_users") {
          if (groupBy === BY_TYPE) {
            throw new QueryRequestError("group_by", "active_users is counted for one event_type");
          }
          requireUsers(selection.kinds);
          const active = await history.activeUsers({
            ...selection,
            step,
            ...(groupBy ? { groupBy } : {}),
            limit,
          });
          const at = stepsOf(floorTo(active.answered.startMs, step), active.answered.endMs, step);
          return {
            groups: active.groups.map(({ group, steps }) => ({
              group,
              points: at.map((ms) => ({ time: timestampFromMs(ms), value: steps.get(ms) ?? 0 })),
            })),
            answered: answeredMessage(active.answered, history),
          };
        }
        const { groups, answered } = await history.series({
          ...selection,
          step,
          measure,
          ...(groupBy ? { groupBy } : {}),
          limit,
        });
        // Measures that are 0 in an empty step have a point in every step.
        const filled = stepValue(measure, undefined) !== undefined;
        return {
          groups: groups.map(({ group, steps }) => {
            const at = filled
              ? stepsOf(floorTo(answered.startMs, step), answered.endMs, step)
              : [...steps.keys()].sort((a, b) => a - b);
            return {
              group,
              points: at.flatMap((ms) => {
                const value = stepValue(measure, steps.get(ms));
                return value === undefined ? [] : [{ time: timestampFromMs(ms), value }];
              }),
            };
          }),
          answered: answeredMessage(answered, history),
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
          answered: answeredMessage(answered, history),
        };
      }),

    forecast: (req, ctx) => answering(ctx, async () => forecastOf(history, req, now())),

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

/** Forecast's bounds, days. */
const FORECAST = {
  horizon: { fallback: 30, max: 365 },
  history: { fallback: 90, min: 14, max: 1095 },
};

/** Values a measure can take: all are at least 0, and a rate at most 1. */
function clampOf(measure: Measure): (v: number) => number {
  return measure === "error_rate" ? (v) => Math.min(1, Math.max(0, v)) : (v) => Math.max(0, v);
}

/** Answers a Forecast: the measure's whole days fitted (./forecast.ts), then projected. */
async function forecastOf(
  history: History,
  req: {
    readonly eventType: string;
    readonly measure: string;
    readonly horizonDays: number;
    readonly historyDays: number;
    readonly end?: Timestamp | undefined;
    readonly filters: Readonly<Record<string, string>>;
  },
  now: number,
): Promise<MessageInitShape<typeof ForecastResponseSchema>> {
  const measure =
    req.measure === ""
      ? "count"
      : oneOf("measure", req.measure, Object.keys(MEASURES) as Measure[]);
  const horizon = boundedCount(
    "horizon_days",
    req.horizonDays,
    FORECAST.horizon.fallback,
    FORECAST.horizon.max,
  );
  const days = boundedCount(
    "history_days",
    req.historyDays,
    FORECAST.history.fallback,
    FORECAST.history.max,
  );
  if (days < FORECAST.history.min) {
    throw new QueryRequestError(
      "history_days",
      `must be at least ${FORECAST.history.min}, got ${days}: a trend needs two weeks`,
    );
  }
  // Whole days that are over: an end in the future would add days of nothing.
  const endMs = Math.min(floorTo(req.end ? timestampMs(req.end) : now, "day"), floorTo(now, "day"));
  const daily = (startMs: number) => {
    const selection = selectionOf(
      { ...req, start: timestampFromMs(startMs), end: timestampFromMs(endMs) },
      false,
      now,
    );
    return { selection, answer: history.series({ ...selection, step: "day", measure, limit: 1 }) };
  };
  let { selection, answer } = daily(endMs - days * DAY_MS);
  try {
    await answer;
  } catch (error) {
    // Filters only the raw events answer: the history starts where they are kept.
    if (!(error instanceof BeyondRawRetentionError)) throw error;
    const keptFrom = ceilTo(error.keptSinceMs, "day");
    if (keptFrom >= endMs) throw error;
    ({ selection, answer } = daily(keptFrom));
  }
  const { groups, answered } = await answer;
  const steps = groups[0]?.steps ?? new Map<number, never>();
  // Whole days from the first with events: days before a service existed are no trend.
  const firstMs = Math.min(...steps.keys());
  const values: DayValue[] = [];
  for (let ms = Math.max(selection.startMs, firstMs); ms < endMs; ms += DAY_MS) {
    const value = stepValue(measure, steps.get(ms));
    if (value !== undefined) values.push({ day: (ms - selection.startMs) / DAY_MS, value });
  }
  const weekdayOf = (day: number) =>
    (new Date(selection.startMs + day * DAY_MS).getUTCDay() + 6) % 7;
  const point = (day: number, value: number) => ({
    time: timestampFromMs(selection.startMs + day * DAY_MS),
    value,
  });
  const fit = fitTrend(values, weekdayOf);
  if (fit === undefined) {
    // Not an error: a young service or a narrow filter has too few days yet.
    return {
      history: values.map((v) => point(v.day, v.value)),
      unavailable:
        values.length < MIN_DAYS
          ? `a forecast needs at least ${MIN_DAYS} days with a ${measure} value in the ${days} days before ${new Date(endMs).toISOString()}; there ${values.length === 1 ? "is 1" : `are ${values.length}`}`
          : `fewer than ${MIN_DAYS} of the ${values.length} days with a ${measure} value can be fitted: the others fall on weekdays that never have one`,
      answered: answeredMessage(answered, history),
    };
  }
  const clamp = clampOf(measure);
  const lastDay = (endMs - selection.startMs) / DAY_MS;
  const check = holdout(values, Math.min(horizon, Math.floor(values.length / 4)), weekdayOf, clamp);
  return {
    method: methodName(fit.weekly),
    history: values.map((v) => point(v.day, v.value)),
    fitted: values.map((v) => point(v.day, clamp(fit.at(v.day)))),
    forecast: Array.from({ length: horizon }, (_, i) => {
      const day = lastDay + i;
      const trend = fit.at(day);
      const half = fit.halfBand(day);
      // The band around the trend itself, each side then kept to the measure's values.
      return {
        ...point(day, clamp(trend)),
        lower: clamp(trend - half),
        upper: clamp(trend + half),
      };
    }),
    slopePerDay: fit.slopePerDay,
    weekly: fit.weekly,
    weekdayFactors: [...fit.weekdayFactors],
    residualSd: fit.residualSd,
    rSquared: fit.rSquared,
    ...(check === undefined
      ? {}
      : {
          holdout: {
            days: check.days,
            relativeError: check.relativeError,
            coverage: check.coverage,
          },
        }),
    answered: answeredMessage(answered, history),
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
