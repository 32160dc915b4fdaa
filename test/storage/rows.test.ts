// backends: sqlite only: rows built from the catalog, as functions; no database
import { describe, expect, it } from "vitest";
import { EVENT_KINDS, SPECIALIZED_TABLES } from "../../src/catalog/catalog.js";
import {
  type EventRow,
  insertColumns,
  rowValues,
  specializedRowOf,
} from "../../src/storage/rows.js";

/**
 * A row of `metricType` whose every text column holds its own column's name,
 * so that a value in the wrong place shows as a name in the wrong place.
 */
function namedRow(metricType: string): EventRow {
  return {
    service: "service",
    serviceVersion: "service_version",
    instanceId: "instance_id",
    metricType,
    timestamp: "timestamp",
    value: 1,
    durationMs: 2,
    dimensions: "dimensions",
    metadata: "metadata",
    keyService: "key_service",
    specialized: specializedRowOf(metricType, (f) => (f.column?.type === "text" ? f.name : 0)),
    rollup: { dimensions: [], failed: false, latencyMs: 2 },
  };
}

/** Each text column's value, by column name; numbers and the request id left out. */
function textColumns(table: string, values: readonly unknown[]): [string, unknown][] {
  expect(values, table).toHaveLength(insertColumns(table).length);
  return insertColumns(table)
    .map(([name, type], i): [string, unknown] => [name, type === "text" ? values[i] : undefined])
    .filter(([name, value]) => value !== undefined && name !== "request_id");
}

describe("rowValues", () => {
  it("should put every value under its own column of INSERT_COLUMNS, for each table both backends write", () => {
    const written = new Set<string>();
    for (const { name: kind } of EVENT_KINDS) {
      const values = rowValues("req_1", namedRow(kind));
      for (const [name, value] of textColumns("metrics", values.metrics)) {
        expect(value, `metrics.${name}`).toBe(name === "metric_type" ? kind : name);
      }
      if (values.specialized === undefined) continue;
      const { table } = values.specialized;
      written.add(table);
      for (const [name, value] of textColumns(table, values.specialized.values)) {
        expect(value, `${table}.${name}`).toBe(name);
      }
    }
    expect([...written].sort()).toEqual(SPECIALIZED_TABLES.map((t) => t.name).sort());
    expect(written).toEqual(new Set(["auth_metrics", "discovery_metrics", "tool_metrics"]));
  });

  it("should refuse a specialized row whose value count is not its table's column count", () => {
    const row = namedRow("auth_request");
    const specialized = row.specialized;
    if (specialized === undefined) throw new Error("auth_request has a table");
    const short = { ...row, specialized: { ...specialized, values: specialized.values.slice(1) } };
    expect(() => rowValues("req_1", short)).toThrow(
      `${specialized.values.length - 1} values for the ${specialized.values.length} catalog columns of auth_metrics`,
    );
  });
});
