// backends: sqlite only: the catalog read from schemas, and SQLite's tables opened directly; PostgreSQL's tables are checked at every start of the postgres project's services and in test/scale-out/catalog-tables.test.ts
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import BetterSqlite3 from "better-sqlite3";
import { describe, expect, it } from "vitest";
import {
  CatalogError,
  EVENT_KINDS,
  RAW_TABLES,
  readCatalog,
  SPECIALIZED_TABLES,
} from "../../src/catalog/catalog.js";
import { catalogMigrationSql } from "../../src/storage/catalog-schema.js";
import { MIGRATIONS } from "../../src/storage/migrations.js";
import { openDatabase } from "../../src/storage/sqlite/database.js";
import { SQLITE_DIALECT } from "../../src/storage/sqlite/migrations.js";
import { tempDir } from "../support/service.js";

/** A kind that the catalog accepts, to build broken schemas around. */
const GOOD_KIND = `
message Good {
  option (mcp.metrics.v1.kind_catalog) = {
    table: "good_metrics"
    counter: {name: "good_total", description: "Good events"}
    labels: ["outcome"]
  };
  optional string outcome = 1 [(mcp.metrics.v1.field_catalog) = {column: true}];
}`;

/** Schemas that contradict themselves, each with the message that must name the fault. */
const BROKEN: readonly (readonly [name: string, body: string, message: RegExp])[] = [
  [
    "a kind without a catalog entry",
    "message Bare { optional string x = 1; }",
    /broken\d+\.Bare \(broken\d+\.Event\.bare\) has no \(kind_catalog\) option/,
  ],
  [
    "a kind with no instrument decision",
    'message Quiet { option (mcp.metrics.v1.kind_catalog) = { table: "" }; optional string x = 1; }',
    /broken\d+\.Quiet has no instrument decision/,
  ],
  [
    "a label that names no field",
    `message Labelled { option (mcp.metrics.v1.kind_catalog) = {
       counter: {name: "l_total", description: "L"} labels: ["missing"] };
     optional string x = 1; }`,
    /broken\d+\.Labelled: label missing names no typed field of Labelled/,
  ],
  [
    "a column on a kind without a table",
    `message Homeless { option (mcp.metrics.v1.kind_catalog) = { no_instruments: true };
     optional string x = 1 [(mcp.metrics.v1.field_catalog) = {column: true}]; }`,
    /broken\d+\.Homeless\.x: \(field_catalog\)\.column is set, but Homeless has no \(kind_catalog\)\.table/,
  ],
  [
    "a table without a column",
    `message Empty { option (mcp.metrics.v1.kind_catalog) = { table: "empty_metrics" no_instruments: true };
     optional string x = 1; }`,
    /broken\d+\.Empty: table empty_metrics is declared but no field is a column/,
  ],
  [
    "a typed field with no legacy key or column to live in",
    `message Nested { option (mcp.metrics.v1.kind_catalog) = { no_instruments: true };
     Good inner = 1; }`,
    /broken\d+\.Nested\.inner: a typed field must be a scalar or an enum/,
  ],
  [
    "two kinds claiming one table",
    `message Twin { option (mcp.metrics.v1.kind_catalog) = { table: "good_metrics" no_instruments: true };
     optional string y = 1 [(mcp.metrics.v1.field_catalog) = {column: true}]; }`,
    /table good_metrics is claimed by good and twin/,
  ],
  [
    "two fields read from one legacy key",
    `message Aliased { option (mcp.metrics.v1.kind_catalog) = { no_instruments: true };
     optional string a = 1;
     optional string b = 2 [(mcp.metrics.v1.field_catalog) = {legacy_aliases: ["a"]}]; }`,
    /broken\d+\.Aliased: legacy key a is read by both a and b/,
  ],
  [
    "a column named as every table's own",
    `message Shadow { option (mcp.metrics.v1.kind_catalog) = { table: "shadow_metrics" no_instruments: true };
     optional string service = 1 [(mcp.metrics.v1.field_catalog) = {column: true}]; }`,
    /broken\d+\.Shadow\.service: a column may not be named service \(every specialized table has it already\)/,
  ],
  [
    "a table the schema reserves",
    `message Keys { option (mcp.metrics.v1.kind_catalog) = { table: "api_keys" no_instruments: true };
     optional string x = 1 [(mcp.metrics.v1.field_catalog) = {column: true}]; }`,
    /broken\d+\.Keys: table api_keys is a name the schema or SQL reserves/,
  ],
  [
    "a histogram source without a histogram",
    `message Sourced { option (mcp.metrics.v1.kind_catalog) = {
       value_required: true counter: {name: "s_total", description: "S"}
       histogram_source: HISTOGRAM_SOURCE_VALUE_SECONDS };
     optional string x = 1; }`,
    /broken\d+\.Sourced: histogram_source is set, but the kind has no histogram/,
  ],
  [
    "an outcome that is no bool field",
    `message Judged { option (mcp.metrics.v1.kind_catalog) = {
       counter: {name: "j_total", description: "J"} outcome: "verdict" };
     optional string verdict = 1; }`,
    /broken\d+\.Judged: outcome verdict names no bool field of Judged/,
  ],
];

/** Compiles each broken schema (with catalog.proto) with buf, and returns each one's `Event`. */
function brokenEvents() {
  const root = tempDir();
  mkdirSync(join(root, "mcp/metrics/v1"), { recursive: true });
  copyFileSync("proto/mcp/metrics/v1/catalog.proto", join(root, "mcp/metrics/v1/catalog.proto"));
  BROKEN.forEach(([, body], i) => {
    const member = /message (\w+)/.exec(body)?.[1] ?? "";
    const snake = member.replace(/[A-Z]/g, (c, at) => (at ? "_" : "") + c.toLowerCase());
    writeFileSync(
      join(root, `case${i}.proto`),
      `syntax = "proto3";
package broken${i};
import "mcp/metrics/v1/catalog.proto";
message Event { oneof kind { Good good = 1; ${member} ${snake} = 2; } }
${GOOD_KIND}
${body}
`.replace(/broken\d+/, `broken${i}`),
    );
  });
  const out = join(root, "image.binpb");
  execFileSync("npx", ["buf", "build", root, "-o", out], { stdio: "pipe" });
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(out)));
  return BROKEN.map((_, i) => {
    const event = registry.getMessage(`broken${i}.Event`);
    if (event === undefined) throw new Error(`broken${i}.Event not built`);
    return event;
  });
}

describe("the event catalog", () => {
  it("should list the legacy types in the Python MetricType enum's order", () => {
    expect(EVENT_KINDS.map((k) => k.name)).toEqual([
      "auth_request",
      "tool_discovery",
      "tool_execution",
      "registry_operation",
      "health_check",
      "protocol_latency",
      "custom",
    ]);
    expect(RAW_TABLES).toEqual(["metrics", "auth_metrics", "discovery_metrics", "tool_metrics"]);
  });

  it("should give every kind an instrument decision and every label a bounded typed field", () => {
    for (const kind of EVENT_KINDS) {
      expect(kind.counter ?? kind.histogram, kind.name).toBeDefined();
      const names = new Set(kind.fields.map((f) => f.name));
      for (const label of kind.labels) expect(names.has(label), `${kind.name}.${label}`).toBe(true);
      // Unbounded and personal values stay in the database, never in a label.
      expect(kind.labels, kind.name).not.toContain("user_hash");
      expect(kind.labels, kind.name).not.toContain("query");
    }
  });

  it("should refuse a schema that contradicts itself, naming the message and field at fault", () => {
    const events = brokenEvents();
    // The good kind alone is accepted: each failure below is its case's own.
    BROKEN.forEach(([name, , message], i) => {
      const event = events[i];
      if (event === undefined) throw new Error(name);
      expect(() => readCatalog(event), name).toThrow(CatalogError);
      expect(() => readCatalog(event), name).toThrow(message);
    });
  }, 60_000);
});

/**
 * The catalog's statements of each released schema version, as SQLite runs
 * them. A released version never changes: a column added to the catalog
 * without `column_since` would land in version 1, which databases already
 * created never run again, and they would store NULL in it.
 */
const RELEASED = 6;

describe("the schema the catalog makes", () => {
  it("should leave every released schema version as it was released", () => {
    const released = JSON.parse(
      readFileSync("test/fixtures/catalog/released-schema.json", "utf8"),
    ) as Record<string, string>;
    for (const step of MIGRATIONS.filter((m) => m.version <= RELEASED)) {
      expect(
        catalogMigrationSql(step.version, SQLITE_DIALECT),
        `schema version ${step.version} is released: give a new table or column its table_since or column_since`,
      ).toBe(released[step.version] ?? "");
    }
  });

  it("should refuse to start on tables that disagree with the catalog, naming each column", () => {
    const path = join(tempDir(), "m.db");
    openDatabase(path, { synchronous: "FULL", busyTimeoutMillis: 100 }).close();
    const raw = new BetterSqlite3(path);
    raw.exec("ALTER TABLE auth_metrics ADD COLUMN stray TEXT");
    raw.exec("ALTER TABLE tool_metrics DROP COLUMN client_version");
    raw.close();
    const open = () => openDatabase(path, { synchronous: "FULL", busyTimeoutMillis: 100 });
    expect(open).toThrow(/auth_metrics\.stray: the column has no source in the event catalog/);
    expect(open).toThrow(
      /tool_metrics\.client_version: the catalog stores typed field client_version there, but the table has no such column/,
    );
  });

  it("should create every specialized table with the shared columns and the catalog's, nothing else", () => {
    const db = openDatabase(":memory:", { synchronous: "FULL", busyTimeoutMillis: 100 });
    for (const table of SPECIALIZED_TABLES) {
      const columns = db
        .prepare<[string], { name: string }>("SELECT name FROM pragma_table_info(?)")
        .all(table.name)
        .map((c) => c.name);
      // A column added by a later version comes after created_at: compared as sets.
      expect(columns.sort()).toEqual(
        [
          "id",
          "request_id",
          "timestamp",
          "service",
          "duration_ms",
          ...table.fields.map((f) => f.column.name),
          "created_at",
        ].sort(),
      );
    }
    db.close();
  });
});
