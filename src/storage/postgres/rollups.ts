import type pg from "pg";
import type { RollupBackfill, StoredEventRow } from "../rollup-backfill.js";
import {
  cellValues,
  GRAINS,
  HISTOGRAM_COLUMNS,
  insertColumns,
  PG_ROLLUPS,
  ROLLUP_KEYS,
  type RollupKind,
  type RollupRow,
  rollUp,
  rollupConflictClause,
  tablesOf,
} from "../rollups.js";
import { inTransaction } from "./pool.js";

/** One rollup table as the commit statement writes it. */
interface RollupTable {
  readonly name: string;
  readonly kind: RollupKind;
  readonly columns: readonly string[];
}

/** The rollup tables in statement order: each grain's tables in {@link tablesOf} order. */
const TABLES: readonly RollupTable[] = GRAINS.flatMap((g) =>
  tablesOf(g).map(({ name, kind }) => ({ name, kind, columns: insertColumns(kind) })),
);

/** A column's array type in the statement. */
function arrayType(column: string): string {
  if (["metric_type", "timestamp", "service", "dimension", "dimension_value"].includes(column))
    return "text";
  if (["count", "errors", "duration_count"].includes(column) || HISTOGRAM_COLUMNS.includes(column))
    return "int8";
  return "float8";
}

/** How a column of delta rows from several batches is summed into one row per key. */
function aggregate(column: string, keyColumns: readonly string[]): string {
  if (keyColumns.includes(column)) return column;
  if (column.startsWith("min_")) return `min(${column})`;
  if (column.startsWith("max_")) return `max(${column})`;
  if (column === "avg_value") return "sum(sum_value) / sum(count)";
  if (column === "avg_duration_ms")
    return "CASE WHEN sum(duration_count) > 0 THEN sum(sum_duration_ms) / sum(duration_count) END";
  return `sum(${column})`;
}

/**
 * One rollup table's data-modifying CTE for the commit statement, its arrays
 * numbered from `$first` (the batch key's first): the cells of the batches
 * whose claim succeeded (or that claim none), summed per key, added into
 * the table's rows in key order.
 */
function rollupCte(table: RollupTable, first: number): string {
  const keys = ROLLUP_KEYS[table.kind];
  const arrays = ["text", ...table.columns.map(arrayType)]
    .map((type, i) => `$${first + i}::${type}[]`)
    .join(", ");
  return `${table.name}_roll AS (
  INSERT INTO ${table.name} (${table.columns.join(", ")})
  SELECT ${table.columns.map((c) => aggregate(c, keys)).join(", ")}
  FROM unnest(${arrays}) AS r(k, ${table.columns.join(", ")})
  WHERE r.k IS NULL OR r.k IN (SELECT k FROM claimed)
  GROUP BY ${keys.join(", ")}
  ORDER BY ${keys.join(", ")}
  ${rollupConflictClause(PG_ROLLUPS, table.name, table.kind)}
)`;
}

/** The rollup tables' CTEs, numbered from `$first`, and how many parameters they take. */
export function rollupCtes(first: number): {
  readonly ctes: string[];
  readonly parameters: number;
} {
  let next = first;
  const ctes = TABLES.map((table) => {
    const cte = rollupCte(table, next);
    next += table.columns.length + 1;
    return cte;
  });
  return { ctes, parameters: next - first };
}

/**
 * The rollups' parameters of one commit: each batch's rows rolled up on
 * their own, led by the batch's key, so that only the batches whose claim
 * succeeds are added (a duplicate adds nothing).
 */
export function rollupParameters(
  batches: ReadonlyMap<string | null, readonly RollupRow[]>,
): unknown[][] {
  const arrays = new Map(
    TABLES.map((t) => [t.name, Array.from({ length: t.columns.length + 1 }, (): unknown[] => [])]),
  );
  const push = (table: string | undefined, key: string | null, values: readonly unknown[]) => {
    const columns = arrays.get(table ?? "") as unknown[][];
    (columns[0] as unknown[]).push(key);
    values.forEach((v, i) => {
      (columns[i + 1] as unknown[]).push(v);
    });
  };
  for (const [key, rows] of batches) {
    for (const cells of rollUp(rows)) {
      for (const { name, kind } of tablesOf(cells.grain)) {
        for (const c of cells[kind]) push(name, key, cellValues(kind, c));
      }
    }
  }
  return TABLES.flatMap((t) => arrays.get(t.name) as unknown[][]);
}

/**
 * The backfill on PostgreSQL: each step one transaction that locks the
 * progress row first, so a replica starting at the same time waits for the
 * step and then sees it done (see {@link RollupBackfill}).
 */
export function pgRollupBackfill(pool: pg.Pool): RollupBackfill {
  const { ctes, parameters } = rollupCtes(1);
  // The commit statement's CTEs, with no batch ids to claim.
  const write = `WITH claimed AS (SELECT NULL::text AS k WHERE false), ${ctes.join(", ")}
UPDATE rollup_backfill SET next_id = $${parameters + 1} WHERE id = 1`;
  return {
    step: (limit, rollupOf) =>
      inTransaction(pool, async (client) => {
        const s = (
          await client.query<{ next: number; end: number }>(
            "SELECT next_id AS next, end_id AS end FROM rollup_backfill WHERE id = 1 FOR UPDATE",
          )
        ).rows[0];
        if (s === undefined || s.next > s.end) return undefined;
        const { rows } = await client.query<StoredEventRow>(
          `SELECT id, service, metric_type AS "metricType", timestamp, value,
                  duration_ms AS "durationMs", dimensions, metadata
           FROM metrics WHERE id >= $1 AND id <= $2 ORDER BY id LIMIT $3`,
          [s.next, s.end, limit],
        );
        const next = rows.length < limit ? s.end + 1 : (rows.at(-1)?.id ?? s.end) + 1;
        await client.query(write, [
          ...rollupParameters(new Map([[null, rows.map(rollupOf)]])),
          next,
        ]);
        return { events: rows.length, next, end: s.end };
      }),
  };
}
