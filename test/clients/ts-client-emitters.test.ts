import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createMetricsClient,
  EMITTERS,
  type EventKind,
  FlowStep,
  type MetricsClient,
  type MetricsClientOptions,
  type Protocol,
} from "../../clients/typescript/src/index.js";
import { EVENT_KINDS } from "../../src/catalog/catalog.js";
import { expectBalanced } from "../support/client-stats.js";
import { sampleValue } from "../support/events.js";
import { countIn, startTestService, type TestService } from "../support/service.js";

const PROTOCOLS: Protocol[] = ["grpc", "connect"];
const LONG_NAME_KEY = "ts-long-name-key";

/** A logger that keeps what the client warned about. */
function recordingLogger() {
  const warnings: string[] = [];
  return { warnings, logger: { warn: (message: string) => warnings.push(message) } };
}

describe.each(PROTOCOLS)("the TypeScript client over %s", (protocol) => {
  let svc: TestService;
  const clients: MetricsClient[] = [];
  const open = (options: Partial<MetricsClientOptions> = {}) => {
    const client = createMetricsClient({
      baseUrl: svc.url,
      apiKey: svc.key,
      service: "test-service",
      version: "2.1.0",
      instanceId: `ts-${protocol}`,
      protocol,
      ...options,
    });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    svc = await startTestService({ [`METRICS_API_KEY_${"L".repeat(50)}`]: LONG_NAME_KEY });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close(1_000)));
    await svc.close();
  });

  it("should emit every kind of the event catalog with every typed field, stored where the catalog says", async () => {
    const instanceId = `catalog-${protocol}`;
    const client = open({ instanceId });
    const base = Date.parse("2026-11-24T10:00:00.000Z");
    const emitters = client as unknown as Record<string, (event: object) => void>;
    EVENT_KINDS.forEach((kind, i) => {
      const fields = Object.fromEntries(
        kind.fields.map((f) => [f.localName, f.bigint ? 7 : sampleValue(f)]),
      );
      const emitter = emitters[EMITTERS[kind.localName as EventKind]];
      expect(emitter, `an emitter of ${kind.name}`).toBeTypeOf("function");
      emitter?.call(client, { ...fields, value: 2.5, durationMs: 5, timestamp: base + i });
    });
    expect(await client.flush()).toBe(true);
    expect(client.stats()).toMatchObject({ sent: EVENT_KINDS.length, rejected: 0 });
    for (const [i, kind] of EVENT_KINDS.entries()) {
      const stamp = new Date(base + i).toISOString().replace("Z", "000Z");
      const row = await svc.sql.get<{ metric_type: string; dimensions: string; metadata: string }>(
        "SELECT metric_type, dimensions, metadata FROM metrics WHERE instance_id = ? AND timestamp = ?",
        instanceId,
        stamp,
      );
      expect(row?.metric_type, kind.name).toBe(kind.name);
      const legacy = {
        ...JSON.parse(row?.dimensions ?? "{}"),
        ...JSON.parse(row?.metadata ?? "{}"),
      };
      for (const field of kind.fields) {
        expect(legacy[field.name], `${kind.name}.${field.name} in the legacy JSON`).toBeDefined();
      }
      if (kind.table === undefined) continue;
      const stored = await svc.sql.get<Record<string, unknown>>(
        `SELECT * FROM ${kind.table.name} WHERE timestamp = ? AND service = 'test-service'`,
        stamp,
      );
      for (const field of kind.table.fields) {
        expect(
          stored?.[field.column.name],
          `${kind.table.name}.${field.column.name}`,
        ).not.toBeNull();
      }
    }
  });

  it("should store every emitter's event in its tables with every typed column filled", async () => {
    const client = open();
    const tag = `t-${protocol}`;
    const at = new Date("2026-11-25T10:00:00.123Z");
    client.auth({
      success: false,
      method: "oauth",
      server: tag,
      userHash: "u1234",
      errorCode: "expired",
      durationMs: 12.5,
      timestamp: at,
    });
    client.toolExecution({
      toolName: "current_time",
      serverPath: "/currenttime",
      serverName: tag,
      success: true,
      clientName: "claude-desktop",
      clientVersion: "0.9.1",
      method: "tools/call",
      userHash: "u1234",
      errorCode: "none",
      inputSizeBytes: 321,
      outputSizeBytes: 4321n,
      durationMs: 45,
    });
    client.discovery({
      query: tag,
      resultsCount: 7,
      topKServices: 3,
      topNTools: 10,
      embeddingTimeMs: 4.5,
      faissSearchTimeMs: 1.25,
      durationMs: 9,
    });
    client.protocolLatency({
      value: 0.25,
      flowStep: FlowStep.INITIALIZE_TO_TOOLS_LIST,
      serverName: tag,
      clientName: "claude-desktop",
      sessionId: "s-1",
    });
    client.registryOperation({
      operation: "create",
      resourceType: "server",
      success: true,
      resourceId: tag,
      userId: "alice",
      errorCode: "none",
      durationMs: 3,
    });
    client.healthCheck({ endpoint: `/${tag}`, statusCode: 503, healthy: false, durationMs: 1 });
    client.custom({ metricName: tag, value: 42, dimensions: { region: "eu" }, metadata: { n: 1 } });

    expect(await client.flush()).toBe(true);
    expect(client.stats()).toMatchObject({ emitted: 7, sent: 7, failed: 0, rejected: 0 });
    expectBalanced(client);

    const auth = await svc.sql.get("SELECT * FROM auth_metrics WHERE server = ?", tag);
    expect(auth).toMatchObject({
      service: "test-service",
      duration_ms: 12.5,
      success: 0,
      method: "oauth",
      user_hash: "u1234",
      error_code: "expired",
      timestamp: "2026-11-25T10:00:00.123000Z",
    });
    const tool = await svc.sql.get("SELECT * FROM tool_metrics WHERE server_name = ?", tag);
    expect(tool).toMatchObject({
      tool_name: "current_time",
      server_path: "/currenttime",
      success: 1,
      client_name: "claude-desktop",
      client_version: "0.9.1",
      method: "tools/call",
      user_hash: "u1234",
      error_code: "none",
      input_size_bytes: 321,
      output_size_bytes: 4321,
      duration_ms: 45,
    });
    const discovery = await svc.sql.get("SELECT * FROM discovery_metrics WHERE query = ?", tag);
    expect(discovery).toMatchObject({
      results_count: 7,
      top_k_services: 3,
      top_n_tools: 10,
      embedding_time_ms: 4.5,
      faiss_search_time_ms: 1.25,
      duration_ms: 9,
    });
    const rows = await svc.sql.all<{
      metric_type: string;
      value: number;
      duration_ms: number | null;
      timestamp: string;
      dimensions: string;
      metadata: string;
      service_version: string;
    }>(
      "SELECT metric_type, value, duration_ms, timestamp, dimensions, metadata, service_version FROM metrics WHERE instance_id = ? ORDER BY id",
      `ts-${protocol}`,
    );
    expect(rows.map((r) => r.metric_type)).toEqual([
      "auth_request",
      "tool_execution",
      "tool_discovery",
      "protocol_latency",
      "registry_operation",
      "health_check",
      "custom",
    ]);
    expect(rows.every((r) => r.service_version === "2.1.0")).toBe(true);
    const latency = rows[3];
    expect(latency?.value).toBe(0.25);
    expect(JSON.parse(latency?.dimensions ?? "{}")).toMatchObject({
      flow_step: "initialize_to_tools_list",
      server_name: tag,
      client_name: "claude-desktop",
      session_id: "s-1",
    });
    expect(JSON.parse(rows[4]?.dimensions ?? "{}")).toMatchObject({
      operation: "create",
      resource_type: "server",
      success: true,
      resource_id: tag,
      user_id: "alice",
    });
    expect(JSON.parse(rows[5]?.dimensions ?? "{}")).toMatchObject({
      endpoint: `/${tag}`,
      status_code: 503,
      healthy: false,
    });
    expect(rows[6]?.value).toBe(42);
    expect(JSON.parse(rows[6]?.dimensions ?? "{}")).toEqual({ metric_name: tag, region: "eu" });
    expect(JSON.parse(rows[6]?.metadata ?? "{}")).toEqual({ n: 1 });
    expect(rows.map((r) => r.duration_ms)).toEqual([12.5, 45, 9, null, 3, 1, null]);
    expect(rows[0]?.timestamp).toBe("2026-11-25T10:00:00.123000Z");
  });

  it("should send full batches by size, partial ones by interval, each under the server's limit", async () => {
    const client = open({ flushIntervalMillis: 50, instanceId: `batches-${protocol}` });
    for (let i = 0; i < 250; i++) client.custom({ metricName: "batched", value: i });
    // No flush(): 200 go by size at once, the last 50 on the next interval tick.
    await expect.poll(() => client.stats().sent, { timeout: 5_000 }).toBe(250);
    const requests = await svc.sql.all<{ n: number }>(
      "SELECT request_id, count(*) AS n FROM metrics WHERE instance_id = ? GROUP BY request_id ORDER BY n DESC",
      `batches-${protocol}`,
    );
    expect(requests.map((r) => r.n)).toEqual([100, 100, 50]);
  });

  it("should resend the valid rest of a batch the server rejected for some of its events", async () => {
    const { warnings, logger } = recordingLogger();
    const client = open({ logger, instanceId: `invalid-${protocol}` });
    for (let i = 0; i < 10; i++) {
      client.custom({ metricName: "mixed", value: i, durationMs: i % 4 === 3 ? -5 : 1 });
    }
    expect(await client.flush()).toBe(true);
    expect(client.stats()).toMatchObject({ sent: 8, rejected: 2, retries: 0 });
    expect(await countIn(svc.sql, "metrics", "instance_id = ?", `invalid-${protocol}`)).toBe(8);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/invalid/);
    expectBalanced(client);
  });

  it("should drop an event protobuf cannot encode and send the others", async () => {
    const { warnings, logger } = recordingLogger();
    const client = open({ logger, instanceId: `encode-${protocol}` });
    for (let i = 0; i < 5; i++) client.custom({ metricName: "fine", value: i });
    // What plain JavaScript can pass: an int32 of 2.5.
    client.discovery({ query: "bad", resultsCount: 2.5 });
    expect(await client.flush()).toBe(true);
    expect(client.stats()).toMatchObject({ sent: 5, rejected: 1, failed: 0 });
    expect(await countIn(svc.sql, "metrics", "instance_id = ?", `encode-${protocol}`)).toBe(5);
    expect(warnings).toEqual([expect.stringMatching(/could not be encoded/)]);
    expectBalanced(client);
  });

  it("should send its key over a transport of the caller's own", async () => {
    const transport =
      protocol === "grpc"
        ? createGrpcTransport({ baseUrl: svc.url })
        : createConnectTransport({ baseUrl: svc.url, httpVersion: "1.1" });
    const client = open({ transport, instanceId: `own-${protocol}` });
    client.custom({ metricName: "own-transport", value: 1 });
    expect(await client.flush()).toBe(true);
    expect(client.stats()).toMatchObject({ sent: 1, unauthenticated: 0 });
  });

  it("should not retry a refused key, and say so once", async () => {
    const { warnings, logger } = recordingLogger();
    const client = open({ logger, apiKey: "wrong-key", maxBatchEvents: 5 });
    for (let i = 0; i < 20; i++) client.custom({ metricName: "refused", value: i });
    expect(await client.flush()).toBe(true);
    expect(client.stats()).toMatchObject({ unauthenticated: 20, retries: 0, sent: 0 });
    expect(warnings).toEqual([expect.stringMatching(/Invalid API key/)]);
  });

  it("should fit its default instance id to a 50-character service name", async () => {
    const service = "l".repeat(50);
    const client = open({ service, apiKey: LONG_NAME_KEY, instanceId: undefined });
    client.auth({ success: true, method: "jwt" });
    expect(await client.flush()).toBe(true);
    expect(client.stats()).toMatchObject({ sent: 1 });
    const row = await svc.sql.get<{ instance_id: string }>(
      "SELECT instance_id FROM metrics WHERE service = ? ORDER BY id DESC",
      service,
    );
    expect(row?.instance_id.length).toBeLessThanOrEqual(50);
  });

  it("should be disabled, not failing, when the key is missing", () => {
    const client = open({ apiKey: undefined as unknown as string, logger: { warn: () => {} } });
    client.custom({ metricName: "nokey", value: 1 });
    expect(client.stats()).toMatchObject({ emitted: 1, dropped: 1, buffered: 0 });
  });

  it("should refuse bad options with an error naming the option", () => {
    expect(() => open({ instanceId: "a b" })).toThrow(/instanceId/);
    expect(() => open({ version: "1".repeat(21) })).toThrow(/version/);
    expect(() => open({ service: "bad name" })).toThrow(/service/);
    expect(() => open({ maxBatchEvents: 101 })).toThrow(/maxBatchEvents/);
    expect(() => open({ baseUrl: "ftp://x" })).toThrow(/baseUrl/);
  });
});
