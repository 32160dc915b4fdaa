// backends: sqlite only: SQLite's migrations and pragmas (user_version, WAL), opened directly
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { MIGRATIONS, SCHEMA_VERSION } from "../../src/storage/migrations.js";
import { openDatabase, seedRetentionPolicies } from "../../src/storage/sqlite/database.js";
import { sqliteStepSql } from "../../src/storage/sqlite/migrations.js";
import { tempDir } from "../support/service.js";

const columns = (db: BetterSqlite3.Database, table: string) =>
  (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name);

describe("openDatabase", () => {
  const options = { synchronous: "FULL", busyTimeoutMillis: 100 } as const;

  it("should create the contract's tables and columns, in WAL mode, at the current schema version", () => {
    const path = join(tempDir(), "sub", "dir", "m.db");
    const db = openDatabase(path, options);
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("synchronous", { simple: true })).toBe(2);
    expect(db.pragma("auto_vacuum", { simple: true })).toBe(2);
    expect(columns(db, "metrics")).toEqual(
      expect.arrayContaining([
        "id",
        "request_id",
        "service",
        "service_version",
        "instance_id",
        "metric_type",
        "timestamp",
        "value",
        "duration_ms",
        "dimensions",
        "metadata",
        "created_at",
      ]),
    );
    expect(columns(db, "auth_metrics")).toEqual(
      expect.arrayContaining([
        "request_id",
        "timestamp",
        "service",
        "duration_ms",
        "success",
        "method",
        "server",
        "user_hash",
        "error_code",
        "created_at",
      ]),
    );
    expect(columns(db, "tool_metrics")).toEqual(
      expect.arrayContaining([
        "tool_name",
        "server_path",
        "server_name",
        "success",
        "client_name",
        "client_version",
        "method",
        "user_hash",
        "error_code",
        "input_size_bytes",
        "output_size_bytes",
      ]),
    );
    expect(columns(db, "discovery_metrics")).toEqual(
      expect.arrayContaining([
        "query",
        "results_count",
        "top_k_services",
        "top_n_tools",
        "embedding_time_ms",
        "faiss_search_time_ms",
      ]),
    );
    expect(columns(db, "api_keys")).toEqual(
      expect.arrayContaining([
        "key_hash",
        "service_name",
        "created_at",
        "last_used_at",
        "is_active",
        "rate_limit",
      ]),
    );
    expect(columns(db, "retention_policies")).toEqual(
      expect.arrayContaining([
        "table_name",
        "retention_days",
        "is_active",
        "created_at",
        "updated_at",
      ]),
    );
    db.close();
  });

  it("should lead every event index with the timestamp or a low-cardinality column (docs/dependencies.md trap 11)", () => {
    const db = openDatabase(":memory:", options);
    const indexes = db
      .prepare(
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name LIKE '%metrics'",
      )
      .all() as { name: string; tbl_name: string }[];
    const leading = indexes.map(
      (i) => (db.prepare(`PRAGMA index_info(${i.name})`).all() as { name: string }[])[0]?.name,
    );
    expect(new Set(leading)).toEqual(
      new Set(["timestamp", "metric_type", "service", "success", "method", "results_count"]),
    );
    db.close();
  });

  it("should reopen an existing database without changing it, and keep a policy set by an admin", () => {
    const path = join(tempDir(), "m.db");
    const first = openDatabase(path, options);
    seedRetentionPolicies(first, 90);
    first
      .prepare(
        "UPDATE retention_policies SET retention_days = 30, origin = 'admin' WHERE table_name = 'metrics'",
      )
      .run();
    first.close();
    const again = openDatabase(path, options);
    seedRetentionPolicies(again, 90);
    expect(
      again
        .prepare("SELECT table_name, retention_days FROM retention_policies ORDER BY table_name")
        .all(),
    ).toEqual([
      { table_name: "auth_metrics", retention_days: 90 },
      { table_name: "discovery_metrics", retention_days: 90 },
      { table_name: "metrics", retention_days: 30 },
      { table_name: "metrics_daily", retention_days: 1095 },
      { table_name: "metrics_daily_dimensions", retention_days: 1095 },
      { table_name: "metrics_daily_dimensions_all_services", retention_days: 1095 },
      { table_name: "metrics_hourly", retention_days: 365 },
      { table_name: "metrics_hourly_dimensions", retention_days: 365 },
      { table_name: "metrics_minutely", retention_days: 30 },
      { table_name: "tool_metrics", retention_days: 90 },
    ]);
    // METRICS_RETENTION_DAYS moves the raw tables only: the rollups keep their own.
    seedRetentionPolicies(again, 60);
    expect(
      again
        .prepare(
          "SELECT retention_days FROM retention_policies WHERE table_name IN ('tool_metrics', 'metrics_hourly') ORDER BY table_name",
        )
        .all(),
    ).toEqual([{ retention_days: 365 }, { retention_days: 60 }]);
    again.close();
  });

  it("should add key_service and target_kind to a version-5 database, its rows kept with NULL in them", () => {
    const path = join(tempDir(), "m.db");
    const raw = new BetterSqlite3(path);
    for (const step of MIGRATIONS.filter((m) => m.version <= 5)) raw.exec(sqliteStepSql(step));
    raw.pragma("user_version = 5");
    raw
      .prepare(
        "INSERT INTO metrics (request_id, service, metric_type, timestamp, value) VALUES ('r', 's', 'custom', '2026-12-01T00:00:00.000000Z', 1)",
      )
      .run();
    raw.close();
    const db = openDatabase(path, options);
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.prepare("SELECT service, key_service FROM metrics").all()).toEqual([
      { service: "s", key_service: null },
    ]);
    expect(columns(db, "auth_metrics")).toContain("target_kind");
    db.close();
  });

  it("should refuse a database written by a newer schema", () => {
    const path = join(tempDir(), "m.db");
    const raw = new BetterSqlite3(path);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    expect(() => openDatabase(path, options)).toThrow(/newer than this build supports/);
  });
});
