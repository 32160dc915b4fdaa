// backends: sqlite only: ambiguous requests are refused before storage
import { request } from "node:http";
import http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createH2,
  envelope,
  h1Call,
  INGEST,
  INGEST_STREAM,
  ingestBytes,
} from "../reliability/rpc-wire.js";
import { legacyMetric } from "../support/legacy.js";
import { countIn, startTestService, type TestService } from "../support/service.js";

const ADMIN_KEY = "admin-key-ambiguity-0123456789";

/** A POST with `headers`, where a header with several values is sent as that many fields. */
function post(
  url: string,
  headers: Record<string, string | string[]>,
  body: string,
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers });
    req.on("response", (res) => {
      let text = "";
      res.on("data", (d: Buffer) => {
        text += d.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("regression: ambiguous requests are refused, not guessed", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({ METRICS_ADMIN_API_KEY: ADMIN_KEY });
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should answer a JSON request with two X-API-Key headers 400 naming the header, storing nothing", async () => {
    for (const keys of [
      [svc.key, svc.key],
      [svc.key, "another-key"],
    ]) {
      const res = await post(
        `${svc.url}/metrics`,
        { "content-type": "application/json", "x-api-key": keys },
        JSON.stringify({ service: "test-service", metrics: [legacyMetric()] }),
      );
      expect(res).toEqual({
        status: 400,
        json: { detail: "X-API-Key: the header is given 2 times; give it once" },
      });
    }
    const rateLimit = await fetch(`${svc.url}/rate-limit`, {
      headers: { "x-api-key": svc.key },
    });
    expect(rateLimit.status).toBe(200);
    expect(await countIn(svc.sql, "metrics", "service = 'test-service'")).toBe(0);
  });

  it("should answer an RPC with two x-api-key headers INVALID_ARGUMENT on every protocol", async () => {
    const h2 = createH2(svc.url);
    try {
      const keys = [svc.key, svc.key];
      const grpc = await h2.call(INGEST, envelope(ingestBytes("test-service")), {
        "content-type": "application/grpc",
        "x-api-key": keys,
      });
      const connect = await h1Call(svc.url, INGEST, ingestBytes("test-service"), {
        "content-type": "application/proto",
        "x-api-key": keys,
      });
      const grpcWeb = await h1Call(svc.url, INGEST, envelope(ingestBytes("test-service")), {
        "content-type": "application/grpc-web+proto",
        "x-api-key": keys,
      });
      for (const outcome of [grpc, connect, grpcWeb]) {
        expect(outcome.kind).toBe("error");
        if (outcome.kind !== "error") continue;
        expect(outcome.error.code).toBe(Code.InvalidArgument);
        expect(outcome.error.rawMessage).toBe(
          "X-API-Key: the header is given 2 times; give it once",
        );
      }
    } finally {
      h2.close();
    }
    expect(await countIn(svc.sql, "metrics", "service = 'test-service'")).toBe(0);
  });

  it("should answer an admin call with a repeated query parameter 400 naming it, deleting nothing", async () => {
    await svc.sql.run(
      "INSERT INTO metrics (request_id, service, metric_type, timestamp, value) VALUES ('r', 'old', 'custom', '2020-01-01T00:00:00.000000Z', 1)",
    );
    const res = await fetch(
      `${svc.url}/admin/retention/cleanup?dry_run=false&table_name=metrics&dry_run=true`,
      { method: "POST", headers: { "x-api-key": ADMIN_KEY } },
    );
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      detail: "dry_run: the query parameter is given 2 times; give it once",
    });
    expect(await countIn(svc.sql, "metrics", "service = 'old'")).toBe(1);
    const once = await fetch(`${svc.url}/admin/retention/cleanup?dry_run=true`, {
      method: "POST",
      headers: { "x-api-key": ADMIN_KEY },
    });
    expect(once.status).toBe(200);
  });

  it.each([
    ["0x02", 0x02],
    ["0x80", 0x80],
    ["0xfe", 0xfe],
  ])(
    "should answer a request envelope with reserved flag bits %s INVALID_ARGUMENT on gRPC, gRPC-Web and Connect streams, storing nothing",
    async (_hex, flags) => {
      const service = `flags-${flags}`;
      const h2 = createH2(svc.url);
      try {
        const outcomes = [
          await h2.call(INGEST, envelope(ingestBytes(service), flags), {
            "content-type": "application/grpc",
            "x-api-key": svc.key,
          }),
          await h2.call(INGEST_STREAM, envelope(ingestBytes(service), flags), {
            "content-type": "application/grpc",
            "x-api-key": svc.key,
          }),
          await h1Call(svc.url, INGEST, envelope(ingestBytes(service), flags), {
            "content-type": "application/grpc-web+proto",
            "x-api-key": svc.key,
          }),
          await h1Call(svc.url, INGEST_STREAM, envelope(ingestBytes(service), flags), {
            "content-type": "application/connect+proto",
            "x-api-key": svc.key,
          }),
        ];
        for (const outcome of outcomes) {
          expect(outcome.kind, JSON.stringify(outcome)).toBe("error");
          if (outcome.kind !== "error") continue;
          expect(outcome.error.code, outcome.error.rawMessage).toBe(Code.InvalidArgument);
          expect(outcome.error.rawMessage).toContain(
            `sets reserved flag bits (0x${flags.toString(16).padStart(2, "0")})`,
          );
        }
      } finally {
        h2.close();
      }
      expect(await countIn(svc.sql, "metrics", "service = ?", service)).toBe(0);
    },
  );

  it("should hold many idle streams open without a listener warning on stderr", async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on("warning", onWarning);
    const session = http2.connect(svc.url);
    session.on("error", () => {});
    try {
      const streams = Array.from({ length: 20 }, () => {
        const stream = session.request({
          ":method": "POST",
          ":path": INGEST_STREAM,
          "content-type": "application/grpc",
          "x-api-key": svc.key,
        });
        stream.on("error", () => {});
        stream.write(envelope(ingestBytes("idle-streams")));
        return stream;
      });
      await expect.poll(() => countIn(svc.sql, "metrics", "service = 'idle-streams'")).toBe(20);
      for (const stream of streams) stream.close();
    } finally {
      session.close();
      process.off("warning", onWarning);
    }
    expect(warnings.filter((w) => w.startsWith("MaxListenersExceededWarning"))).toEqual([]);
  });

  it("should still take a message flagged only as compressed when the request names its encoding", async () => {
    const { gzipSync } = await import("node:zlib");
    const h2 = createH2(svc.url);
    try {
      const outcome = await h2.call(INGEST, envelope(gzipSync(ingestBytes("gzipped")), 0x01), {
        "content-type": "application/grpc",
        "grpc-encoding": "gzip",
        "x-api-key": svc.key,
      });
      expect(outcome).toMatchObject({ kind: "ok", accepted: 1 });
    } finally {
      h2.close();
    }
  });
});
