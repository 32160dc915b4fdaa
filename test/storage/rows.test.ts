import { describe, expect, it } from "vitest";
import {
  type EventRow,
  type EventTable,
  INSERT_COLUMNS,
  rowValues,
} from "../../src/storage/rows.js";

/**
 * A row of `kind` whose every text column holds its own column's name, so
 * that a value in the wrong place shows as a name in the wrong place.
 */
function namedRow(kind: "auth" | "tool" | "discovery" | "custom"): EventRow {
  const row: EventRow = {
    service: "service",
    serviceVersion: "service_version",
    instanceId: "instance_id",
    metricType: kind,
    timestamp: "timestamp",
    value: 1,
    durationMs: 2,
    dimensions: "dimensions",
    metadata: "metadata",
    keyService: "key_service",
  };
  switch (kind) {
    case "auth":
      return {
        ...row,
        auth: {
          success: 1,
          method: "method",
          server: "server",
          userHash: "user_hash",
          errorCode: "error_code",
          targetKind: "target_kind",
        },
      };
    case "tool":
      return {
        ...row,
        tool: {
          toolName: "tool_name",
          serverPath: "server_path",
          serverName: "server_name",
          success: 0,
          clientName: "client_name",
          clientVersion: "client_version",
          method: "method",
          userHash: "user_hash",
          errorCode: "error_code",
          inputSizeBytes: 3,
          outputSizeBytes: 4,
        },
      };
    case "discovery":
      return {
        ...row,
        discovery: {
          query: "query",
          resultsCount: 5,
          topKServices: 6,
          topNTools: 7,
          embeddingTimeMs: 8,
          faissSearchTimeMs: 9,
        },
      };
    default:
      return row;
  }
}

/** Each text column's value, by column name; numbers and the request id left out. */
function textColumns(table: EventTable, values: readonly unknown[]): [string, unknown][] {
  expect(values, table).toHaveLength(INSERT_COLUMNS[table].length);
  return INSERT_COLUMNS[table]
    .map(([name, type], i): [string, unknown] => [name, type === "text" ? values[i] : undefined])
    .filter(([name, value]) => value !== undefined && name !== "request_id");
}

describe("rowValues", () => {
  it("should put every value under its own column of INSERT_COLUMNS, for each table both backends write", () => {
    const written = new Set<string>();
    for (const kind of ["auth", "tool", "discovery", "custom"] as const) {
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
    expect([...written].sort()).toEqual(["auth_metrics", "discovery_metrics", "tool_metrics"]);
  });
});
