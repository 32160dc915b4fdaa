/** SQLite has no boolean: 1, 0, or NULL when unknown. */
export type SqlBool = 0 | 1 | null;

/** Columns of `auth_metrics` beyond the shared ones (contract §3). */
export interface AuthColumns {
  readonly success: SqlBool;
  readonly method: string | null;
  readonly server: string | null;
  readonly userHash: string | null;
  readonly errorCode: string | null;
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

/**
 * A row's values in the order of both backends' INSERTs: `metrics` from
 * `request_id` to `metadata`, and its specialized table's from `request_id`
 * on (booleans as 1, 0 or NULL, which PostgreSQL's `bool` reads too).
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
  ];
  const shared = [requestId, r.timestamp, r.service, r.durationMs];
  if (r.auth) {
    const a = r.auth;
    return {
      metrics,
      specialized: {
        table: "auth_metrics",
        values: [...shared, a.success, a.method, a.server, a.userHash, a.errorCode],
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
