import {
  type ColumnType,
  KIND_BY_TYPE,
  SHARED_COLUMNS,
  SPECIALIZED_TABLES,
  type SpecializedTable,
  type TypedField,
} from "../catalog/catalog.js";
import type { RollupFacts } from "./rollups.js";

/** A column's value as bound: booleans as 1, 0 (which PostgreSQL's `bool` reads too), NULL when unknown. */
export type ColumnValue = string | number | null;

/** The row of a specialized table: the catalog's columns, in the table's field order. */
export interface SpecializedRow {
  readonly table: SpecializedTable;
  /** One per {@link SpecializedTable.fields}, in order. */
  readonly values: readonly ColumnValue[];
}

/**
 * The specialized row of an event of `metricType` whose each column takes
 * `columnOf` of its typed field; undefined when the kind has no table.
 */
export function specializedRowOf(
  metricType: string,
  columnOf: (field: TypedField) => ColumnValue,
): SpecializedRow | undefined {
  const table = KIND_BY_TYPE.get(metricType)?.table;
  return table && { table, values: table.fields.map(columnOf) };
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
  /** The row of the specialized table of its kind, if the kind has one (see the event catalog). */
  readonly specialized?: SpecializedRow | undefined;
  /** What the history's rollups count it by, written in the same commit (src/storage/rollups.ts). */
  readonly rollup: RollupFacts;
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

/** The universal table's columns, in the order of {@link rowValues}. */
const METRICS_COLUMNS: readonly (readonly [name: string, type: ColumnType])[] = [
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
];

/**
 * The tables every event row may be written to: `metrics`, then the
 * catalog's specialized tables in its order.
 */
export const EVENT_TABLES: readonly string[] = [
  "metrics",
  ...SPECIALIZED_TABLES.map((t) => t.name),
];

/**
 * The columns each table's INSERT names, in the order of {@link rowValues}:
 * `metrics`'s own, and for each specialized table the shared columns then the
 * catalog's. Both backends build their statements from this list.
 */
export const INSERT_COLUMNS: ReadonlyMap<
  string,
  readonly (readonly [name: string, type: ColumnType])[]
> = new Map([
  ["metrics", METRICS_COLUMNS],
  ...SPECIALIZED_TABLES.map(
    (t) =>
      [
        t.name,
        [...SHARED_COLUMNS, ...t.fields.map((f) => [f.column.name, f.column.type] as const)],
      ] as const,
  ),
]);

/** The INSERT columns of `table`, which must be one of {@link EVENT_TABLES}. */
export function insertColumns(
  table: string,
): readonly (readonly [name: string, type: ColumnType])[] {
  const columns = INSERT_COLUMNS.get(table);
  if (columns === undefined) throw new Error(`not an event table: ${table}`);
  return columns;
}

/**
 * A row's values in the order of {@link INSERT_COLUMNS}: its `metrics` row's,
 * and its specialized table's. A specialized row whose value count differs
 * from its table's columns throws: a value short or over would shift every
 * later column into the wrong one.
 */
export function rowValues(
  requestId: string,
  r: EventRow,
): {
  readonly metrics: unknown[];
  readonly specialized?: { readonly table: string; readonly values: unknown[] };
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
  const s = r.specialized;
  if (s === undefined) return { metrics };
  if (s.values.length !== s.table.fields.length) {
    throw new Error(
      `${s.values.length} values for the ${s.table.fields.length} catalog columns of ${s.table.name}`,
    );
  }
  return {
    metrics,
    specialized: {
      table: s.table.name,
      values: [requestId, r.timestamp, r.service, r.durationMs, ...s.values],
    },
  };
}
