import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "../log.js";
import type { History, Selection, StoredEvent } from "../query/history.js";
import { QueryRequestError, queryErrorOf, selectionOf } from "../query/query-rpc.js";
import type { RouteHandler } from "./admin-routes.js";
import { type AnyRequest, type AnyResponse, sendLegacyError } from "./respond.js";

/**
 * Events per statement while exporting: a chunk is all the route holds in
 * memory. Measured on SQLite, in process: 1,000 a chunk rendered 340,000
 * events/s, 2,000 about 300,000 and 5,000 about 160,000 (larger strings
 * outlive the young generation).
 */
const EXPORT_CHUNK = 1_000;

/** RFC 3339 with a zone: `2026-12-07T13:00:00Z`, `2026-12-07T14:00:00.5+01:00`. */
const RFC_3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** The CSV columns, in order. */
const CSV_COLUMNS = [
  "timestamp",
  "event_type",
  "service",
  "service_version",
  "instance_id",
  "value",
  "duration_ms",
  "dimensions",
  "metadata",
  "request_id",
  "key_service",
];

/** A time parameter as epoch ms (undefined when absent). */
function timeParameter(name: string, value: string | null): number | undefined {
  if (value === null || value === "") return undefined;
  const ms = RFC_3339.test(value) ? Date.parse(value.replace(" ", "T")) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new QueryRequestError(name, `'${value}' is not an RFC 3339 time (2026-12-07T13:00:00Z)`);
  }
  return ms;
}

/** The selection of a `GET /export` query: `event_type`, `start`, `end`, and every other parameter a filter. */
export function exportSelection(query: URLSearchParams, now: number): Selection {
  const filters: Record<string, string> = {};
  for (const [name, value] of query) {
    if (name === "event_type" || name === "start" || name === "end") continue;
    if (Object.hasOwn(filters, name)) {
      throw new QueryRequestError(name, "given twice: a filter is one value");
    }
    filters[name] = value;
  }
  const start = timeParameter("start", query.get("start"));
  const end = timeParameter("end", query.get("end"));
  return selectionOf(
    {
      eventType: query.get("event_type") ?? "",
      ...(start === undefined ? {} : { start: timestampFromMs(start) }),
      ...(end === undefined ? {} : { end: timestampFromMs(end) }),
      filters,
    },
    true,
    now,
  );
}

/** A CSV field (RFC 4180): quoted when it holds a comma, quote or line break. */
function csvField(value: string | number | null): string {
  if (value === null) return "";
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One event as a CSV record. */
export function csvLine(e: StoredEvent): string {
  return `${[
    e.timestamp,
    e.metricType,
    e.service,
    e.serviceVersion,
    e.instanceId,
    e.value,
    e.durationMs,
    e.dimensions ?? "{}",
    e.metadata ?? "{}",
    e.requestId,
    e.keyService,
  ]
    .map(csvField)
    .join(",")}\r\n`;
}

/** Each chunk of `chunks` as `render` makes it. */
async function* mapChunks<T>(
  chunks: AsyncIterable<T>,
  render: (chunk: T) => string,
): AsyncGenerator<string> {
  for await (const chunk of chunks) yield render(chunk);
}

/** Resolves once `res` may take more (or is gone). */
function drained(res: AnyResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** What the route needs. */
export interface ExportRouteOptions {
  readonly history: History;
  /** The door's admission once the request is read (key, scope, token); false once it answered a refusal. */
  readonly admit: (req: AnyRequest, res: AnyResponse) => Promise<boolean>;
  readonly log: Logger;
  readonly now?: () => number;
}

/**
 * `GET /export?event_type=...&start=...&end=...&<dimension>=<value>`: every
 * matching raw event, oldest first, streamed as NDJSON (or CSV when `Accept`
 * asks for `text/csv`) a chunk at a time, waiting for the client to take
 * each one, so memory stays flat whatever the range (docs/history.md).
 */
export function createExportRoute(options: ExportRouteOptions): RouteHandler {
  const now = options.now ?? Date.now;
  return async (req, res) => {
    if (!(await options.admit(req, res))) return;
    let selection: Selection;
    try {
      selection = exportSelection(new URL(req.url ?? "/", "http://x").searchParams, now());
    } catch (error) {
      const refusal = queryErrorOf(error);
      return sendLegacyError(res, refusal);
    }
    const csv = /\btext\/csv\b/.test(String(req.headers.accept ?? ""));
    res.writeHead(200, {
      "content-type": csv ? "text/csv; charset=utf-8" : "application/x-ndjson",
      "cache-control": "no-store",
    });
    if (csv) res.write(`${CSV_COLUMNS.join(",")}\r\n`);
    let closed = false;
    res.once("close", () => {
      closed = true;
    });
    const chunks = csv
      ? mapChunks(options.history.export(selection, EXPORT_CHUNK), (events) =>
          events.map(csvLine).join(""),
        )
      : options.history.exportNdjson(selection, EXPORT_CHUNK);
    try {
      for await (const text of chunks) {
        if (closed) return;
        if (text.length === 0) continue;
        if (!res.write(text)) await drained(res);
      }
      res.end();
    } catch (error) {
      // Headers are sent: the stream ends short, and the log says why.
      options.log.error({ err: error }, "export failed");
      res.destroy(error instanceof Error ? error : undefined);
    }
  };
}
