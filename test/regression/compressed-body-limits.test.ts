// backends: sqlite only: compressed bodies refused while decoding, before storage
import { gzipSync } from "node:zlib";
import { Code, createClient } from "@connectrpc/connect";
import { compressionGzip, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IngestService } from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { apiKey, failure } from "../support/clients.js";
import { countRows, startTestService, type TestService } from "../support/service.js";

/** A small gzip body that inflates far past the 1 MiB cap (a "zip bomb"). */
const bomb = gzipSync(Buffer.alloc(16 * 1024 * 1024, 0x20));

describe("regression: compressed bodies that inflate past the cap", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should refuse a 16 KiB gzip JSON body that inflates to 16 MiB with 413, without inflating it all", async () => {
    expect(bomb.length).toBeLessThan(20 * 1024);
    const rssBefore = process.memoryUsage().rss;
    const res = await fetch(`${svc.url}/metrics`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "content-encoding": "gzip",
        "x-api-key": svc.key,
      },
      body: bomb,
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({
      detail: "Request body too large: the limit is 1048576 bytes",
    });
    // The service runs in this process: inflating all 16 MiB would show here.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(12 * 1024 * 1024);
    expect(countRows(svc.db, "metrics")).toBe(0);
  });

  it("should refuse a gzip-compressed RPC message over readMaxBytes with RESOURCE_EXHAUSTED", async () => {
    const client = createClient(
      IngestService,
      createGrpcTransport({
        baseUrl: svc.url,
        sendCompression: compressionGzip,
        interceptors: [apiKey(svc.key)],
      }),
    );
    const padding = " ".repeat(4 * 1024 * 1024);
    const error = await failure(
      client.ingest({
        service: "test-service",
        events: [{ kind: { case: "custom", value: { metricName: padding } }, value: 1 }],
      }),
    );
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(countRows(svc.db, "metrics")).toBe(0);
  });
});
