import { connect } from "node:net";
import { deflateSync, gzipSync } from "node:zlib";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVENT_KINDS } from "../../src/catalog/catalog.js";
import { legacyMetric } from "../support/legacy.js";
import { writeResult } from "../support/results.js";
import { countIn, startTestService, type TestService } from "../support/service.js";
import {
  byteMutations,
  deepJson,
  expectStoredAsAnswered,
  fuzzParams,
  fuzzRuns,
  invalidUtf8,
  mutateBytes,
  mutateTree,
  nastyValue,
  timeoutFor,
  toJsonText,
  treeMutations,
} from "./fuzz.js";

/** Every status POST /metrics may answer a client's mistake with (docs/legacy-contract.md §1, §2; docs/legacy-contract.md W15: 403). */
const CLIENT_STATUSES = [200, 400, 403, 409, 413, 415, 422];

/** The body limit of this file's service: small, so that 413 is reached cheaply. */
const MAX_BODY_BYTES = 256 * 1024;

/** Every legacy type, from the event catalog. */
const METRIC_TYPES = EVENT_KINDS.map((k) => k.name);

/** Keys the legacy decoder and validator read, so that mutations hit them often. */
const KNOWN_KEYS = [
  "service",
  "version",
  "instance_id",
  "metrics",
  "type",
  "value",
  "timestamp",
  "duration_ms",
  "dimensions",
  "metadata",
  "success",
  "method",
  "tool_name",
  "error_code",
  "input_size_bytes",
  "results_count",
  "flow_step",
];

const scalar = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);

/** A metric the legacy service would take, of any type. */
const validMetric = fc.record(
  {
    type: fc.constantFrom(...METRIC_TYPES),
    value: fc.double({ min: -1e6, max: 1e6, noNaN: true }),
    duration_ms: fc.double({ min: 0, max: 1e6, noNaN: true }),
    timestamp: fc
      .integer({ min: 0, max: 3_600_000 })
      .map((ago) => new Date(Date.now() - ago).toISOString()),
    dimensions: fc.dictionary(fc.stringMatching(/^[a-z_][a-z0-9_]{0,12}$/), scalar, {
      maxKeys: 4,
    }),
    metadata: fc.dictionary(fc.string({ maxLength: 12 }), scalar, { maxKeys: 4 }),
  },
  { requiredKeys: ["type", "value"] },
);

/** A batch as the test-service key may send it. */
const validBatch = fc.record({
  service: fc.constant("test-service"),
  version: fc.constant("1.2.3"),
  instance_id: fc.constant("pod-1"),
  metrics: fc.array(validMetric, { minLength: 1, maxLength: 5 }),
});

interface Answer {
  readonly status: number;
  readonly text: string;
}

/** Inserts `"key":value,` after the `n`th `{` of a JSON text: a duplicate key when the key is there already. */
function duplicateKey(text: string, n: number, key: string, value: string): string {
  const opens = [...text.matchAll(/\{/g)].map((m) => m.index);
  if (opens.length === 0) return text;
  const at = (opens[n % opens.length] as number) + 1;
  return `${text.slice(0, at)}${JSON.stringify(key)}:${value},${text.slice(at)}`;
}

describe("bad input over POST /metrics (property-based)", () => {
  const suiteStarted = performance.now();
  let svc: TestService;
  /** What every 200 said it stored, by request id: checked against SQLite at the end. */
  const accepted = new Map<string, number>();
  /** Request ids of batches answered as rejected: nothing of them may be stored. */
  const rejected = new Set<string>();
  let baseline: { requestId: string; rows: number };
  const sent = { requests: 0 };

  async function post(body: Uint8Array | string, headers: Record<string, string> = {}) {
    sent.requests++;
    const res = await fetch(`${svc.url}/metrics`, {
      method: "POST",
      // A Buffer body: fetch adds no content-type of its own.
      headers: { "x-api-key": svc.key, ...headers },
      body: typeof body === "string" ? Buffer.from(body) : body,
    });
    return { status: res.status, text: await res.text() };
  }

  /**
   * The answer to a client's mistake: a 4xx or a 200, a JSON body that says
   * what was wrong in the contract's shape, and an account of what was stored.
   */
  function expectNamedAnswer(answer: Answer): void {
    const where = `${answer.status} ${answer.text.slice(0, 500)}`;
    expect(answer.status, where).toBeLessThan(500);
    expect(CLIENT_STATUSES, where).toContain(answer.status);
    const body = JSON.parse(answer.text) as Record<string, unknown>;
    if (answer.status === 200) {
      expect(body, where).toMatchObject({
        status: "success",
        accepted: expect.any(Number),
        rejected: expect.any(Number),
        errors: expect.any(Array),
        request_id: expect.stringMatching(/^req_[0-9a-f]{16}$/),
      });
      const requestId = body.request_id as string;
      const errors = body.errors as unknown[];
      if ((body.accepted as number) > 0) {
        expect(body.rejected, where).toBe(0);
        expect(errors, where).toEqual([]);
        accepted.set(requestId, body.accepted as number);
      } else {
        // Contract §2 layer B: every message is "<field path>: <message>".
        expect(errors.length, where).toBeGreaterThan(0);
        for (const error of errors) {
          expect(error, where).toMatch(/^(service|version|instance_id|batch_id|metrics)[[.:]/);
          expect(error, where).toContain(": ");
        }
        rejected.add(requestId);
      }
    } else if (answer.status === 422) {
      const detail = body.detail as { type: unknown; loc: unknown[]; msg: unknown }[];
      expect(detail.length, where).toBeGreaterThan(0);
      for (const item of detail) {
        expect(item.type, where).toEqual(expect.stringMatching(/^[a-z_]+$/));
        expect(item.loc[0], where).toBe("body");
        expect(item.msg, where).toEqual(expect.stringMatching(/\S/));
      }
    } else {
      expect(body.detail, where).toEqual(expect.stringMatching(/\S/));
    }
  }

  beforeAll(async () => {
    svc = await startTestService({
      METRICS_RATE_LIMIT: "100000000",
      METRICS_MAX_REQUEST_BYTES: String(MAX_BODY_BYTES),
      // A sweep would delete accepted events with old timestamps (retention goes by event time).
      METRICS_RETENTION_ENABLED: "false",
    });
    // A known good batch, stored before any bad input arrives.
    const res = await fetch(`${svc.url}/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": await svc.keyFor("baseline") },
      body: JSON.stringify({
        service: "baseline",
        metrics: [legacyMetric(), legacyMetric({ type: "custom", value: 2 }), legacyMetric()],
      }),
    });
    const body = (await res.json()) as { accepted: number; request_id: string };
    expect(body.accepted).toBe(3);
    baseline = { requestId: body.request_id, rows: 3 };
  });
  afterAll(async () => {
    await svc.close();
  });

  const anyJsonRuns = fuzzRuns(200);
  it(
    "should answer any JSON value with a 4xx or a named rejection, never a 5xx",
    async () => {
      const bodies = fc.oneof(
        fc.jsonValue(),
        fc.record(
          { service: fc.jsonValue({ maxDepth: 2 }), metrics: fc.jsonValue({ maxDepth: 4 }) },
          { requiredKeys: [] },
        ),
        fc.record({
          service: fc.constant("test-service"),
          metrics: fc.array(fc.dictionary(fc.constantFrom(...KNOWN_KEYS), fc.jsonValue()), {
            maxLength: 3,
          }),
        }),
      );
      await fc.assert(
        fc.asyncProperty(bodies, async (body) => {
          expectNamedAnswer(
            await post(JSON.stringify(body) ?? "null", { "content-type": "application/json" }),
          );
        }),
        fuzzParams(anyJsonRuns),
      );
    },
    timeoutFor(anyJsonRuns, 10),
  );

  const mutatedRuns = fuzzRuns(300);
  it(
    "should answer mutated batches (dropped, replaced, retyped fields; huge numbers, NaN, long strings, deep values) without a 5xx",
    async () => {
      await fc.assert(
        fc.asyncProperty(validBatch, treeMutations(KNOWN_KEYS), async (batch, mutations) => {
          const text = toJsonText(mutateTree(batch, mutations));
          expectNamedAnswer(await post(text, { "content-type": "application/json" }));
        }),
        fuzzParams(mutatedRuns),
      );
    },
    timeoutFor(mutatedRuns, 10),
  );

  const rawRuns = fuzzRuns(200);
  it(
    "should answer raw-text damage (duplicate keys, BOM, truncation, flipped and inserted bytes) without a 5xx",
    async () => {
      const damage = fc.record({
        duplicate: fc.option(
          fc.tuple(
            fc.nat(),
            fc.constantFrom(...KNOWN_KEYS),
            fc.oneof(
              nastyValue.map((v) => toJsonText(v)),
              fc.constant('"test-service"'),
            ),
          ),
          { nil: undefined },
        ),
        bom: fc.constantFrom("", "\ufeff", "\ufeff\ufeff"),
        bytes: fc.option(byteMutations, { nil: undefined }),
      });
      await fc.assert(
        fc.asyncProperty(validBatch, damage, async (batch, d) => {
          let text = JSON.stringify(batch);
          if (d.duplicate) text = duplicateKey(text, ...d.duplicate);
          const bytes = Buffer.from(d.bom + text);
          const body = d.bytes ? mutateBytes(bytes, d.bytes) : bytes;
          expectNamedAnswer(await post(body, { "content-type": "application/json" }));
        }),
        fuzzParams(rawRuns),
      );
    },
    timeoutFor(rawRuns, 10),
  );

  const typeRuns = fuzzRuns(80, 0.5);
  it(
    "should answer wrong or missing content types and encodings without a 5xx",
    async () => {
      const contentType = fc.constantFrom(
        undefined,
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/proto",
        "application/grpc",
        "application/connect+json",
        "application/vnd.api+json",
        "*/*",
        "",
        "garbage;;;=",
      );
      const encoding = fc.constantFrom(
        "none",
        "gzip",
        "deflate",
        "gzip-header-plain-body",
        "br",
        "gzip, gzip",
        "identity",
      );
      await fc.assert(
        fc.asyncProperty(validBatch, contentType, encoding, async (batch, type, enc) => {
          const plain = Buffer.from(JSON.stringify(batch));
          const headers: Record<string, string> = {};
          if (type !== undefined) headers["content-type"] = type;
          let body: Buffer = plain;
          if (enc === "gzip") body = gzipSync(plain);
          if (enc === "deflate") body = deflateSync(plain);
          if (enc !== "none") {
            headers["content-encoding"] = enc === "gzip-header-plain-body" ? "gzip" : enc;
          }
          expectNamedAnswer(await post(body, headers));
        }),
        fuzzParams(typeRuns),
      );
    },
    timeoutFor(typeRuns, 10),
  );

  it("should answer values nested 10,000 levels deep with a 422 or a named rejection, never a 500", async () => {
    const deep = deepJson(10_000, "array");
    const deepObject = deepJson(10_000, "object");
    const metric = (extra: string) => `{"type":"custom","value":1${extra}}`;
    const batch = (metrics: string) => `{"service":"test-service","metrics":[${metrics}]}`;
    const cases: [string, string, number][] = [
      ["the whole body", deep, 422],
      ["the whole body, as objects", deepObject, 422],
      ["metrics", `{"service":"test-service","metrics":${deep}}`, 422],
      ["a metric", batch(deep), 422],
      ["a metric's value", batch(`{"type":"custom","value":${deep}}`), 422],
      ["a metric's timestamp", batch(metric(`,"timestamp":${deep}`)), 422],
      ["a metric's duration", batch(metric(`,"duration_ms":${deepObject}`)), 422],
      ["the service, with metrics missing", `{"service":${deep}}`, 422],
      ["a dimension", batch(metric(`,"dimensions":{"d":${deep}}`)), 200],
      ["a metadata value", batch(metric(`,"metadata":{"m":${deepObject}}`)), 200],
      [
        "a dimension, with a NaN value",
        batch(`{"type":"custom","value":NaN,"dimensions":{"d":${deep}}}`),
        200,
      ],
      ["dimensions themselves", batch(metric(`,"dimensions":${deepObject}`)), 200],
    ];
    for (const [name, raw, status] of cases) {
      const answer = await post(raw, { "content-type": "application/json" });
      expect(answer.status, name).toBe(status);
      expectNamedAnswer(answer);
      if (status === 422) {
        // The echoed input is cut off, not dropped: the client still sees where it was.
        expect(answer.text, name).toContain("<nested too deeply to show>");
      }
    }
  });

  it("should answer NaN and Infinity tokens nested thousands deep like any other deep value", async () => {
    // A reviver walk once overflowed the stack here and called the JSON invalid (at position 0).
    const deep = deepJson(6_000, "array", "NaN");
    const answer = await post(
      `{"service":"test-service","metrics":[{"type":"custom","value":1,"metadata":{"m":${deep}}}]}`,
      { "content-type": "application/json" },
    );
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text).errors).toEqual([
      "metrics[0].metadata.m: Metadata value nested too deeply: max 32 levels",
    ]);
  });

  it("should answer POST /metrics in the legacy way whatever its content type claims", async () => {
    // An RPC content type once made this path answer as an RPC: HTTP 200 with a gRPC status.
    for (const type of [
      "application/grpc",
      "application/grpc-web+proto",
      "application/connect+json",
      "application/connect+proto",
    ]) {
      const res = await fetch(`${svc.url}/metrics`, {
        method: "POST",
        headers: { "content-type": type },
        body: Buffer.from(JSON.stringify({ service: "test-service", metrics: [legacyMetric()] })),
      });
      expect(res.status, type).toBe(401);
      expect(await res.json()).toEqual({ detail: "API key required in X-API-Key header" });
      const broken = await post("{", { "content-type": type });
      expect(broken.status, type).toBe(422);
    }
  });

  it("should answer a body over the limit with 413 naming the limit", async () => {
    const metrics = Array.from({ length: 100 }, () =>
      legacyMetric({ metadata: { note: "n".repeat(3000) } }),
    );
    const answer = await post(JSON.stringify({ service: "test-service", metrics }), {
      "content-type": "application/json",
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.text).detail).toContain(String(MAX_BODY_BYTES));
  });

  const utf8Runs = fuzzRuns(40, 0.25);
  it(
    "should refuse a body that is not UTF-8 with 400 naming the problem, storing nothing",
    async () => {
      // Needs the legacy route to read its body with readTextBody (src/http/read-body.ts).
      await fc.assert(
        fc.asyncProperty(validBatch, fc.nat(), invalidUtf8, async (batch, at, bad) => {
          const text = Buffer.from(JSON.stringify(batch));
          const cut = at % (text.length + 1);
          const body = Buffer.concat([text.subarray(0, cut), bad, text.subarray(cut)]);
          const answer = await post(body, { "content-type": "application/json" });
          expectNamedAnswer(answer);
          expect(answer.status, answer.text).toBe(400);
          expect(JSON.parse(answer.text).detail).toMatch(/UTF-8/);
        }),
        fuzzParams(utf8Runs),
      );
    },
    timeoutFor(utf8Runs, 10),
  );

  const abortRuns = fuzzRuns(12, 0.05);
  it(
    "should survive bodies cut off mid-way by the client and keep serving",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          validBatch,
          fc.nat(),
          fc.constantFrom("end", "destroy"),
          async (batch, at, how) => {
            const body = Buffer.from(JSON.stringify(batch));
            const cut = at % body.length;
            const head =
              "POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
              `X-API-Key: ${svc.key}\r\nContent-Length: ${body.length}\r\n\r\n`;
            const reply = await new Promise<string>((resolve) => {
              const socket = connect(svc.port, "127.0.0.1");
              let got = "";
              socket.on("data", (d: Buffer) => {
                got += d.toString("latin1");
              });
              socket.on("error", () => resolve(got));
              socket.on("close", () => resolve(got));
              socket.write(head);
              socket.write(body.subarray(0, cut), () => {
                if (how === "end") socket.end();
                else socket.destroy();
              });
            });
            const status = /^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1];
            if (status !== undefined) expect(Number(status), reply).toBeLessThan(500);
            expect((await fetch(`${svc.url}/health`)).status).toBe(200);
          },
        ),
        fuzzParams(abortRuns),
      );
    },
    timeoutFor(abortRuns, 50),
  );

  it("should have stored exactly what it accepted, kept the baseline, and still take a good batch", async () => {
    await expectStoredAsAnswered(svc.sql, baseline, accepted, rejected);

    const good = await post(
      JSON.stringify({ service: "test-service", metrics: [legacyMetric(), legacyMetric()] }),
      { "content-type": "application/json" },
    );
    expect(good.status).toBe(200);
    const body = JSON.parse(good.text) as { accepted: number; request_id: string };
    expect(body.accepted).toBe(2);
    expect(await countIn(svc.sql, "metrics", "request_id = ?", body.request_id)).toBe(2);
    expect((await fetch(`${svc.url}/health`)).status).toBe(200);
    if (process.env.FUZZ_RUNS) {
      console.info(
        `bad-input-json: ${sent.requests} requests, ${accepted.size} accepted, ${rejected.size} rejected with 200`,
      );
      // npm run test:fuzz: bench/results/fuzz-json-<backend>-<timestamp>.json (the docs' figures).
      writeResult("fuzz-json", {
        fuzzRuns: Number(process.env.FUZZ_RUNS),
        seed: process.env.FUZZ_SEED ?? null,
        requests: sent.requests,
        accepted: accepted.size,
        rejectedWith200: rejected.size,
        seconds: Math.round((performance.now() - suiteStarted) / 100) / 10,
      });
    }
  });
});
