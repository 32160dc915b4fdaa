import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GRPC, ingestClient } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { postMetrics } from "../support/legacy.js";
import {
  countIn,
  exposition,
  scrape,
  seriesOf,
  startTestService,
  type TestService,
} from "../support/service.js";

/** A tool call as the gateway's nginx flush writes it: `success` a string, `tool_name` "" outside tools/call. */
function nginxMetric(method: string, tool: string, success: string): Record<string, unknown> {
  return {
    type: "tool_execution",
    value: 1.0,
    duration_ms: 12.5,
    dimensions: {
      method,
      server_name: "currenttime",
      tool_name: method === "tools/call" ? tool : "",
      client_name: "claude-desktop",
      success,
    },
    metadata: {},
  };
}

describe("real emitters' batches and spellings (issue 20)", () => {
  let svc: TestService;
  let port: number;
  beforeAll(async () => {
    const prometheus = await exposition();
    port = prometheus.port;
    svc = await startTestService({ ...prometheus.env, METRICS_KEY_SERVICE_BINDING: "off" });
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should store a 1,024-event legacy batch whole, as the nginx flush sends it", async () => {
    const metrics = Array.from({ length: 1024 }, (_, i) =>
      nginxMetric(["initialize", "tools/list", "tools/call"][i % 3] as string, "now", "true"),
    );
    const res = await postMetrics(
      svc.url,
      { service: "nginx-big", version: "1.0.0", metrics },
      { key: svc.key },
    );
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ status: "success", accepted: 1024, rejected: 0 });
    expect(await countIn(svc.sql, "tool_metrics", "service = 'nginx-big'")).toBe(1024);
  });

  it("should take 1,024 events in one unary Ingest and in one stream message", async () => {
    const client = ingestClient(GRPC, svc.url, svc.key);
    expect((await client.ingest(authBatch(1024, "rpc-big"))).accepted).toBe(1024);
    async function* messages() {
      yield authBatch(1024, "stream-big");
    }
    expect((await client.ingestStream(messages())).accepted).toBe(1024);
    expect(await countIn(svc.sql, "auth_metrics", "service = 'rpc-big'")).toBe(1024);
    expect(await countIn(svc.sql, "auth_metrics", "service = 'stream-big'")).toBe(1024);
  });

  it("should store 1/0 for every boolean spelling and keep what was sent in the dimensions", async () => {
    const spellings: [unknown, number][] = [
      [true, 1],
      ["true", 1],
      ["True", 1],
      ["TRUE", 1],
      [1, 1],
      ["1", 1],
      [" true ", 1],
      [false, 0],
      ["0", 0],
      ["false", 0],
      ["False", 0],
      [0, 0],
    ];
    const res = await postMetrics(
      svc.url,
      {
        service: "spellings",
        metrics: spellings.map(([success]) => ({
          type: "tool_execution",
          value: 1,
          dimensions: { tool_name: "t", method: "tools/call", success },
        })),
      },
      { key: svc.key },
    );
    expect(res.json.accepted).toBe(spellings.length);
    // Rows of one batch, each table in the order of the batch.
    const columns = await svc.sql.all<{ success: number }>(
      "SELECT success FROM tool_metrics WHERE service = 'spellings' ORDER BY id",
    );
    const raw = await svc.sql.all<{ dimensions: string }>(
      "SELECT dimensions FROM metrics WHERE service = 'spellings' ORDER BY id",
    );
    expect(columns.map((r) => r.success)).toEqual(spellings.map(([, stored]) => stored));
    expect(raw.map((r) => (JSON.parse(r.dimensions) as { success: unknown }).success)).toEqual(
      spellings.map(([sent]) => sent),
    );
    // An auth event's success too.
    await postMetrics(
      svc.url,
      {
        service: "spellings",
        metrics: [
          { type: "auth_request", value: 1, dimensions: { success: "false", method: "jwt" } },
        ],
      },
      { key: svc.key },
    );
    expect(await countIn(svc.sql, "auth_metrics", "service = 'spellings' AND success = ?", 0)).toBe(
      1,
    );
  });

  it("should label a health check's healthy in lowercase whatever its spelling, keeping it as sent", async () => {
    const res = await postMetrics(
      svc.url,
      {
        service: "prober",
        metrics: ["False", "true", 0, true].map((healthy) => ({
          type: "health_check",
          value: 1,
          duration_ms: 3,
          dimensions: { endpoint: "/health", status_code: 200, healthy },
        })),
      },
      { key: svc.key },
    );
    expect(res.json.accepted).toBe(4);
    const health = seriesOf(await scrape(port), "mcp_health_checks_total").filter(
      (s) => s.labels.service === "prober",
    );
    expect(health.map((s) => [s.labels.healthy, s.value]).sort()).toEqual([
      ["false", 2],
      ["true", 2],
    ]);
    const stored = await svc.sql.all<{ dimensions: string }>(
      "SELECT dimensions FROM metrics WHERE service = 'prober' ORDER BY id",
    );
    expect(stored.map((r) => (JSON.parse(r.dimensions) as { healthy: unknown }).healthy)).toEqual([
      "False",
      "true",
      0,
      true,
    ]);
  });

  it("should read the auth server's full_protocol_flow as initialize_to_tools_call", async () => {
    const res = await postMetrics(
      svc.url,
      {
        service: "auth-flow",
        metrics: [
          {
            type: "protocol_latency",
            value: 0.25,
            dimensions: { flow_step: "full_protocol_flow" },
          },
          {
            type: "protocol_latency",
            value: 0.5,
            dimensions: { flow_step: "initialize_to_tools_call" },
          },
        ],
      },
      { key: svc.key },
    );
    expect(res.json.accepted).toBe(2);
    const stored = await svc.sql.all<{ dimensions: string }>(
      "SELECT dimensions FROM metrics WHERE service = 'auth-flow'",
    );
    expect(stored.map((r) => JSON.parse(r.dimensions))).toEqual([
      { flow_step: "initialize_to_tools_call" },
      { flow_step: "initialize_to_tools_call" },
    ]);
    const flows = seriesOf(await scrape(port), "mcp_protocol_latency_seconds_count").filter(
      (s) => s.labels.service === "auth-flow",
    );
    expect(flows).toEqual([
      {
        labels: expect.objectContaining({ flow_step: "initialize_to_tools_call" }),
        value: 2,
      },
    ]);
  });

  it("should store target_kind in auth_metrics and label it", async () => {
    await postMetrics(
      svc.url,
      {
        service: "auth-target",
        metrics: [
          {
            type: "auth_request",
            value: 1,
            dimensions: { success: true, method: "jwt", target_kind: "mcp_server" },
          },
        ],
      },
      { key: svc.key },
    );
    expect(
      await countIn(
        svc.sql,
        "auth_metrics",
        "service = 'auth-target' AND target_kind = 'mcp_server'",
      ),
    ).toBe(1);
    const auth = seriesOf(await scrape(port), "mcp_auth_requests_total").filter(
      (s) => s.labels.service === "auth-target",
    );
    expect(auth.map((s) => s.labels)).toEqual([
      {
        success: "true",
        method: "jwt",
        server: "_unset",
        target_kind: "mcp_server",
        service: "auth-target",
        metric_type: "auth_request",
      },
    ]);
  });

  it("should export one lowercase, sanitised series per tool whatever the emitter's spelling", async () => {
    await postMetrics(
      svc.url,
      {
        service: "labels",
        metrics: [
          nginxMetric("tools/call", "weird name!", "true"),
          {
            ...nginxMetric("tools/call", "weird name!", "true"),
            dimensions: {
              ...(nginxMetric("tools/call", "weird name!", "true").dimensions as object),
              success: true,
            },
          },
          nginxMetric("tools/call", "weird name!", "True"),
          nginxMetric("tools/list", "", "true"),
          nginxMetric("tools/call", "weird name!", "false"),
        ],
      },
      { key: svc.key },
    );
    const tools = seriesOf(await scrape(port), "mcp_tool_executions_total").filter(
      (s) => s.labels.service === "labels",
    );
    expect(
      tools.map((s) => [s.labels.method, s.labels.tool_name, s.labels.success, s.value]).sort(),
    ).toEqual([
      ["tools/call", "weird_name_", "false", 1],
      ["tools/call", "weird_name_", "true", 3],
      ["tools/list", "_unset", "true", 1],
    ]);
    for (const s of tools) {
      expect(s.labels).toMatchObject({ client_version: "_unset", server_path: "_unset" });
    }
  });
});

describe("METRICS_MAX_LABEL_CARDINALITY", () => {
  it("should cap each label at the upstream's variable, folding the rest into _other", async () => {
    const prometheus = await exposition();
    const svc = await startTestService({
      ...prometheus.env,
      METRICS_MAX_LABEL_CARDINALITY: "3",
      METRICS_MAX_BATCH_EVENTS: "1024",
    });
    try {
      const metrics = Array.from({ length: 10 }, (_, i) =>
        nginxMetric("tools/call", `tool${i}`, "true"),
      );
      await postMetrics(svc.url, { service: "test-service", metrics }, { key: svc.key });
      const names = new Set(
        seriesOf(await scrape(prometheus.port), "mcp_tool_executions_total").map(
          (s) => s.labels.tool_name,
        ),
      );
      expect([...names].sort()).toEqual(["_other", "tool0", "tool1", "tool2"]);
      const over = await postMetrics(
        svc.url,
        {
          service: "test-service",
          metrics: Array.from({ length: 1025 }, () => nginxMetric("ping", "", "true")),
        },
        { key: svc.key },
      );
      expect(over.json).toMatchObject({
        accepted: 0,
        rejected: 1025,
        errors: ["metrics: Too many metrics in request: 1025, max 1024"],
      });
    } finally {
      await svc.close();
    }
  });
});
