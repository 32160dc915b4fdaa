// backends: sqlite only: memory under a flood bounded at the door; a process on its SQLite file
import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import BetterSqlite3 from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IngestRequestSchema } from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { type ServiceProcess, spawnService } from "../support/process.js";
import { tempDir } from "../support/service.js";

const KEY = "flood-key-0123456789abcdef";
const MAX_REQUEST_BYTES = 1024 * 1024;
/** The default of METRICS_MAX_CONCURRENT_REQUESTS, set explicitly so the printed bound is the tested one. */
const MAX_CONCURRENT = 64;
/** The default of METRICS_MAX_ANONYMOUS_REQUESTS. */
const MAX_ANONYMOUS = 16;
/**
 * Memory one request may take, in multiples of its body: about 5 live (the body,
 * its text, the parsed batch, the rendered rows), and as much again of garbage
 * the collector has not reclaimed yet (docs/security.md, "Limits and their defaults").
 */
const WORKING_SET_PER_BODY = 8;
/** Requests sent at once by each ingress: far more than the bound. */
const FLOOD = 600;

/** Resident set size and its peak (VmHWM) of a process, in bytes. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]) * 1024;
  return { rss: kib("VmRSS"), peak: kib("VmHWM") };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

/** Metadata of about 9 KB, within the contract's limits (30 fields of up to 1000 characters). */
const BIG_METADATA = Object.fromEntries(
  Array.from({ length: 9 }, (_, i) => [`field_${i}`, "x".repeat(1000)]),
);

/** A valid legacy batch of 100 events just under the cap, which the service parses and commits. */
function bigLegacyBody(): Buffer {
  const metric = { type: "custom", value: 1, metadata: BIG_METADATA };
  return Buffer.from(
    JSON.stringify({ service: "flood", metrics: Array.from({ length: 100 }, () => metric) }),
  );
}

/** A gRPC-framed IngestRequest just under the cap. */
function bigGrpcFrame(): Buffer {
  const message = toBinary(
    IngestRequestSchema,
    create(IngestRequestSchema, {
      service: "flood",
      events: Array.from({ length: 100 }, () => ({
        value: 1,
        metadata: BIG_METADATA,
        kind: { case: "custom" as const, value: { metricName: "flood" } },
      })),
    }),
  );
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(frame, 5);
  return frame;
}

/** POSTs `body` over its own HTTP/1.1 connection; resolves with the status (0: connection error). */
function postJson(url: string, body: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      `${url}/metrics`,
      {
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", "x-api-key": KEY },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", () => resolve(0));
    req.end(body);
  });
}

/** Sends `count` gRPC Ingest calls on one HTTP/2 session; resolves with each grpc-status. */
function grpcCalls(url: string, frame: Buffer, count: number): Promise<string[]> {
  // The client buffers every body it sends at once: let it, past Node's 10 MB default.
  const session = http2.connect(url, { maxSessionMemory: 4096 });
  session.on("error", () => {});
  const calls = Array.from(
    { length: count },
    () =>
      new Promise<string>((resolve) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/mcp.metrics.v1.IngestService/Ingest",
          "content-type": "application/grpc",
          te: "trailers",
          "x-api-key": KEY,
        });
        let status = "none";
        stream.on("response", (headers) => {
          status = String(headers["grpc-status"] ?? status);
        });
        stream.on("trailers", (trailers) => {
          status = String(trailers["grpc-status"] ?? status);
        });
        stream.on("error", () => {});
        stream.on("close", () => resolve(status));
        stream.resume();
        stream.end(frame);
      }),
  );
  return Promise.all(calls).finally(() => session.close());
}

const tally = (values: readonly (string | number)[]) =>
  values.reduce<Record<string, number>>((t, v) => {
    t[v] = (t[v] ?? 0) + 1;
    return t;
  }, {});

describe("memory under a flood of large requests", () => {
  let svc: ServiceProcess;
  const dbPath = `${tempDir()}/metrics.db`;
  beforeAll(async () => {
    svc = await spawnService({
      SQLITE_DB_PATH: dbPath,
      METRICS_API_KEY_FLOOD: KEY,
      METRICS_RATE_LIMIT: "100000000",
      METRICS_MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES),
      METRICS_MAX_CONCURRENT_REQUESTS: String(MAX_CONCURRENT),
      // The flood is one key from one address, and this test is about the
      // pool's memory bound: the key's share and the address's connection cap
      // (test/server/fair-share.test.ts, connection-limits.test.ts) stand aside.
      METRICS_MAX_CONCURRENT_REQUESTS_PER_KEY: String(MAX_CONCURRENT),
      METRICS_MAX_CONNECTIONS_PER_ADDRESS: "4096",
      LOG_LEVEL: "info",
    });
  });
  afterAll(async () => {
    svc.child.kill("SIGTERM");
    await svc.exited;
  });

  it("should refuse what exceeds the bound and keep its peak RSS proportional to the bound, not the flood", async () => {
    const pid = svc.child.pid ?? 0;
    const before = memoryOf(pid);
    const json = bigLegacyBody();
    const frame = bigGrpcFrame();
    expect(json.length).toBeLessThan(MAX_REQUEST_BYTES);
    expect(frame.length).toBeLessThan(MAX_REQUEST_BYTES);

    const started = Date.now();
    const [jsonStatuses, grpcStatuses] = await Promise.all([
      Promise.all(Array.from({ length: FLOOD }, () => postJson(svc.url, json))),
      Promise.all([0, 1, 2].map(() => grpcCalls(svc.url, frame, FLOOD / 3))).then((s) => s.flat()),
    ]);
    const seconds = (Date.now() - started) / 1000;
    const after = memoryOf(pid);
    const sent = FLOOD * (json.length + frame.length);
    console.log(
      `memory flood: ${2 * FLOOD} requests, ${mib(sent)} in ${seconds.toFixed(1)} s; ` +
        `JSON statuses ${JSON.stringify(tally(jsonStatuses))}, gRPC statuses ${JSON.stringify(tally(grpcStatuses))}; ` +
        `RSS before ${mib(before.rss)}, peak RSS ${mib(after.peak)} (bound: ${MAX_CONCURRENT} requests of at most ${mib(MAX_REQUEST_BYTES)})`,
    );

    // Every request got an answer: stored (200 / OK=0) or refused as overloaded (503 / UNAVAILABLE=14).
    expect(jsonStatuses.filter((s) => s !== 503 && s !== 200)).toEqual([]);
    expect(grpcStatuses.filter((s) => s !== "14" && s !== "0")).toEqual([]);
    expect(jsonStatuses).toContain(503);
    expect(grpcStatuses).toContain("14");
    // Each acknowledged batch is on disk, and nothing else.
    const acknowledged =
      jsonStatuses.filter((s) => s === 200).length + grpcStatuses.filter((s) => s === "0").length;
    expect(acknowledged).toBeGreaterThan(0);
    const db = new BetterSqlite3(dbPath, { readonly: true });
    const stored = (db.prepare("SELECT count(*) AS n FROM metrics").get() as { n: number }).n;
    db.close();
    expect(stored).toBe(acknowledged * 100);
    // Within the documented bound, far under what buffering the flood would take.
    const bound = (MAX_CONCURRENT + MAX_ANONYMOUS) * MAX_REQUEST_BYTES * WORKING_SET_PER_BODY;
    expect(after.peak - before.rss).toBeLessThan(bound);
    // And the service is still there, answering.
    expect((await fetch(`${svc.url}/health`)).status).toBe(200);
  }, 120_000);
});
