import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IngestStreamResponseSchema } from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { failure, ingestClient, PROTOCOLS } from "../support/clients.js";
import { sendWhileCommitsAreHeld } from "../support/commit-gate.js";
import { authBatch, mixedBatch, recentMs } from "../support/events.js";
import { countIn, startTestService, type TestService } from "../support/service.js";

function isoMicros(ms: number): string {
  return new Date(ms).toISOString().replace("Z", "000Z");
}

describe("IngestService over every protocol on one port", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  describe.each(PROTOCOLS)("$name", (protocol) => {
    it("should store every event in metrics and its specialized table before answering", async () => {
      const at = recentMs();
      const client = ingestClient(protocol, svc.url, svc.key);
      // Sent while another connection holds the write lock: the answer must wait
      // for the commit, and every row must be readable the moment it arrives.
      const held = await sendWhileCommitsAreHeld(
        svc,
        () => client.ingest(mixedBatch("test-service", at)),
        (answer) => answer.requestId,
        ["metrics", "auth_metrics", "tool_metrics", "discovery_metrics"],
      );
      expect(held.answeredWhileHeld).toBe(false);
      expect(held.storedOnArrival).toEqual({
        metrics: 7,
        auth_metrics: 1,
        tool_metrics: 1,
        discovery_metrics: 1,
      });
      const res = held.answer;

      expect(res.accepted).toBe(7);
      expect(res.rejected).toBe(0);
      expect(res.requestId).toMatch(/^req_[0-9a-f]{16}$/);

      const rows = (await svc.sql.all(
        "SELECT service, service_version, instance_id, metric_type, timestamp, value, duration_ms, dimensions, metadata FROM metrics WHERE request_id = ? ORDER BY id",
        res.requestId,
      )) as Record<string, unknown>[];
      expect(rows.map((r) => r.metric_type)).toEqual([
        "auth_request",
        "tool_execution",
        "tool_discovery",
        "protocol_latency",
        "registry_operation",
        "health_check",
        "custom",
      ]);
      for (const row of rows) {
        expect(row).toMatchObject({
          service: "test-service",
          service_version: "1.2.3",
          instance_id: "pod-1",
          timestamp: isoMicros(at),
        });
      }
      expect(rows[0]).toMatchObject({ value: 1, duration_ms: 45.2 });
      expect(JSON.parse(rows[0]?.dimensions as string)).toEqual({
        success: true,
        method: "jwt",
        server: "github",
        user_hash: "u-abc",
      });
      expect(JSON.parse(rows[1]?.dimensions as string)).toMatchObject({
        tool_name: "current_time",
        region: "eu-west-1",
      });
      expect(JSON.parse(rows[1]?.metadata as string)).toEqual({
        error_code: "TIMEOUT",
        input_size_bytes: 512,
        output_size_bytes: 2048,
      });
      expect(rows[3]).toMatchObject({ value: 0.42 });
      expect(JSON.parse(rows[3]?.dimensions as string)).toEqual({
        flow_step: "initialize_to_tools_call",
        server_name: "currenttime",
      });
      expect(rows[6]).toMatchObject({ value: 17 });

      expect(
        await svc.sql.all(
          "SELECT timestamp, service, duration_ms, success, method, server, user_hash, error_code FROM auth_metrics WHERE request_id = ?",
          res.requestId,
        ),
      ).toEqual([
        {
          timestamp: isoMicros(at),
          service: "test-service",
          duration_ms: 45.2,
          success: 1,
          method: "jwt",
          server: "github",
          user_hash: "u-abc",
          error_code: null,
        },
      ]);
      expect(
        await svc.sql.all(
          "SELECT tool_name, server_path, server_name, success, client_name, client_version, method, user_hash, error_code, input_size_bytes, output_size_bytes, duration_ms FROM tool_metrics WHERE request_id = ?",
          res.requestId,
        ),
      ).toEqual([
        {
          tool_name: "current_time",
          server_path: "/currenttime",
          server_name: "currenttime",
          success: 0,
          client_name: "claude-desktop",
          client_version: "0.9.1",
          method: "tools/call",
          user_hash: "u-abc",
          error_code: "TIMEOUT",
          input_size_bytes: 512,
          output_size_bytes: 2048,
          duration_ms: 120,
        },
      ]);
      expect(
        await svc.sql.all(
          "SELECT query, results_count, top_k_services, top_n_tools, embedding_time_ms, faiss_search_time_ms FROM discovery_metrics WHERE request_id = ?",
          res.requestId,
        ),
      ).toEqual([
        {
          query: "what time is it",
          results_count: 3,
          top_k_services: 5,
          top_n_tools: 10,
          embedding_time_ms: 12.5,
          faiss_search_time_ms: 1.25,
        },
      ]);
    });

    it("should reject an invalid batch whole with INVALID_ARGUMENT naming every bad field", async () => {
      const client = ingestClient(protocol, svc.url, svc.key);
      const batch = mixedBatch("invalid-batch");
      const events = batch.events;
      events[0] = { ...events[0], durationMs: -1 };
      // A NUL, which a PostgreSQL text column cannot hold: refused on both backends.
      const tool = events[1]?.kind;
      if (tool?.case === "toolExecution") tool.value = { ...tool.value, toolName: "bad\u0000name" };
      events[2] = { ...events[2], value: Number.POSITIVE_INFINITY };
      const error = await failure(client.ingest(batch));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain(
        "events[0].duration_ms: Duration cannot be negative: -1.0",
      );
      const { BadRequestSchema } = await import("../../gen/google/rpc/error_details_pb.js");
      expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations).toEqual([
        expect.objectContaining({
          field: "events[0].duration_ms",
          description: "Duration cannot be negative: -1.0",
        }),
        expect.objectContaining({
          field: expect.stringMatching(/^events\[1\]\..*tool_name$/),
          description: "Dimension value must not contain a NUL character (U+0000)",
        }),
        expect.objectContaining({
          field: "events[2].value",
          description:
            "Metric value out of range: inf, must be between -1000000000000.0 and 1000000000000.0",
        }),
        expect.objectContaining({
          field: "events[2].value",
          description: "Metric value cannot be infinite",
        }),
      ]);
      expect(await countIn(svc.sql, "metrics", "service = ?", "invalid-batch")).toBe(0);
      expect(await countIn(svc.sql, "auth_metrics", "service = ?", "invalid-batch")).toBe(0);
    });
  });

  describe.each(PROTOCOLS)("$name streaming", (protocol) => {
    it("should commit each message of a client stream and total them", async () => {
      const client = ingestClient(protocol, svc.url, await svc.keyFor("stream-ok"));
      async function* messages() {
        yield { ...authBatch(10, "stream-ok") };
        // Later messages may leave the envelope out.
        yield { events: authBatch(5).events };
        yield { events: authBatch(1).events };
      }
      const res = await client.ingestStream(messages());
      expect(res).toMatchObject({ accepted: 16, rejected: 0, messages: 3 });
      expect(
        await countIn(
          svc.sql,
          "metrics",
          "request_id = ? AND service = 'stream-ok'",
          res.requestId,
        ),
      ).toBe(16);
      expect(await countIn(svc.sql, "auth_metrics", "request_id = ?", res.requestId)).toBe(16);
    });

    it("should keep the valid messages of a stream and report the invalid one with the totals", async () => {
      const service = `stream-bad-${protocol.name.replace(/[^a-zA-Z0-9]/g, "-")}`;
      const client = ingestClient(protocol, svc.url, await svc.keyFor(service));
      async function* messages() {
        yield authBatch(3, service);
        yield { events: [{ value: Number.NaN, kind: { case: "custom" as const, value: {} } }] };
        yield { events: authBatch(2).events };
      }
      const error = await failure(client.ingestStream(messages()));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain("messages[1].events[0].value: Metric value cannot be NaN");
      const totals = error.findDetails(IngestStreamResponseSchema)[0];
      expect(totals).toMatchObject({ accepted: 5, rejected: 1, messages: 3 });
      expect(await countIn(svc.sql, "metrics", "service = ?", service)).toBe(5);
    });
  });
});
