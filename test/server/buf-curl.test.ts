import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countIn, startTestService, type TestService } from "../support/service.js";

const run = promisify(execFile);
const BUF = join(import.meta.dirname, "..", "..", "node_modules", ".bin", "buf");
const ROOT = join(import.meta.dirname, "..", "..");

/** Calls Ingest with `buf curl` exactly as the README shows a person doing it. */
async function bufCurl(protocol: string, url: string, key: string, body: unknown) {
  const args = [
    "curl",
    "--schema",
    "proto",
    "--protocol",
    protocol,
    "-H",
    `x-api-key: ${key}`,
    "-d",
    JSON.stringify(body),
  ];
  if (protocol === "grpc") args.push("--http2-prior-knowledge");
  args.push(`${url}/mcp.metrics.v1.IngestService/Ingest`);
  try {
    const { stdout } = await run(BUF, args, { cwd: ROOT });
    return { ok: true, body: JSON.parse(stdout) as Record<string, unknown> };
  } catch (error) {
    // buf curl prints the error's JSON on stderr.
    const out = (error as { stderr?: string }).stderr ?? "";
    return { ok: false, body: JSON.parse(out) as Record<string, unknown> };
  }
}

describe("buf curl against the one port", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it.each(["grpc", "connect", "grpcweb"])(
    "should store an event over --protocol %s, visible in metrics and its specialized table as soon as the call returns",
    async (protocol) => {
      const service = `curl-${protocol}`;
      const result = await bufCurl(protocol, svc.url, await svc.keyFor(service), {
        service,
        events: [
          {
            toolExecution: { toolName: "now", method: "tools/call", success: true },
            durationMs: 12,
          },
        ],
      });
      expect(result).toMatchObject({ ok: true, body: { accepted: 1 } });
      const requestId = result.body.requestId as string;
      expect(
        await countIn(svc.sql, "metrics", "request_id = ? AND service = ?", requestId, service),
      ).toBe(1);
      expect(
        await countIn(
          svc.sql,
          "tool_metrics",
          "request_id = ? AND tool_name = 'now' AND success = TRUE",
          requestId,
        ),
      ).toBe(1);
    },
  );

  it.each(["grpc", "connect", "grpcweb"])(
    "should answer unauthenticated over --protocol %s for a bad key",
    async (protocol) => {
      const result = await bufCurl(protocol, svc.url, "wrong", {
        service: "curl-bad",
        events: [{ custom: {}, value: 1 }],
      });
      expect(result).toMatchObject({
        ok: false,
        body: { code: "unauthenticated", message: "Invalid API key" },
      });
      expect(await countIn(svc.sql, "metrics", "service = 'curl-bad'")).toBe(0);
    },
  );
});
