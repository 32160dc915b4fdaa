// backends: sqlite only: label bounds as functions; no service
import { describe, expect, it } from "vitest";
import { createLabelBounds, OVERFLOW_VALUE } from "../../src/telemetry/label-bounds.js";

describe("createLabelBounds", () => {
  it("should label allowed dimensions only, booleans in lowercase, service and metric_type last", () => {
    const bounds = createLabelBounds({ maxValuesPerLabel: 10, maxLength: 96 });
    expect(
      bounds.labelsFor("auth_request", "svc", {
        success: true,
        method: "jwt",
        user_hash: "u1",
        service: "evil",
        metric_type: "x",
        le: "1",
        __name__: "n",
      }),
    ).toEqual({
      success: "true",
      method: "jwt",
      server: "_unset",
      target_kind: "_unset",
      service: "svc",
      metric_type: "auth_request",
    });
    expect(bounds.labelsFor("health_check", "svc", { status_code: 200, healthy: false })).toEqual({
      endpoint: "_unset",
      status_code: "200",
      healthy: "false",
      service: "svc",
      metric_type: "health_check",
    });
  });

  it("should label a custom event by its metric name only, and a type it does not know by nothing", () => {
    const bounds = createLabelBounds({ maxValuesPerLabel: 10, maxLength: 96 });
    expect(bounds.labelsFor("custom", "svc", { metric_name: "m", user_id: "u1" })).toEqual({
      metric_name: "m",
      service: "svc",
      metric_type: "custom",
    });
    expect(bounds.labelsFor("unheard_of", "svc", { metric_name: "m" })).toEqual({
      service: "svc",
      metric_type: "unheard_of",
    });
  });

  it("should collapse values beyond the cap into _other and report each overflow", () => {
    const overflows: string[] = [];
    const bounds = createLabelBounds({
      maxValuesPerLabel: 2,
      maxLength: 96,
      onOverflow: (l) => overflows.push(l),
    });
    const tools = ["a", "b", "c", "a", "d"].map(
      (t) => bounds.labelsFor("tool_execution", "s", { tool_name: t }).tool_name,
    );
    expect(tools).toEqual(["a", "b", OVERFLOW_VALUE, "a", OVERFLOW_VALUE]);
    expect(overflows).toEqual(["tool_name", "tool_name"]);
  });

  it("should sanitise as the upstream does: [A-Za-z0-9-_.:/] kept, each other character _, empty _unset", () => {
    const bounds = createLabelBounds({ maxValuesPerLabel: 10, maxLength: 96 });
    const tool = (name: unknown) =>
      bounds.labelsFor("tool_execution", "s", { tool_name: name }).tool_name;
    expect(tool("weird name!")).toBe("weird_name_");
    expect(tool("café 🚀 ok")).toBe("caf____ok");
    expect(tool("ns:tool.v2/run-x_y")).toBe("ns:tool.v2/run-x_y");
    expect(tool("")).toBe("_unset");
    expect(tool(null)).toBe("_unset");
    expect(bounds.labelsFor("tool_execution", "s", {}).tool_name).toBe("_unset");
  });

  it("should cut long values and replace unsafe characters", () => {
    const bounds = createLabelBounds({ maxValuesPerLabel: 10, maxLength: 8 });
    expect(
      bounds.labelsFor("tool_execution", "s", { tool_name: 'a\nb"c{d}efghij' }).tool_name,
    ).toBe("a_b_c_d_");
    expect(bounds.labelsFor("tool_execution", "s", { method: "tools/call" }).method).toBe(
      "tools/ca",
    );
  });

  it("should keep the dashboard's methods and outcomes whatever junk spent the budget first", () => {
    const bounds = createLabelBounds({ maxValuesPerLabel: 2, maxLength: 96 });
    for (const junk of ["x1", "x2", "x3"])
      bounds.labelsFor("tool_execution", "s", { method: junk });
    const labels = bounds.labelsFor("tool_execution", "s", {
      method: "tools/call",
      success: false,
    });
    expect(labels).toMatchObject({ method: "tools/call", success: "false" });
  });

  it("should keep only scheme, host and path of URL-like labels", () => {
    const bounds = createLabelBounds({ maxValuesPerLabel: 10, maxLength: 96 });
    expect(
      bounds.labelsFor("health_check", "s", {
        endpoint: "https://user:pw@host.example/health?token=abc#x",
      }).endpoint,
    ).toBe("https://host.example/health");
    expect(
      bounds.labelsFor("tool_execution", "s", { server_path: "/currenttime?key=secret" })
        .server_path,
    ).toBe("/currenttime");
  });
});
