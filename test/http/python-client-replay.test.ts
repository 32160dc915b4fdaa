import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EventSchema, FlowStep } from "../../gen/mcp/metrics/v1/events_pb.js";
import { GRPC, ingestClient } from "../support/clients.js";
import { postMetrics } from "../support/legacy.js";
import { startTestService, type TestService } from "../support/service.js";

/** A naive `datetime.utcnow().isoformat()` a minute ago, as the Python client sends it. */
function utcnowIso(offsetMs = -60_000): string {
  return new Date(Date.now() + offsetMs)
    .toISOString()
    .replace("Z", "")
    .replace(/\.(\d{3})$/, ".$1456");
}

/** The body httpx builds from `json=payload` (json.dumps with its default separators). */
function pythonBody(service: string, metric: string): string {
  return `{"service": "${service}", "version": "1.0.0", "instance_id": "${service}-4242", "metrics": [${metric}]}`;
}

describe("what the Python client sends (docs/legacy-contract.md §6), replayed byte for byte", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  async function replay(raw: string) {
    // Keys are bound to their service: send with the key of the body's service.
    const service = (JSON.parse(raw) as { service: string }).service;
    const res = await postMetrics(svc.url, undefined, { key: await svc.keyFor(service), raw });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      status: "success",
      accepted: expect.any(Number),
      rejected: 0,
      errors: [],
    });
    const requestId = res.json.request_id as string;
    const rows = (await svc.sql.all(
      "SELECT * FROM metrics WHERE request_id = ? ORDER BY id",
      requestId,
    )) as Record<string, unknown>[];
    return { requestId, rows, row: rows[0] as Record<string, unknown> };
  }
  const one = async (sql: string, requestId: string) =>
    (await svc.sql.get(sql, requestId)) as Record<string, unknown>;

  it("should store emit_auth_metric with every auth_metrics column filled, reading the naive timestamp as UTC", async () => {
    const ts = utcnowIso();
    const { requestId, row } = await replay(
      pythonBody(
        "auth-server",
        `{"type": "auth_request", "timestamp": "${ts}", "value": 1.0, "duration_ms": 45.2, "dimensions": {"success": false, "method": "oauth", "server": "currenttime", "user_hash": "u-9f2c"}, "metadata": {"error_code": "invalid_token"}}`,
      ),
    );
    expect(row).toMatchObject({
      service: "auth-server",
      service_version: "1.0.0",
      instance_id: "auth-server-4242",
      metric_type: "auth_request",
      timestamp: `${ts}Z`,
      value: 1,
      duration_ms: 45.2,
    });
    expect(JSON.parse(row.dimensions as string)).toEqual({
      success: false,
      method: "oauth",
      server: "currenttime",
      user_hash: "u-9f2c",
    });
    expect(JSON.parse(row.metadata as string)).toEqual({ error_code: "invalid_token" });
    expect(
      await one(
        "SELECT timestamp, service, duration_ms, success, method, server, user_hash, error_code FROM auth_metrics WHERE request_id = ?",
        requestId,
      ),
    ).toEqual({
      timestamp: `${ts}Z`,
      service: "auth-server",
      duration_ms: 45.2,
      success: 0,
      method: "oauth",
      server: "currenttime",
      user_hash: "u-9f2c",
      error_code: "invalid_token",
    });
  });

  it("should store emit_tool_execution_metric with its tool_metrics columns filled", async () => {
    const { requestId } = await replay(
      pythonBody(
        "mcp-server",
        `{"type": "tool_execution", "timestamp": "${utcnowIso()}", "value": 1.0, "duration_ms": 150.0, "dimensions": {"tool_name": "current_time_by_timezone", "server_path": "/currenttime", "server_name": "currenttime", "success": false}, "metadata": {"error_code": "timeout", "input_size_bytes": 512, "output_size_bytes": 2048}}`,
      ),
    );
    expect(
      await one(
        "SELECT tool_name, server_path, server_name, success, error_code, input_size_bytes, output_size_bytes, duration_ms FROM tool_metrics WHERE request_id = ?",
        requestId,
      ),
    ).toEqual({
      tool_name: "current_time_by_timezone",
      server_path: "/currenttime",
      server_name: "currenttime",
      success: 0,
      error_code: "timeout",
      input_size_bytes: 512,
      output_size_bytes: 2048,
      duration_ms: 150,
    });
  });

  it.each([
    ["faiss_search_time_ms", "the contract's client"],
    ["vector_search_time_ms", "the newer client"],
  ])(
    "should store emit_discovery_metric (%s, as %s sends it) with every discovery_metrics column filled",
    async (key) => {
      const { requestId } = await replay(
        pythonBody(
          "registry",
          `{"type": "tool_discovery", "timestamp": "${utcnowIso()}", "value": 1.0, "duration_ms": 88.5, "dimensions": {"query": "current time in tokyo", "results_count": 3, "top_k_services": 5, "top_n_tools": 10}, "metadata": {"embedding_time_ms": 20.5, "${key}": 3.25}}`,
        ),
      );
      expect(
        await one(
          "SELECT query, results_count, top_k_services, top_n_tools, embedding_time_ms, faiss_search_time_ms, duration_ms FROM discovery_metrics WHERE request_id = ?",
          requestId,
        ),
      ).toEqual({
        query: "current time in tokyo",
        results_count: 3,
        top_k_services: 5,
        top_n_tools: 10,
        embedding_time_ms: 20.5,
        faiss_search_time_ms: 3.25,
        duration_ms: 88.5,
      });
    },
  );

  it("should store emit_registry_metric, emit_health_metric and emit_custom_metric in metrics with their dimensions", async () => {
    const registry = await replay(
      pythonBody(
        "registry",
        `{"type": "registry_operation", "timestamp": "${utcnowIso()}", "value": 1.0, "duration_ms": 12.0, "dimensions": {"operation": "create", "resource_type": "server", "success": true, "resource_id": "srv-1", "user_id": "alice"}, "metadata": {"error_code": null}}`,
      ),
    );
    expect(JSON.parse(registry.row.dimensions as string)).toEqual({
      operation: "create",
      resource_type: "server",
      success: true,
      resource_id: "srv-1",
      user_id: "alice",
    });
    // A null typed field is simply unset: it is not written back (docs/legacy-json.md).
    expect(JSON.parse(registry.row.metadata as string)).toEqual({});

    const health = await replay(
      pythonBody(
        "registry",
        `{"type": "health_check", "timestamp": "${utcnowIso()}", "value": 1.0, "duration_ms": 3.5, "dimensions": {"endpoint": "/health", "status_code": 200, "healthy": true}, "metadata": {}}`,
      ),
    );
    expect(health.row).toMatchObject({ metric_type: "health_check", duration_ms: 3.5 });
    expect(JSON.parse(health.row.dimensions as string)).toEqual({
      endpoint: "/health",
      status_code: 200,
      healthy: true,
    });

    const custom = await replay(
      pythonBody(
        "registry",
        `{"type": "custom", "timestamp": "${utcnowIso()}", "value": 0.93, "duration_ms": null, "dimensions": {"metric_name": "cache_hit_ratio", "cache": "embeddings"}, "metadata": {"window": "5m"}}`,
      ),
    );
    expect(custom.row).toMatchObject({ metric_type: "custom", value: 0.93, duration_ms: null });
    expect(JSON.parse(custom.row.dimensions as string)).toEqual({
      metric_name: "cache_hit_ratio",
      cache: "embeddings",
    });
    expect(JSON.parse(custom.row.metadata as string)).toEqual({ window: "5m" });
  });

  it("should accept the newer client's aware timestamps", async () => {
    const aware = `${utcnowIso()}+00:00`;
    const { row } = await replay(
      pythonBody(
        "auth-server",
        `{"type": "auth_request", "timestamp": "${aware}", "value": 1.0, "duration_ms": 1.0, "dimensions": {"success": true, "method": "jwt"}, "metadata": {}}`,
      ),
    );
    expect(row.timestamp).toBe(aware.replace("+00:00", "Z"));
  });

  it("should store the 'send metrics directly via HTTP' example of the architecture document", async () => {
    const { requestId, row } = await replay(
      '{"service": "my-service", "version": "1.0.0", "metrics": [{"type": "auth_request", "value": 1.0, "duration_ms": 45.2, "dimensions": {"success": true, "method": "jwt"}}]}',
    );
    expect(row).toMatchObject({
      service: "my-service",
      metric_type: "auth_request",
      duration_ms: 45.2,
    });
    // No timestamp: the server's time, in UTC.
    expect(Math.abs(Date.parse(row.timestamp as string) - Date.now())).toBeLessThan(60_000);
    expect(
      await one("SELECT success, method FROM auth_metrics WHERE request_id = ?", requestId),
    ).toEqual({ success: 1, method: "jwt" });
  });

  it("should store a compact nginx batch with epoch-second timestamps", async () => {
    const now = Date.now() / 1000 - 30;
    const metrics = Array.from({ length: 50 }, (_, i) => ({
      type: "tool_execution",
      timestamp: Number((now + i / 1000).toFixed(3)),
      value: 1,
      duration_ms: i,
      dimensions: {
        method: i % 2 ? "tools/call" : "tools/list",
        tool_name: `t${i % 5}`,
        client_name: "claude-desktop",
        server_name: "currenttime",
        success: true,
      },
    }));
    const { rows, requestId } = await replay(JSON.stringify({ service: "nginx", metrics }));
    expect(rows).toHaveLength(50);
    expect(Date.parse(rows[0]?.timestamp as string) / 1000).toBeCloseTo(now, 2);
    expect(
      await one(
        "SELECT count(*) AS n FROM tool_metrics WHERE request_id = ? AND client_name = 'claude-desktop' AND method IN ('tools/call', 'tools/list')",
        requestId,
      ),
    ).toEqual({ n: 50 });
  });
});

describe("one event through JSON and through gRPC", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  const at = Date.now() - 120_000;
  const iso = new Date(at).toISOString();
  const twins: [string, Record<string, unknown>, MessageInitShape<typeof EventSchema>][] = [
    [
      "auth_request",
      {
        type: "auth_request",
        timestamp: iso,
        value: 1,
        duration_ms: 45.2,
        dimensions: { success: true, method: "jwt", server: "github", user_hash: "u1" },
        metadata: { error_code: "E1", trace: "t" },
      },
      {
        timestamp: timestampFromMs(at),
        durationMs: 45.2,
        metadata: { trace: "t" },
        kind: {
          case: "authRequest",
          value: {
            success: true,
            method: "jwt",
            server: "github",
            userHash: "u1",
            errorCode: "E1",
          },
        },
      },
    ],
    [
      "tool_execution",
      {
        type: "tool_execution",
        timestamp: iso,
        value: 1,
        duration_ms: 120,
        dimensions: {
          tool_name: "now",
          server_path: "/t",
          server_name: "t",
          success: false,
          client_name: "c",
          client_version: "1",
          method: "tools/call",
          user_hash: "u",
          region: "eu",
        },
        metadata: { error_code: "X", input_size_bytes: 5, output_size_bytes: 6 },
      },
      {
        timestamp: timestampFromMs(at),
        durationMs: 120,
        dimensions: { region: "eu" },
        kind: {
          case: "toolExecution",
          value: {
            toolName: "now",
            serverPath: "/t",
            serverName: "t",
            success: false,
            clientName: "c",
            clientVersion: "1",
            method: "tools/call",
            userHash: "u",
            errorCode: "X",
            inputSizeBytes: 5n,
            outputSizeBytes: 6n,
          },
        },
      },
    ],
    [
      "tool_discovery",
      {
        type: "tool_discovery",
        timestamp: iso,
        value: 1,
        duration_ms: 9,
        dimensions: { query: "q", results_count: 2, top_k_services: 3, top_n_tools: 4 },
        metadata: { embedding_time_ms: 1.5, faiss_search_time_ms: 0.5 },
      },
      {
        timestamp: timestampFromMs(at),
        durationMs: 9,
        kind: {
          case: "toolDiscovery",
          value: {
            query: "q",
            resultsCount: 2,
            topKServices: 3,
            topNTools: 4,
            embeddingTimeMs: 1.5,
            faissSearchTimeMs: 0.5,
          },
        },
      },
    ],
    [
      "protocol_latency",
      {
        type: "protocol_latency",
        timestamp: iso,
        value: 0.25,
        dimensions: { flow_step: "initialize_to_tools_list", server_name: "s" },
      },
      {
        timestamp: timestampFromMs(at),
        value: 0.25,
        kind: {
          case: "protocolLatency",
          value: { flowStep: FlowStep.INITIALIZE_TO_TOOLS_LIST, serverName: "s" },
        },
      },
    ],
  ];

  it.each(twins)("should store identical %s rows", async (_type, legacy, typed) => {
    const json = await postMetrics(
      svc.url,
      { service: "twins", version: "2.0.0", metrics: [legacy] },
      { key: await svc.keyFor("twins") },
    );
    const grpc = await ingestClient(GRPC, svc.url, await svc.keyFor("twins")).ingest({
      service: "twins",
      version: "2.0.0",
      events: [typed],
    });
    const rowOf = async (table: string, requestId: unknown) => {
      const {
        id: _id,
        request_id: _r,
        created_at: _c,
        ...rest
      } = (await svc.sql.get(`SELECT * FROM ${table} WHERE request_id = ?`, requestId)) as Record<
        string,
        unknown
      >;
      return rest;
    };
    const table = {
      auth_request: "auth_metrics",
      tool_execution: "tool_metrics",
      tool_discovery: "discovery_metrics",
    }[_type];
    for (const t of ["metrics", ...(table ? [table] : [])]) {
      expect(await rowOf(t, json.json.request_id)).toEqual(await rowOf(t, grpc.requestId));
    }
  });
});
