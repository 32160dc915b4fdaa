import type { ConnectError } from "@connectrpc/connect";
import { adminErrorOf } from "../admin/admin-errors.js";
import { errors } from "../errors.js";
import type { Logger } from "../log.js";
import type { CleanupResult, Retention } from "../storage/retention.js";
import { type AnyRequest, type AnyResponse, sendJson, sendLegacyError } from "./respond.js";

/** A route handler of the JSON API. */
export type RouteHandler = (req: AnyRequest, res: AnyResponse) => void | Promise<void>;

/** What the admin routes need from the JSON API around them. */
export interface AdminRoutesOptions {
  readonly retention: Retention;
  /** Authenticates, checks the admin scope and spends a token; answers the error itself when refused. */
  readonly admitAdmin: (req: AnyRequest, res: AnyResponse) => Promise<boolean>;
  /** Answers a refusal of the request, reporting it like the other routes' refusals. */
  readonly refuse: (req: AnyRequest, res: AnyResponse, error: ConnectError) => void;
  readonly log: Logger;
}

/**
 * A query parameter the request gives more than once, with how many times:
 * `?dry_run=false&dry_run=true` could mean either, and a destructive
 * operation must not hang on which one wins (FastAPI took the last).
 */
function repeatedParameter(query: URLSearchParams): { name: string; times: number } | undefined {
  const seen = new Map<string, number>();
  for (const name of query.keys()) seen.set(name, (seen.get(name) ?? 0) + 1);
  for (const [name, times] of seen) if (times > 1) return { name, times };
  return undefined;
}

/** The admin routes: exact paths, and the policy path with its `{table_name}`. */
export interface AdminRoutes {
  readonly exact: ReadonlyMap<string, ReadonlyMap<string, RouteHandler>>;
  /** The methods of a parameterized admin path, if it is one. */
  match(path: string): ReadonlyMap<string, RouteHandler> | undefined;
}

const POLICY_PATH = "/admin/retention/policies/";
const TRUE = new Set(["1", "on", "t", "true", "y", "yes"]);
const FALSE = new Set(["0", "off", "f", "false", "n", "no"]);

/** A FastAPI-style query-parameter error (docs/legacy-contract.md §1: 422 with pydantic's detail list). */
interface QueryError {
  type: string;
  loc: [string, string];
  msg: string;
  input: string | null;
}

/** Reads the query parameters the way FastAPI's `bool` and `int` parameters did. */
function queryReader(req: AnyRequest) {
  const query = new URL(req.url ?? "/", "http://localhost").searchParams;
  const problems: QueryError[] = [];
  return {
    problems,
    /** A parameter given more than once, if any: refused before anything runs. */
    repeated: repeatedParameter(query),
    /** A text parameter; empty counts as absent. */
    text: (name: string) => query.get(name) || undefined,
    bool(name: string, fallback: boolean): boolean {
      const raw = query.get(name);
      if (raw === null) return fallback;
      const value = raw.trim().toLowerCase();
      if (TRUE.has(value)) return true;
      if (FALSE.has(value)) return false;
      problems.push({
        type: "bool_parsing",
        loc: ["query", name],
        msg: "Input should be a valid boolean, unable to interpret input",
        input: raw,
      });
      return fallback;
    },
    requiredInt(name: string): number {
      const raw = query.get(name);
      if (raw === null) {
        problems.push({
          type: "missing",
          loc: ["query", name],
          msg: "Field required",
          input: null,
        });
        return 0;
      }
      if (!/^\s*[+-]?\d+\s*$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
        problems.push({
          type: "int_parsing",
          loc: ["query", name],
          msg: "Input should be a valid integer, unable to parse string as an integer",
          input: raw,
        });
        return 0;
      }
      return Number(raw);
    },
  };
}

/** The legacy JSON of one table's cleanup (docs/legacy-contract.md §3 `cleanup_table`). */
function cleanupJson(result: CleanupResult): Record<string, unknown> {
  switch (result.status) {
    case "skipped":
      return { table: result.table, status: result.status, reason: result.reason };
    case "dry_run":
      return {
        table: result.table,
        status: result.status,
        records_would_delete: result.recordsWouldDelete,
      };
    case "completed":
      return "reason" in result
        ? { table: result.table, status: result.status, records_deleted: 0, reason: result.reason }
        : {
            table: result.table,
            status: result.status,
            records_deleted: result.recordsDeleted,
            duration_seconds: result.durationSeconds,
            retention_days: result.retentionDays,
          };
  }
}

const round = (value: number, digits: number) => Number(value.toFixed(digits));

/**
 * The Python service's admin API (docs/legacy-contract.md §1, §3), same paths and shapes,
 * with its defects fixed: an admin-scoped key is required (docs/legacy-contract.md W10); a table off
 * the allow-list answers 404 without running SQL (docs/legacy-contract.md W11); a retention outside
 * its bounds answers 400; failures answer 5xx with a generic message, never a 200
 * carrying an error (docs/legacy-contract.md W17).
 */
export function createAdminRoutes(options: AdminRoutesOptions): AdminRoutes {
  const { retention, admitAdmin, log } = options;

  /** Admits, reads the query, runs, answers: the steps every admin route shares. */
  const route =
    (
      run: (
        query: ReturnType<typeof queryReader>,
        req: AnyRequest,
      ) => unknown | Promise<unknown> | undefined,
    ): RouteHandler =>
    async (req, res) => {
      if (!(await admitAdmin(req, res))) return;
      const query = queryReader(req);
      if (query.repeated) {
        const { name, times } = query.repeated;
        return options.refuse(req, res, errors.ambiguous("query parameter", name, times));
      }
      let body: unknown;
      let failure: unknown;
      try {
        body = await run(query, req);
      } catch (cause) {
        failure = cause ?? new Error("admin operation failed");
      }
      // Bad parameters win, as FastAPI validated them before the handler ran.
      if (query.problems.length > 0) return sendJson(res, 422, { detail: query.problems });
      if (failure === undefined) return sendJson(res, 200, body);
      const error = adminErrorOf(failure);
      if (error.cause !== undefined) log.error({ err: error.cause, path: req.url }, "admin failed");
      sendLegacyError(res, error);
    };

  const getPolicies = route(() =>
    Object.fromEntries(
      retention.policies().map((p) => [
        p.tableName,
        {
          table_name: p.tableName,
          retention_days: p.retentionDays,
          is_active: p.isActive,
          timestamp_column: p.timestampColumn,
        },
      ]),
    ),
  );

  const putPolicy = route(async (query, req) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    let table: string;
    try {
      table = decodeURIComponent(path.slice(POLICY_PATH.length));
    } catch {
      table = path.slice(POLICY_PATH.length); // malformed escapes name no table: 404 below
    }
    const retentionDays = query.requiredInt("retention_days");
    const isActive = query.bool("is_active", true);
    if (query.problems.length > 0) return undefined;
    const policy = await retention.updatePolicy(table, retentionDays, isActive);
    return {
      status: "success",
      message: `Updated retention policy for ${policy.tableName}`,
      table_name: policy.tableName,
      retention_days: policy.retentionDays,
      is_active: policy.isActive,
    };
  });

  const getPreview = route(async (query) => {
    const previews = await retention.preview(query.text("table_name"));
    return Object.fromEntries(
      Object.entries(previews).map(([table, p]) => [
        table,
        {
          retention_days: p.retentionDays,
          records_to_delete: p.recordsToDelete,
          total_records: p.totalRecords,
          oldest_record_to_delete: p.oldestRecordToDelete,
          newest_record_to_delete: p.newestRecordToDelete,
          cutoff_date: p.cutoffDate,
          percentage_to_delete: p.percentageToDelete,
        },
      ]),
    );
  });

  const postCleanup = route(async (query) => {
    const table = query.text("table_name");
    const dryRun = query.bool("dry_run", true);
    if (query.problems.length > 0) return undefined;
    if (table !== undefined) {
      return cleanupJson(await retention.cleanupTable(table, dryRun));
    }
    const summary = await retention.cleanupAll(dryRun);
    return {
      operation: summary.operation,
      total_records_processed: summary.totalRecordsProcessed,
      tables_processed: summary.tablesProcessed,
      duration_seconds: summary.durationSeconds,
      started_at: summary.startedAt,
      completed_at: summary.completedAt,
      table_results: Object.fromEntries(
        Object.entries(summary.tableResults).map(([t, r]) => [t, cleanupJson(r)]),
      ),
    };
  });

  const getStats = route(async () => {
    const stats = await retention.tableStats();
    return Object.fromEntries(
      Object.entries(stats).map(([table, s]) => [
        table,
        {
          record_count: s.recordCount,
          oldest_record: s.oldestRecord,
          newest_record: s.newestRecord,
          has_retention_policy: s.hasRetentionPolicy,
          retention_days: s.retentionDays,
          policy_active: s.policyActive,
        },
      ]),
    );
  });

  const getSize = route(async () => {
    const size = await retention.databaseSize();
    const mb = (bytes: number) => round(bytes / 1024 / 1024, 2);
    const total = size.mainDbBytes + size.walBytes + size.shmBytes;
    const used = size.pageCount - size.freePages;
    return {
      main_db_bytes: size.mainDbBytes,
      main_db_mb: mb(size.mainDbBytes),
      wal_bytes: size.walBytes,
      wal_mb: mb(size.walBytes),
      shm_bytes: size.shmBytes,
      shm_mb: mb(size.shmBytes),
      total_bytes: total,
      total_mb: mb(total),
      total_gb: round(total / 1024 / 1024 / 1024, 3),
      page_count: size.pageCount,
      page_size: size.pageSize,
      free_pages: size.freePages,
      used_pages: used,
      database_efficiency: size.pageCount > 0 ? round((used / size.pageCount) * 100, 2) : 0,
    };
  });

  const policyRoute = new Map([["PUT", putPolicy]]);
  return {
    exact: new Map([
      ["/admin/retention/policies", new Map([["GET", getPolicies]])],
      ["/admin/retention/preview", new Map([["GET", getPreview]])],
      ["/admin/retention/cleanup", new Map([["POST", postCleanup]])],
      ["/admin/database/stats", new Map([["GET", getStats]])],
      ["/admin/database/size", new Map([["GET", getSize]])],
    ]),
    match: (path) =>
      path.startsWith(POLICY_PATH) && path.length > POLICY_PATH.length ? policyRoute : undefined,
  };
}
