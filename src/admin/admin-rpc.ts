import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type AdminService,
  CleanupStatus,
  type TableCleanupResultSchema,
} from "../../gen/mcp/metrics/v1/admin_pb.js";
import { admittedIn } from "../auth/admission.js";
import {
  type CleanupResult,
  type Retention,
  type RetentionPolicy,
  recordsProcessed,
} from "../storage/retention.js";
import { adminErrorOf, requireAdmin } from "./admin-errors.js";

const STORED_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z?$/;

/** A stored timestamp (event format, or SQLite's `datetime('now')`) as a protobuf Timestamp. */
export function timestampOf(text: string | null): Timestamp | undefined {
  const match = text === null ? null : STORED_TIME.exec(text);
  if (!match) return undefined;
  const seconds = Date.parse(`${match[1]}T${match[2]}Z`) / 1000;
  const nanos = Number((match[3] ?? "").padEnd(9, "0"));
  return { seconds: BigInt(seconds), nanos } as Timestamp;
}

function policyMessage(policy: RetentionPolicy) {
  return {
    tableName: policy.tableName,
    retentionDays: policy.retentionDays,
    isActive: policy.isActive,
    timestampColumn: policy.timestampColumn,
  };
}

function resultMessage(result: CleanupResult): MessageInitShape<typeof TableCleanupResultSchema> {
  const base = {
    tableName: result.table,
    reason: "",
    recordsDeleted: 0n,
    recordsWouldDelete: 0n,
    durationSeconds: 0,
    retentionDays: 0,
  };
  switch (result.status) {
    case "skipped":
      return { ...base, status: CleanupStatus.SKIPPED, reason: result.reason };
    case "dry_run":
      return {
        ...base,
        status: CleanupStatus.DRY_RUN,
        recordsWouldDelete: BigInt(result.recordsWouldDelete),
      };
    case "completed":
      return "reason" in result
        ? { ...base, status: CleanupStatus.COMPLETED, reason: result.reason }
        : {
            ...base,
            status: CleanupStatus.COMPLETED,
            recordsDeleted: BigInt(result.recordsDeleted),
            durationSeconds: result.durationSeconds,
            retentionDays: result.retentionDays,
          };
  }
}

/**
 * The admin RPCs: the same operations as the HTTP admin API, behind the same
 * door (key, admin scope, token: src/auth/admission.ts). Each operation
 * checks the admitted key's scope again, so that the service never runs
 * an admin operation for an ingest key however it is mounted.
 */
export function createAdminServiceImpl(retention: Retention): ServiceImpl<typeof AdminService> {
  /** Checks the scope, runs the operation, and turns its failure into the catalog's error. */
  const admin = async <T>(ctx: HandlerContext, operation: () => T | Promise<T>): Promise<T> => {
    requireAdmin(admittedIn(ctx.values)?.principal);
    try {
      return await operation();
    } catch (error) {
      throw adminErrorOf(error);
    }
  };

  return {
    listRetentionPolicies: (_req, ctx) =>
      admin(ctx, () => ({ policies: retention.policies().map(policyMessage) })),

    updateRetentionPolicy: (req, ctx) =>
      admin(ctx, async () => ({
        policy: policyMessage(
          await retention.updatePolicy(req.tableName, req.retentionDays, req.isActive ?? true),
        ),
      })),

    previewRetention: (req, ctx) =>
      admin(ctx, async () => {
        const previews = await retention.preview(req.tableName || undefined);
        return {
          tables: Object.entries(previews).map(([tableName, p]) => ({
            tableName,
            retentionDays: p.retentionDays,
            recordsToDelete: BigInt(p.recordsToDelete),
            totalRecords: BigInt(p.totalRecords),
            oldestRecordToDelete: timestampOf(p.oldestRecordToDelete),
            newestRecordToDelete: timestampOf(p.newestRecordToDelete),
            cutoff: timestampOf(p.cutoffDate),
            percentageToDelete: p.percentageToDelete,
          })),
        };
      }),

    runRetentionCleanup: (req, ctx) =>
      admin(ctx, async () => {
        const dryRun = req.dryRun ?? true;
        if (req.tableName) {
          const started = Date.now();
          const result = await retention.cleanupTable(req.tableName, dryRun);
          const completed = Date.now();
          return {
            operation: dryRun ? "dry_run" : "cleanup",
            totalRecordsProcessed: BigInt(recordsProcessed(result)),
            tablesProcessed: result.status === "skipped" ? 0 : 1,
            durationSeconds: (completed - started) / 1000,
            startedAt: timestampFromMs(started),
            completedAt: timestampFromMs(completed),
            results: [resultMessage(result)],
          };
        }
        const summary = await retention.cleanupAll(dryRun);
        return {
          operation: summary.operation,
          totalRecordsProcessed: BigInt(summary.totalRecordsProcessed),
          tablesProcessed: summary.tablesProcessed,
          durationSeconds: summary.durationSeconds,
          startedAt: timestampOf(summary.startedAt),
          completedAt: timestampOf(summary.completedAt),
          results: Object.values(summary.tableResults).map(resultMessage),
        };
      }),

    getDatabaseStats: (_req, ctx) =>
      admin(ctx, async () => {
        const stats = await retention.tableStats();
        return {
          tables: Object.entries(stats).map(([tableName, s]) => ({
            tableName,
            recordCount: BigInt(s.recordCount),
            oldestRecord: timestampOf(s.oldestRecord),
            newestRecord: timestampOf(s.newestRecord),
            hasRetentionPolicy: s.hasRetentionPolicy,
            ...(s.retentionDays === null ? {} : { retentionDays: s.retentionDays }),
            ...(s.policyActive === null ? {} : { policyActive: s.policyActive }),
          })),
        };
      }),

    getDatabaseSize: (_req, ctx) =>
      admin(ctx, async () => {
        const size = await retention.databaseSize();
        const used = size.pageCount - size.freePages;
        return {
          mainDbBytes: BigInt(size.mainDbBytes),
          walBytes: BigInt(size.walBytes),
          shmBytes: BigInt(size.shmBytes),
          totalBytes: BigInt(size.mainDbBytes + size.walBytes + size.shmBytes),
          pageCount: BigInt(size.pageCount),
          pageSize: size.pageSize,
          freePages: BigInt(size.freePages),
          usedPages: BigInt(used),
          databaseEfficiency: size.pageCount > 0 ? (used / size.pageCount) * 100 : 0,
        };
      }),
  };
}
