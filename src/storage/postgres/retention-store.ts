import type pg from "pg";
import {
  type DatabaseSize,
  deleteExpiredSql,
  type RetentionStore,
  retainedTable,
} from "../retention.js";
import { NOW_TEXT, query } from "./pool.js";

/** The allow-listed table's name, or a throw (see {@link retainedTable}). */
const allowed = (table: string): string => retainedTable(table).name;

/**
 * Retention's statements on PostgreSQL. A batch deletes the oldest expired
 * rows through the timestamp index, skipping rows another replica's sweep
 * has locked (`FOR UPDATE SKIP LOCKED`), so that replicas sweeping at once
 * share the work instead of queueing on the same rows. Freed space is reused
 * by autovacuum; nothing is handed back by hand.
 */
export function pgRetentionStore(pool: pg.Pool): RetentionStore {
  const one = async <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []) =>
    (await query<T>(pool, sql, params)).rows[0] as T;
  return {
    async loadPolicies() {
      const result = await query<{
        table_name: string;
        retention_days: number;
        is_active: boolean;
      }>(pool, "SELECT table_name, retention_days, is_active FROM retention_policies");
      return result.rows.map((r) => ({
        tableName: r.table_name,
        retentionDays: r.retention_days,
        isActive: r.is_active,
      }));
    },
    async upsertPolicy(table, retentionDays, isActive) {
      await query(
        pool,
        `INSERT INTO retention_policies
           (table_name, retention_days, is_active, timestamp_column, origin, updated_at)
         VALUES ($1, $2, $3, 'timestamp', 'admin', ${NOW_TEXT})
         ON CONFLICT (table_name) DO UPDATE SET
           retention_days = excluded.retention_days, is_active = excluded.is_active,
           origin = 'admin', updated_at = excluded.updated_at`,
        [table, retentionDays, isActive],
      );
    },
    async countExpired(table, cutoff) {
      const row = await one<{ n: number }>(
        `SELECT count(*) AS n FROM ${allowed(table)} WHERE timestamp < $1`,
        [cutoff],
      );
      return row.n;
    },
    expiredRange: (table, cutoff) =>
      one<{ oldest: string | null; newest: string | null }>(
        `SELECT min(timestamp) AS oldest, max(timestamp) AS newest FROM ${allowed(table)}
         WHERE timestamp < $1`,
        [cutoff],
      ),
    async countAll(table) {
      return (await one<{ n: number }>(`SELECT count(*) AS n FROM ${allowed(table)}`)).n;
    },
    async deleteExpired(table, cutoff, limit) {
      const result = await query(
        pool,
        deleteExpiredSql(retainedTable(table), (n) => `$${n}`, " FOR UPDATE SKIP LOCKED"),
        [cutoff, limit],
      );
      return result.rowCount ?? 0;
    },
    async reclaim() {},
    tableStats(table, column) {
      const name = table === "api_keys" || table === "retention_policies" ? table : allowed(table);
      if (!["timestamp", "created_at", "updated_at"].includes(column)) {
        throw new Error(`not an age column: ${column}`);
      }
      return one<{ n: number; oldest: string | null; newest: string | null }>(
        `SELECT count(*) AS n, min(${column}) AS oldest, max(${column}) AS newest FROM ${name}`,
      );
    },
    /**
     * The contract's shape, from PostgreSQL's view: the size of the service's
     * tables (indexes and TOAST included) in its schema, in blocks.
     * PostgreSQL keeps no WAL or shared-memory file per schema, and space
     * freed by deletions is reused in place, so those read 0.
     */
    async databaseSize(): Promise<DatabaseSize> {
      const row = await one<{ bytes: number; block: string }>(
        `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8 AS bytes,
                current_setting('block_size') AS block
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relkind = 'r'`,
      );
      const pageSize = Number(row.block);
      return {
        mainDbBytes: row.bytes,
        walBytes: 0,
        shmBytes: 0,
        pageCount: Math.ceil(row.bytes / pageSize),
        pageSize,
        freePages: 0,
      };
    },
  };
}
