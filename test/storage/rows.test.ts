import { describe, expect, it } from "vitest";
import { type EventRow, INSERT_COLUMNS, rowValues } from "../../src/storage/rows.js";
import { authRow } from "../support/events.js";

const base: EventRow = { ...authRow(), auth: undefined } as unknown as EventRow;

/** One row of each shape: the universal row alone, and with each specialized table's. */
const ROWS: EventRow[] = [
  { ...base, metricType: "custom" },
  authRow(),
  {
    ...base,
    metricType: "tool_execution",
    tool: {
      toolName: "t",
      serverPath: null,
      serverName: null,
      success: 1,
      clientName: null,
      clientVersion: null,
      method: null,
      userHash: null,
      errorCode: null,
      inputSizeBytes: null,
      outputSizeBytes: null,
    },
  },
  {
    ...base,
    metricType: "tool_discovery",
    discovery: {
      query: "q",
      resultsCount: 0,
      topKServices: null,
      topNTools: null,
      embeddingTimeMs: null,
      faissSearchTimeMs: null,
    },
  },
];

describe("rowValues", () => {
  it("should give as many values as INSERT_COLUMNS names, for every table both backends write", () => {
    const tables = new Set<string>();
    for (const row of ROWS) {
      const values = rowValues("req_1", row);
      expect(values.metrics).toHaveLength(INSERT_COLUMNS.metrics.length);
      if (values.specialized) {
        tables.add(values.specialized.table);
        expect(values.specialized.values, values.specialized.table).toHaveLength(
          INSERT_COLUMNS[values.specialized.table].length,
        );
      }
    }
    expect([...tables].sort()).toEqual(["auth_metrics", "discovery_metrics", "tool_metrics"]);
  });
});
