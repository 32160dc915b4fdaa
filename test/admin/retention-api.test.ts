import { Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, CleanupStatus } from "../../gen/mcp/metrics/v1/admin_pb.js";
import { apiKey, failure, GRPC } from "../support/clients.js";
import { postMetrics } from "../support/legacy.js";
import { countIn, onPostgres, startTestService, type TestService } from "../support/service.js";

const ADMIN_KEY = "admin-key-for-tests";
const DAY = 86_400_000;
/** The tables with a retention policy: the raw ones and the rollups, sorted. */
const RETAINED_TABLE_NAMES = [
  "auth_metrics",
  "discovery_metrics",
  "metrics",
  "metrics_daily",
  "metrics_daily_dimensions",
  "metrics_daily_dimensions_all_services",
  "metrics_hourly",
  "metrics_hourly_dimensions",
  "metrics_minutely",
  "tool_metrics",
];

/** An ISO timestamp `days` ago. */
const daysAgo = (days: number) => new Date(Date.now() - days * DAY).toISOString();

async function admin(
  svc: TestService,
  method: string,
  path: string,
  key: string | null = ADMIN_KEY,
  // biome-ignore lint/suspicious/noExplicitAny: the tests read the JSON answers field by field
): Promise<{ status: number; json: Record<string, any> }> {
  const res = await fetch(`${svc.url}${path}`, {
    method,
    headers: key === null ? {} : { "x-api-key": key },
  });
  // biome-ignore lint/suspicious/noExplicitAny: as above
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

/** Seeds, through the legacy API, `old` auth events 120 days old and `recent` ones from today. */
async function seedAuth(svc: TestService, old: number, recent: number) {
  const metric = (timestamp: string) => ({
    type: "auth_request",
    value: 1,
    timestamp,
    dimensions: { success: true, method: "jwt", server: "seeded" },
  });
  const batch = [
    ...Array.from({ length: old }, (_, i) => metric(daysAgo(120 + i / 1000))),
    ...Array.from({ length: recent }, () => metric(daysAgo(0.01))),
  ];
  for (let i = 0; i < batch.length; i += 100) {
    const res = await postMetrics(
      svc.url,
      { service: "test-service", metrics: batch.slice(i, i + 100) },
      { key: svc.key },
    );
    expect(res.json.accepted).toBe(Math.min(100, batch.length - i));
  }
}

describe("the HTTP admin API", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({ METRICS_ADMIN_API_KEY: ADMIN_KEY });
    await seedAuth(svc, 30, 20);
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should refuse an ingest key with 403 and no key with 401", async () => {
    for (const path of ["/admin/retention/policies", "/admin/database/size"]) {
      expect(await admin(svc, "GET", path, svc.key)).toEqual({
        status: 403,
        json: { detail: "Admin scope required: use an admin API key (METRICS_ADMIN_API_KEY)" },
      });
      expect((await admin(svc, "GET", path, null)).status).toBe(401);
      expect((await admin(svc, "GET", path, "wrong")).status).toBe(401);
    }
    const cleanup = await admin(svc, "POST", "/admin/retention/cleanup?dry_run=false", svc.key);
    expect(cleanup.status).toBe(403);
  });

  it("should list the default policies: 90 days on every event table, the rollups' own, by event timestamp", async () => {
    const { status, json } = await admin(svc, "GET", "/admin/retention/policies");
    expect(status).toBe(200);
    expect(Object.keys(json).sort()).toEqual(RETAINED_TABLE_NAMES);
    // The rollups are kept longer than the raw events (docs/history.md).
    expect(json.metrics_hourly).toMatchObject({ retention_days: 365, is_active: true });
    expect(json.metrics_daily).toMatchObject({ retention_days: 1095, is_active: true });
    expect(json.metrics_minutely).toMatchObject({ retention_days: 30, is_active: true });
    expect(json.auth_metrics).toEqual({
      table_name: "auth_metrics",
      retention_days: 90,
      is_active: true,
      timestamp_column: "timestamp",
    });
  });

  it("should preview what is expired without deleting it", async () => {
    const { status, json } = await admin(svc, "GET", "/admin/retention/preview");
    expect(status).toBe(200);
    expect(json.auth_metrics).toMatchObject({
      retention_days: 90,
      records_to_delete: 30,
      total_records: 50,
      percentage_to_delete: 60,
    });
    expect(json.metrics).toMatchObject({ records_to_delete: 30, total_records: 50 });
    expect(
      json.auth_metrics.oldest_record_to_delete < json.auth_metrics.newest_record_to_delete,
    ).toBe(true);
    expect(json.auth_metrics.newest_record_to_delete < json.auth_metrics.cutoff_date).toBe(true);
    const one = await admin(svc, "GET", "/admin/retention/preview?table_name=auth_metrics");
    expect(Object.keys(one.json)).toEqual(["auth_metrics"]);
    expect(await countIn(svc.sql, "auth_metrics")).toBe(50);
  });

  it("should only count on a cleanup without dry_run=false (the contract's default)", async () => {
    const { status, json } = await admin(svc, "POST", "/admin/retention/cleanup");
    expect(status).toBe(200);
    expect(Object.keys(json).sort()).toEqual([
      "completed_at",
      "duration_seconds",
      "operation",
      "started_at",
      "table_results",
      "tables_processed",
      "total_records_processed",
    ]);
    expect(json.operation).toBe("dry_run");
    expect(json.table_results.auth_metrics).toEqual({
      table: "auth_metrics",
      status: "dry_run",
      records_would_delete: 30,
    });
    expect(json.table_results.tool_metrics).toEqual({
      table: "tool_metrics",
      status: "completed",
      records_deleted: 0,
      reason: "no_records_to_delete",
    });
    expect(await countIn(svc.sql, "auth_metrics")).toBe(50);
  });

  it("should refuse tables off the allow-list, a retention below the floor, and bad parameters", async () => {
    for (const table of ["api_keys", "retention_policies", "sqlite_master", "metrics%20--"]) {
      const put = await admin(svc, "PUT", `/admin/retention/policies/${table}?retention_days=30`);
      expect(put.status).toBe(404);
      expect(put.json.detail).toMatch(/^No retention policy for table/);
      const clean = await admin(
        svc,
        "POST",
        `/admin/retention/cleanup?table_name=${table}&dry_run=false`,
      );
      expect(clean.status).toBe(404);
    }
    expect((await admin(svc, "GET", "/admin/retention/preview?table_name=api_keys")).status).toBe(
      404,
    );
    const floor = await admin(svc, "PUT", "/admin/retention/policies/metrics?retention_days=0");
    expect(floor).toEqual({
      status: 400,
      json: { detail: "retention_days must be at least 7, got 0" },
    });
    const huge = await admin(
      svc,
      "PUT",
      "/admin/retention/policies/metrics?retention_days=200000000",
    );
    expect(huge).toEqual({
      status: 400,
      json: { detail: "retention_days must be at most 36500, got 200000000" },
    });
    const malformed = await admin(
      svc,
      "PUT",
      "/admin/retention/policies/%E0%A4%A?retention_days=30",
    );
    expect(malformed.status).toBe(404);
    const missing = await admin(svc, "PUT", "/admin/retention/policies/metrics");
    expect(missing.status).toBe(422);
    expect(missing.json.detail[0]).toMatchObject({
      type: "missing",
      loc: ["query", "retention_days"],
    });
    const notInt = await admin(svc, "PUT", "/admin/retention/policies/metrics?retention_days=ten");
    expect(notInt.json.detail[0]).toMatchObject({ type: "int_parsing" });
    const badBool = await admin(svc, "POST", "/admin/retention/cleanup?dry_run=perhaps");
    expect(badBool.status).toBe(422);
    expect(badBool.json.detail[0]).toMatchObject({
      type: "bool_parsing",
      loc: ["query", "dry_run"],
    });
    expect(await countIn(svc.sql, "api_keys")).toBeGreaterThan(0);
    expect((await admin(svc, "GET", "/admin/retention/policies")).json.metrics.retention_days).toBe(
      90,
    );
  });

  it("should skip an inactive policy and delete only the expired rows of an active one", async () => {
    const off = await admin(
      svc,
      "PUT",
      "/admin/retention/policies/metrics?retention_days=90&is_active=false",
    );
    expect(off).toEqual({
      status: 200,
      json: {
        status: "success",
        message: "Updated retention policy for metrics",
        table_name: "metrics",
        retention_days: 90,
        is_active: false,
      },
    });
    const { json } = await admin(svc, "POST", "/admin/retention/cleanup?dry_run=false");
    expect(json.operation).toBe("cleanup");
    // As in the Python service, a summary leaves inactive policies out.
    expect(json.table_results.metrics).toBeUndefined();
    expect(json.table_results.auth_metrics).toMatchObject({
      table: "auth_metrics",
      status: "completed",
      records_deleted: 30,
      retention_days: 90,
    });
    // The minute rollups of the 100-day-old events are past their 30 days too;
    // the hourly and daily ones are kept.
    const minutely = json.table_results.metrics_minutely?.records_deleted ?? 0;
    expect(minutely).toBeGreaterThan(0);
    expect(json.table_results.metrics_hourly).toMatchObject({ records_deleted: 0 });
    expect(json.total_records_processed).toBe(30 + minutely);
    expect(await countIn(svc.sql, "auth_metrics")).toBe(20);
    expect(await countIn(svc.sql, "metrics")).toBe(50);
    const single = await admin(
      svc,
      "POST",
      "/admin/retention/cleanup?table_name=metrics&dry_run=false",
    );
    expect(single.json).toEqual({ table: "metrics", status: "skipped", reason: "policy_inactive" });
    await admin(svc, "PUT", "/admin/retention/policies/metrics?retention_days=90");
    const now = await admin(
      svc,
      "POST",
      "/admin/retention/cleanup?table_name=metrics&dry_run=false",
    );
    expect(now.json).toMatchObject({ table: "metrics", status: "completed", records_deleted: 30 });
    expect(await countIn(svc.sql, "metrics")).toBe(20);
  });

  it("should report every table's rows and ages, and the database's size", async () => {
    const stats = await admin(svc, "GET", "/admin/database/stats");
    expect(stats.status).toBe(200);
    expect(stats.json.auth_metrics).toMatchObject({
      record_count: 20,
      has_retention_policy: true,
      retention_days: 90,
      policy_active: true,
    });
    expect(stats.json.api_keys).toMatchObject({
      has_retention_policy: false,
      retention_days: null,
    });
    const size = await admin(svc, "GET", "/admin/database/size");
    expect(Object.keys(size.json).sort()).toEqual(
      [
        "main_db_bytes",
        "main_db_mb",
        "wal_bytes",
        "wal_mb",
        "shm_bytes",
        "shm_mb",
        "total_bytes",
        "total_mb",
        "total_gb",
        "page_count",
        "page_size",
        "free_pages",
        "used_pages",
        "database_efficiency",
      ].sort(),
    );
    // SQLite's page; PostgreSQL's block.
    expect(size.json.page_size).toBe(onPostgres ? 8192 : 16_384);
    expect(size.json.main_db_bytes).toBeGreaterThan(0);
    expect(size.json.used_pages).toBe(size.json.page_count - size.json.free_pages);
  });
});

describe("retention policies across a restart", () => {
  it("should keep an inactive policy inactive and a changed retention changed, and follow a new default elsewhere", async () => {
    const first = await startTestService({ METRICS_ADMIN_API_KEY: ADMIN_KEY });
    await admin(
      first,
      "PUT",
      "/admin/retention/policies/tool_metrics?retention_days=30&is_active=false",
    );
    await admin(first, "PUT", "/admin/retention/policies/auth_metrics?retention_days=14");
    await first.running.close();
    const second = await startTestService({
      METRICS_ADMIN_API_KEY: ADMIN_KEY,
      ...first.storageEnv,
    });
    const { json } = await admin(second, "GET", "/admin/retention/policies");
    expect(json.tool_metrics).toMatchObject({ retention_days: 30, is_active: false });
    expect(json.auth_metrics).toMatchObject({ retention_days: 14, is_active: true });
    expect(json.metrics).toMatchObject({ retention_days: 90, is_active: true });
    await second.running.close();
    // A new METRICS_RETENTION_DAYS moves the policies nobody changed, and only those.
    const third = await startTestService({
      METRICS_ADMIN_API_KEY: ADMIN_KEY,
      ...first.storageEnv,
      METRICS_RETENTION_DAYS: "45",
    });
    const after = (await admin(third, "GET", "/admin/retention/policies")).json;
    expect(after.metrics).toMatchObject({ retention_days: 45, is_active: true });
    expect(after.discovery_metrics).toMatchObject({ retention_days: 45 });
    expect(after.auth_metrics).toMatchObject({ retention_days: 14 });
    expect(after.tool_metrics).toMatchObject({ retention_days: 30, is_active: false });
    await third.close();
    await second.close();
    await first.close();
  });
});

describe("the admin RPCs", () => {
  let svc: TestService;
  const client = (key: string) =>
    createClient(AdminService, GRPC.transport(svc.url, [apiKey(key)]));
  beforeAll(async () => {
    svc = await startTestService({ METRICS_ADMIN_API_KEY: ADMIN_KEY });
    await seedAuth(svc, 10, 5);
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should run the same operations for an admin key", async () => {
    const rpc = client(ADMIN_KEY);
    const { policies } = await rpc.listRetentionPolicies({});
    expect(policies.map((p) => p.tableName).sort()).toEqual(RETAINED_TABLE_NAMES);
    const preview = await rpc.previewRetention({ tableName: "auth_metrics" });
    expect(preview.tables).toHaveLength(1);
    expect(preview.tables[0]).toMatchObject({ recordsToDelete: 10n, totalRecords: 15n });
    const dry = await rpc.runRetentionCleanup({ tableName: "auth_metrics" });
    expect(dry.results[0]).toMatchObject({
      status: CleanupStatus.DRY_RUN,
      recordsWouldDelete: 10n,
    });
    const done = await rpc.runRetentionCleanup({ dryRun: false });
    expect(done.operation).toBe("cleanup");
    // 10 from metrics, 10 from auth_metrics, and the minute rollups past their 30 days.
    const minuteRollups = done.results
      .filter((r) => r.tableName.startsWith("metrics_minutely"))
      .reduce((n, r) => n + r.recordsDeleted, 0n);
    expect(minuteRollups).toBeGreaterThan(0n);
    expect(done.totalRecordsProcessed).toBe(20n + minuteRollups);
    expect(await countIn(svc.sql, "auth_metrics")).toBe(5);
    const updated = await rpc.updateRetentionPolicy({ tableName: "metrics", retentionDays: 30 });
    expect(updated.policy).toMatchObject({
      tableName: "metrics",
      retentionDays: 30,
      isActive: true,
    });
    const stats = await rpc.getDatabaseStats({});
    expect(stats.tables.find((t) => t.tableName === "auth_metrics")?.recordCount).toBe(5n);
    const size = await rpc.getDatabaseSize({});
    expect(size.pageSize).toBe(onPostgres ? 8192 : 16_384);
    expect(size.usedPages).toBe(size.pageCount - size.freePages);
  });

  it("should refuse an ingest key with PERMISSION_DENIED and unknown tables with NOT_FOUND", async () => {
    const denied = await failure(client(svc.key).getDatabaseSize({}));
    expect(denied.code).toBe(Code.PermissionDenied);
    const unknown = await failure(
      client(ADMIN_KEY).runRetentionCleanup({ tableName: "api_keys", dryRun: false }),
    );
    expect(unknown.code).toBe(Code.NotFound);
    const floor = await failure(
      client(ADMIN_KEY).updateRetentionPolicy({ tableName: "metrics", retentionDays: 1 }),
    );
    expect(floor.code).toBe(Code.InvalidArgument);
    expect(floor.rawMessage).toBe("retention_days must be at least 7, got 1");
  });
});

describe("the retention schedule", () => {
  it("should sweep soon after start-up without being asked", async () => {
    const svc = await startTestService({
      METRICS_RETENTION_START_DELAY_MS: "1000",
      METRICS_RETENTION_INTERVAL_MS: "1000",
    });
    try {
      await seedAuth(svc, 25, 5);
      expect(await countIn(svc.sql, "auth_metrics")).toBe(30);
      await expect.poll(() => countIn(svc.sql, "auth_metrics"), { timeout: 10_000 }).toBe(5);
      expect(await countIn(svc.sql, "metrics")).toBe(5);
    } finally {
      await svc.close();
    }
  });
});

describe("a shutdown during a cleanup", () => {
  it("should stop the sweep after its batch and answer 503, not a short count", async () => {
    const svc = await startTestService({ METRICS_ADMIN_API_KEY: ADMIN_KEY });
    const old = new Date(Date.now() - 200 * DAY).toISOString().replace("Z", "000Z");
    // 200,000 old rows in one statement on either backend.
    await svc.sql.run(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
       INSERT INTO metrics (request_id, service, metric_type, timestamp, value)
       SELECT 'req_00000000000000bb', 'test-service', 'custom', ?, 1 FROM n`,
      old,
    );
    const cleanup = admin(svc, "POST", "/admin/retention/cleanup?table_name=metrics&dry_run=false");
    await new Promise((resolve) => setTimeout(resolve, 300));
    await svc.running.close();
    const answer = await cleanup;
    expect(answer).toEqual({
      status: 503,
      json: { detail: "the service is shutting down; retry later" },
    });
    const left = await countIn(svc.sql, "metrics");
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(200_000);
    await svc.close();
  });
});

describe("a policy change mid-sweep (docs/retention.md: it takes effect from that sweep's next batch)", () => {
  /** Rows per sweep batch here: a sweep of the rows below takes a hundred batches. */
  const BATCH = 500;
  const OLDER = 50_000;
  const NEWER = 20_000;

  /** `count` rows of `metrics` stamped `days` ago, in one statement on either backend. */
  async function seedAged(svc: TestService, count: number, days: number, service: string) {
    await svc.sql.run(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count})
       INSERT INTO metrics (request_id, service, metric_type, timestamp, value)
       SELECT 'req_00000000000000cc', ?, 'custom', ?, 1 FROM n`,
      service,
      new Date(Date.now() - days * DAY).toISOString().replace("Z", "000Z"),
    );
  }

  /** Starts a cleanup of `metrics`; resolves, with its answer to come, once its first batch is deleted. */
  async function sweepUnderWay(svc: TestService, total: number) {
    const cleanup = admin(svc, "POST", "/admin/retention/cleanup?table_name=metrics&dry_run=false");
    await expect
      .poll(() => countIn(svc.sql, "metrics"), { interval: 5, timeout: 10_000 })
      .toBeLessThan(total);
    return { cleanup };
  }

  it("should stop deleting from the next batch when the policy is deactivated during a sweep", async () => {
    const svc = await startTestService({
      METRICS_ADMIN_API_KEY: ADMIN_KEY,
      METRICS_RETENTION_BATCH_ROWS: String(BATCH),
    });
    try {
      await seedAged(svc, OLDER, 170, "aged");
      const { cleanup } = await sweepUnderWay(svc, OLDER);
      const off = await admin(
        svc,
        "PUT",
        "/admin/retention/policies/metrics?retention_days=90&is_active=false",
      );
      expect(off.status).toBe(200);
      // Rows left once the change is answered: the sweep was still under way.
      const atChange = await countIn(svc.sql, "metrics");
      expect(atChange).toBeGreaterThan(BATCH);
      const answer = await cleanup;
      const left = await countIn(svc.sql, "metrics");
      // At most the batch already running when the change came (PostgreSQL's
      // deletes are asynchronous; SQLite's run between two requests) is deleted
      // after it; no batch is started after it.
      expect(left).toBeGreaterThan(0);
      expect(atChange - left).toBeLessThanOrEqual(BATCH);
      expect(answer.status).toBe(200);
      expect(answer.json).toMatchObject({
        table: "metrics",
        status: "completed",
        records_deleted: OLDER - left,
      });
      // And the next sweep, with the policy inactive, deletes nothing.
      const next = await admin(svc, "POST", "/admin/retention/cleanup?dry_run=false");
      expect(next.json.table_results.metrics).toBeUndefined();
      expect(await countIn(svc.sql, "metrics")).toBe(left);
    } finally {
      await svc.close();
    }
  });

  it("should keep what a retention lengthened during a sweep keeps, from the next batch", async () => {
    const svc = await startTestService({
      METRICS_ADMIN_API_KEY: ADMIN_KEY,
      METRICS_RETENTION_BATCH_ROWS: String(BATCH),
    });
    try {
      // Oldest first: the 170-day-old rows go first, the 120-day-old ones after.
      await seedAged(svc, OLDER, 170, "older");
      await seedAged(svc, NEWER, 120, "newer");
      const { cleanup } = await sweepUnderWay(svc, OLDER + NEWER);
      const longer = await admin(
        svc,
        "PUT",
        "/admin/retention/policies/metrics?retention_days=150",
      );
      expect(longer.status).toBe(200);
      // The change came while the sweep was still on the older rows.
      expect(await countIn(svc.sql, "metrics", "service = 'older'")).toBeGreaterThan(0);
      expect(await countIn(svc.sql, "metrics", "service = 'newer'")).toBe(NEWER);
      const answer = await cleanup;
      // Within the new 150 days: every newer row kept; older than it: all deleted.
      expect(await countIn(svc.sql, "metrics", "service = 'newer'")).toBe(NEWER);
      expect(await countIn(svc.sql, "metrics", "service = 'older'")).toBe(0);
      expect(answer.json).toMatchObject({
        table: "metrics",
        status: "completed",
        records_deleted: OLDER,
      });
    } finally {
      await svc.close();
    }
  });
});
