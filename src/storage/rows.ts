/** SQLite has no boolean: 1, 0, or NULL when unknown. */
export type SqlBool = 0 | 1 | null;

/** Columns of `auth_metrics` beyond the shared ones (contract §3). */
export interface AuthColumns {
  readonly success: SqlBool;
  readonly method: string | null;
  readonly server: string | null;
  readonly userHash: string | null;
  readonly errorCode: string | null;
  readonly targetKind: string | null;
}

/** Columns of `tool_metrics` beyond the shared ones (contract §3). */
export interface ToolColumns {
  readonly toolName: string | null;
  readonly serverPath: string | null;
  readonly serverName: string | null;
  readonly success: SqlBool;
  readonly clientName: string | null;
  readonly clientVersion: string | null;
  readonly method: string | null;
  readonly userHash: string | null;
  readonly errorCode: string | null;
  readonly inputSizeBytes: number | null;
  readonly outputSizeBytes: number | null;
}

/** Columns of `discovery_metrics` beyond the shared ones (contract §3). */
export interface DiscoveryColumns {
  readonly query: string | null;
  readonly resultsCount: number | null;
  readonly topKServices: number | null;
  readonly topNTools: number | null;
  readonly embeddingTimeMs: number | null;
  readonly faissSearchTimeMs: number | null;
}

/**
 * One accepted event as it is stored: a `metrics` row, plus the row of the
 * specialized table for its type, if it has one. Plain values only, ready to bind.
 */
export interface EventRow {
  readonly service: string;
  readonly serviceVersion: string | null;
  readonly instanceId: string | null;
  readonly metricType: string;
  /** ISO 8601 in UTC with microseconds, e.g. `2026-11-25T14:16:00.123456Z`: fixed width, so text order is time order. */
  readonly timestamp: string;
  readonly value: number;
  readonly durationMs: number | null;
  /** JSON object text of every dimension, typed ones included. */
  readonly dimensions: string;
  /** JSON object text of every metadata entry, typed ones included. */
  readonly metadata: string;
  /** The service of the API key that sent the event (it may report as another, `METRICS_KEY_SERVICE_BINDING`). */
  readonly keyService: string | null;
  readonly auth?: AuthColumns;
  readonly tool?: ToolColumns;
  readonly discovery?: DiscoveryColumns;
}

/** Fixed cost of a queued row in memory besides its JSON texts: the object, its short strings, the specialized columns. */
const ROW_OVERHEAD_BYTES = 512;

/**
 * About how much memory a row takes while it waits for a commit: dominated by
 * its dimension and metadata texts, which a batch may fill to the contract's
 * limits (up to ~30 KB of metadata per event).
 */
export function approximateRowBytes(row: EventRow): number {
  return ROW_OVERHEAD_BYTES + 2 * (row.dimensions.length + row.metadata.length);
}

/** The specialized tables, by the event kinds that have one. */
export type SpecializedTable = "auth_metrics" | "tool_metrics" | "discovery_metrics";

/** A column's PostgreSQL array element type, for the grouped `unnest` insert. */
export type PgColumnType = "text" | "float8" | "bool" | "int4" | "int8";

/** The tables every event row is written to. */
export type EventTable = "metrics" | SpecializedTable;

/**
 * The columns each table's INSERT names, in the order of {@link rowValues}:
 * both backends build their statements from this list, so a column added here
 * and in `rowValues` (a test checks that their lengths agree) is written by both.
 */
export const INSERT_COLUMNS: Readonly<
  Record<EventTable, readonly (readonly [name: string, pg: PgColumnType])[]>
> = {
  metrics: [
    ["request_id", "text"],
    ["service", "text"],
    ["service_version", "text"],
    ["instance_id", "text"],
    ["metric_type", "text"],
    ["timestamp", "text"],
    ["value", "float8"],
    ["duration_ms", "float8"],
    ["dimensions", "text"],
    ["metadata", "text"],
    ["key_service", "text"],
  ],
  auth_metrics: [
    ["request_id", "text"],
    ["timestamp", "text"],
    ["service", "text"],
    ["duration_ms", "float8"],
    ["success", "bool"],
    ["method", "text"],
    ["server", "text"],
    ["user_hash", "text"],
    ["error_code", "text"],
    ["target_kind", "text"],
  ],
  tool_metrics: [
    ["request_id", "text"],
    ["timestamp", "text"],
    ["service", "text"],
    ["duration_ms", "float8"],
    ["tool_name", "text"],
    ["server_path", "text"],
    ["server_name", "text"],
    ["success", "bool"],
    ["client_name", "text"],
    ["client_version", "text"],
    ["method", "text"],
    ["user_hash", "text"],
    ["error_code", "text"],
    ["input_size_bytes", "int8"],
    ["output_size_bytes", "int8"],
  ],
  discovery_metrics: [
    ["request_id", "text"],
    ["timestamp", "text"],
    ["service", "text"],
    ["duration_ms", "float8"],
    ["query", "text"],
    ["results_count", "int4"],
    ["top_k_services", "int4"],
    ["top_n_tools", "int4"],
    ["embedding_time_ms", "float8"],
    ["faiss_search_time_ms", "float8"],
  ],
};

/**
 * A row's values in the order of {@link INSERT_COLUMNS}: its `metrics` row's,
 * and its specialized table's (booleans as 1, 0 or NULL, which PostgreSQL's
 * `bool` reads too).
 */
export function rowValues(
  requestId: string,
  r: EventRow,
): {
  readonly metrics: unknown[];
  readonly specialized?: { readonly table: SpecializedTable; readonly values: unknown[] };
} {
  const metrics = [
    requestId,
    r.service,
    r.serviceVersion,
    r.instanceId,
    r.metricType,
    r.timestamp,
    r.value,
    r.durationMs,
    r.dimensions,
    r.metadata,
    r.keyService,
  ];
  const shared = [requestId, r.timestamp, r.service, r.durationMs];
  if (r.auth) {
    const a = r.auth;
    return {
      metrics,
      specialized: {
        table: "auth_metrics",
        values: [...shared, a.success, a.method, a.server, a.userHash, a.errorCode, a.targetKind],
      },
    };
  }
  if (r.tool) {
    const t = r.tool;
    return {
      metrics,
      specialized: {
        table: "tool_metrics",
        values: [
          ...shared,
          t.toolName,
          t.serverPath,
          t.serverName,
          t.success,
          t.clientName,
          t.clientVersion,
          t.method,
          t.userHash,
          t.errorCode,
          t.inputSizeBytes,
          t.outputSizeBytes,
        ],
      },
    };
  }
  if (r.discovery) {
    const d = r.discovery;
    return {
      metrics,
      specialized: {
        table: "discovery_metrics",
        values: [
          ...shared,
          d.query,
          d.resultsCount,
          d.topKServices,
          d.topNTools,
          d.embeddingTimeMs,
          d.faissSearchTimeMs,
        ],
      },
    };
  }
  return { metrics };
}
