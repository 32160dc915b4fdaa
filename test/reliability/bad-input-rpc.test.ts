import {
  create,
  type JsonObject,
  type JsonValue,
  type MessageInitShape,
  toBinary,
  toJson,
  toJsonString,
} from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { EventSchema } from "../../gen/mcp/metrics/v1/events_pb.js";
import {
  type IngestRequest,
  IngestRequestSchema,
  type IngestService,
  IngestStreamRequestSchema,
  IngestStreamResponseSchema,
} from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { failure, ingestClient, PROTOCOLS } from "../support/clients.js";
import { mixedBatch } from "../support/events.js";
import { writeResult } from "../support/results.js";
import { countIn, startTestService, type TestService } from "../support/service.js";
import {
  byteMutations,
  deepJson,
  expectStoredAsAnswered,
  fuzzParams,
  fuzzRuns,
  mutateBytes,
  mutateTree,
  nastyString,
  timeoutFor,
  toJsonText,
  treeMutations,
} from "./fuzz.js";
import {
  createH2,
  envelope,
  HEALTH_CHECK,
  h1Call,
  INGEST,
  INGEST_STREAM,
  type RawOutcome,
} from "./rpc-wire.js";

/**
 * Codes a client's mistake may be answered with. UNIMPLEMENTED only for what
 * the Connect and gRPC protocols define it for: an unknown compression, a
 * unary call without its one message. Never INTERNAL or UNKNOWN (the server's
 * fault) nor UNAVAILABLE (retry: the same bytes would fail again).
 */
const CLIENT_CODES = new Set([
  Code.InvalidArgument,
  Code.PermissionDenied,
  Code.ResourceExhausted,
  Code.AlreadyExists,
  Code.Unimplemented,
  Code.DeadlineExceeded,
  Code.NotFound,
]);

/** HTTP statuses for requests no RPC protocol takes (a content type, a method). */
const HTTP_REFUSALS = [405, 415];

/** A field path as the RPC validator writes it (`events[2].dimensions.k`, `service`); a key may hold any character. */
const FIELD_PATH =
  /^(service|version|instance_id|batch_id|events(\[\d+\])?(\..+)?|messages\[\d+\]\..+)$/s;

const KNOWN_JSON_KEYS = [
  "service",
  "version",
  "instanceId",
  "instance_id",
  "events",
  "timestamp",
  "value",
  "durationMs",
  "dimensions",
  "metadata",
  "authRequest",
  "toolExecution",
  "custom",
  "healthCheck",
  "inputSizeBytes",
  "flowStep",
  "seconds",
  "nanos",
];

/** A request for a failure message: JSON where it can be written, else its binary form. */
function describeRequest(request: IngestRequest): string {
  try {
    return toJsonString(IngestRequestSchema, request).slice(0, 300);
  } catch {
    return Buffer.from(toBinary(IngestRequestSchema, request)).toString("hex").slice(0, 300);
  }
}

/** Every framing a protobuf body can arrive in. */
type Framing = "connect" | "grpc" | "grpc-web";
const FRAMINGS: Framing[] = ["connect", "grpc", "grpc-web"];

const validRequest = () => create(IngestRequestSchema, mixedBatch("test-service"));
const validBinary = toBinary(IngestRequestSchema, validRequest());
const validStreamBinary = toBinary(
  IngestStreamRequestSchema,
  create(IngestStreamRequestSchema, mixedBatch("test-service")),
);

/** Nested Values (list in list in list) `levels` deep, as protobuf bytes of a google.protobuf.Value. */
function deepValue(levels: number): Uint8Array {
  let value = new BinaryWriter().tag(2, WireType.Bit64).double(1).finish();
  for (let i = 0; i < levels; i++) {
    const list = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(value).finish();
    value = new BinaryWriter().tag(6, WireType.LengthDelimited).bytes(list).finish();
  }
  return value;
}

/** An IngestRequest whose one custom event has a dimension nested `levels` deep. */
function deepRequest(levels: number): Uint8Array {
  const entry = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string("d")
    .tag(2, WireType.LengthDelimited)
    .bytes(deepValue(levels))
    .finish();
  const struct = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(entry).finish();
  const event = new BinaryWriter()
    .tag(4, WireType.LengthDelimited)
    .bytes(struct)
    .tag(16, WireType.LengthDelimited)
    .bytes(new Uint8Array())
    .finish();
  return new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string("test-service")
    .tag(4, WireType.LengthDelimited)
    .bytes(event)
    .finish();
}

/** An IngestRequest with an unknown group field nested `levels` deep (skipped, not decoded). */
function deepGroups(levels: number): Uint8Array {
  const w = new BinaryWriter().tag(1, WireType.LengthDelimited).string("test-service");
  for (let i = 0; i < levels; i++) w.tag(99, WireType.StartGroup);
  for (let i = 0; i < levels; i++) w.tag(99, WireType.EndGroup);
  return w.finish();
}

/** A JSON-able value nested `depth` lists deep, for a Struct. */
function nestedList(depth: number): JsonValue {
  let v: JsonValue = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

const structValue = fc.oneof(
  // fast-check's JSON types are protobuf-es's, but for optional keys.
  { arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => v as JsonValue), weight: 4 },
  { arbitrary: fc.integer({ min: 1, max: 120 }).map(nestedList), weight: 1 },
  { arbitrary: fc.constantFrom(Number.NaN, Infinity, -0, 1e308, "x".repeat(300)), weight: 1 },
);
const struct: fc.Arbitrary<JsonObject> = fc.dictionary(
  fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.constantFrom("success", "tool_name", "le", "__name__", "__proto__"),
  ),
  structValue,
  { maxKeys: 25 },
);
const nastyDouble = fc.oneof(
  fc.double(),
  fc.constantFrom(-0, 1e308, -1e308, 1e12, 1e12 + 1, 86_400_001, 5e-324, Number.NaN, Infinity),
);
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const kind = fc.oneof(
  fc.constant({ case: undefined }),
  fc.record({
    case: fc.constant("authRequest" as const),
    value: fc.record(
      { success: fc.boolean(), method: nastyString, userHash: nastyString },
      { requiredKeys: [] },
    ),
  }),
  fc.record({
    case: fc.constant("toolExecution" as const),
    value: fc.record(
      { toolName: nastyString, method: nastyString, inputSizeBytes: int64, outputSizeBytes: int64 },
      { requiredKeys: [] },
    ),
  }),
  fc.record({
    case: fc.constant("toolDiscovery" as const),
    value: fc.record(
      { query: nastyString, resultsCount: fc.integer(), embeddingTimeMs: nastyDouble },
      { requiredKeys: [] },
    ),
  }),
  fc.record({
    case: fc.constant("protocolLatency" as const),
    value: fc.record(
      { flowStep: fc.integer({ min: -3, max: 9 }), sessionId: nastyString },
      { requiredKeys: [] },
    ),
  }),
  fc.record({
    case: fc.constant("healthCheck" as const),
    value: fc.record({ statusCode: fc.integer(), healthy: fc.boolean() }, { requiredKeys: [] }),
  }),
  fc.record({
    case: fc.constant("custom" as const),
    value: fc.record({ metricName: nastyString }, { requiredKeys: [] }),
  }),
);
/** Events with every field anywhere in its type's range, and Struct values of any shape. */
const event: fc.Arbitrary<MessageInitShape<typeof EventSchema>> = fc.record(
  {
    timestamp: fc.record({
      // Within a Date's range mostly, and anywhere in int64 now and then.
      seconds: fc.oneof(
        { arbitrary: fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n }), weight: 4 },
        { arbitrary: int64, weight: 1 },
      ),
      nanos: fc.integer({ min: -2_000_000_000, max: 2_000_000_000 }),
    }),
    value: nastyDouble,
    durationMs: nastyDouble,
    dimensions: struct,
    metadata: struct,
    kind,
  },
  { requiredKeys: [] },
);
/** Typed requests a real client can send, most of them wrong somewhere. */
const typedRequest = fc.record({
  service: fc.oneof(fc.constant("test-service"), nastyString),
  version: fc.option(nastyString, { nil: undefined }),
  instanceId: fc.option(nastyString, { nil: undefined }),
  events: fc.array(event, { maxLength: 6 }),
});

describe("bad input over the RPCs (property-based)", () => {
  const suiteStarted = performance.now();
  let svc: TestService;
  let h2: ReturnType<typeof createH2>;
  let clients: { name: string; json: boolean; client: Client<typeof IngestService> }[];
  /** What every OK (or a stream's partial totals) said it stored, by request id. */
  const accepted = new Map<string, number>();
  let baseline: { requestId: string; rows: number };
  const sent = { calls: 0 };

  const headersFor = (framing: Framing, path: string): Record<string, string> => ({
    "x-api-key": svc.key,
    "content-type":
      framing === "grpc"
        ? "application/grpc"
        : framing === "grpc-web"
          ? "application/grpc-web+proto"
          : path === INGEST_STREAM
            ? "application/connect+proto"
            : "application/proto",
  });

  /** Sends protobuf bytes in a framing; `frames` (gRPC-style) or the plain message (Connect unary). */
  function send(
    framing: Framing,
    path: string,
    body: Uint8Array,
    headers = headersFor(framing, path),
  ) {
    sent.calls++;
    // gRPC needs HTTP/2; gRPC-Web and Connect go as browsers and curl send them.
    return framing === "grpc" ? h2.call(path, body, headers) : h1Call(svc.url, path, body, headers);
  }

  /** Asserts a ConnectError is a client-mistake code that says what was wrong. */
  function expectNamedError(error: ConnectError, where: string): void {
    // The account first: what a stream stored before it failed, even if the error is wrong.
    const totals = error.findDetails(IngestStreamResponseSchema)[0];
    if (totals !== undefined && totals.accepted > 0)
      accepted.set(totals.requestId, totals.accepted);
    expect(
      CLIENT_CODES.has(error.code),
      `${Code[error.code]}: ${error.rawMessage} (${where})`,
    ).toBe(true);
    expect(error.rawMessage, where).toMatch(/\S/);
    expect(error.rawMessage, where).not.toBe("internal error");
    if (error.code === Code.Unimplemented) {
      expect(error.rawMessage, where).toMatch(/^(protocol error|unknown compression)/);
    }
    const violations = error.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations);
    for (const v of violations) {
      expect(v.field, where).toMatch(FIELD_PATH);
      expect(v.description, where).toMatch(/\S/);
    }
    // A batch refused by validation, or by its key's service, says which field.
    const reason = error.findDetails(ErrorInfoSchema)[0]?.reason;
    if (reason === "INVALID_BATCH" || reason === "SERVICE_MISMATCH") {
      expect(violations.length, where).toBeGreaterThan(0);
    }
  }

  function expectNamedOutcome(outcome: RawOutcome, where: string): void {
    switch (outcome.kind) {
      case "ok":
        if (outcome.requestId !== "" || outcome.accepted > 0) {
          expect(outcome.requestId, where).toMatch(/^req_[0-9a-f]{16}$/);
        }
        if (outcome.accepted > 0) accepted.set(outcome.requestId, outcome.accepted);
        break;
      case "error":
        expectNamedError(outcome.error, where);
        break;
      case "http":
        expect(HTTP_REFUSALS, `${outcome.status} ${outcome.body} (${where})`).toContain(
          outcome.status,
        );
        break;
    }
  }

  beforeAll(async () => {
    svc = await startTestService({
      METRICS_RATE_LIMIT: "100000000",
      // A sweep would delete accepted events with old timestamps (retention goes by event time).
      METRICS_RETENTION_ENABLED: "false",
    });
    h2 = createH2(svc.url);
    clients = PROTOCOLS.map((p) => ({
      name: p.name,
      json: p.name.includes("JSON"),
      client: ingestClient(p, svc.url, svc.key),
    }));
    const res = await ingestClient(
      PROTOCOLS[0] as (typeof PROTOCOLS)[number],
      svc.url,
      await svc.keyFor("baseline"),
    ).ingest(mixedBatch("baseline"));
    baseline = { requestId: res.requestId, rows: res.accepted };
    expect(res.accepted).toBe(7);
  });
  afterAll(async () => {
    h2.close();
    await svc.close();
  });

  const randomRuns = fuzzRuns(100);
  it(
    "should answer random bytes as a protobuf body with INVALID_ARGUMENT naming the problem, in every framing",
    async () => {
      const framed = fc.record({
        framing: fc.constantFrom(...FRAMINGS),
        path: fc.constantFrom(INGEST, INGEST_STREAM, HEALTH_CHECK),
        bytes: fc.uint8Array({ maxLength: 1024 }),
        // gRPC-style frames: a real envelope (flags 0, or odd ones), or the bytes unframed.
        frame: fc.constantFrom("envelope", "envelope", "raw", "flag1", "flag128", "lying-length"),
      });
      await fc.assert(
        fc.asyncProperty(framed, async ({ framing, path, bytes, frame }) => {
          const unaryConnect = framing === "connect" && path !== INGEST_STREAM;
          const body =
            unaryConnect || frame === "raw"
              ? bytes
              : envelope(
                  bytes,
                  frame === "flag1" ? 1 : frame === "flag128" ? 0x80 : 0,
                  frame === "lying-length" ? bytes.length + 7 : bytes.length,
                );
          const outcome = await send(framing, path, body);
          expectNamedOutcome(
            outcome,
            `${framing} ${path} ${frame} ${Buffer.from(bytes).toString("hex").slice(0, 80)}`,
          );
        }),
        fuzzParams(randomRuns),
      );
    },
    timeoutFor(randomRuns, 15),
  );

  const mutatedRuns = fuzzRuns(150);
  it(
    "should answer damaged valid messages (bit flips, truncation, inserted and repeated bytes) with OK or a named client error",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...FRAMINGS),
          fc.constantFrom(INGEST, INGEST_STREAM),
          byteMutations,
          async (framing, path, mutations) => {
            const base = path === INGEST ? validBinary : validStreamBinary;
            const message = mutateBytes(base, mutations);
            const body = framing === "connect" && path === INGEST ? message : envelope(message);
            expectNamedOutcome(
              await send(framing, path, body),
              `${framing} ${path} ${JSON.stringify(mutations)}`,
            );
          },
        ),
        fuzzParams(mutatedRuns),
      );
    },
    timeoutFor(mutatedRuns, 15),
  );

  const streamRuns = fuzzRuns(40, 0.3);
  it(
    "should answer streams mixing good, damaged and random messages with the totals of what it stored",
    async () => {
      const message = fc.oneof(
        fc.constant(Buffer.from(validStreamBinary)),
        byteMutations.map((m) => mutateBytes(validStreamBinary, m)),
        fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom<Framing>("grpc", "grpc-web", "connect"),
          fc.array(message, { minLength: 1, maxLength: 6 }),
          async (framing, messages) => {
            const body = Buffer.concat(messages.map((m) => envelope(m)));
            expectNamedOutcome(
              await send(framing, INGEST_STREAM, body),
              `${framing} stream of ${messages.length}`,
            );
          },
        ),
        fuzzParams(streamRuns),
      );
    },
    timeoutFor(streamRuns, 20),
  );

  const jsonRuns = fuzzRuns(150);
  it(
    "should answer random and damaged Connect JSON with INVALID_ARGUMENT naming the problem",
    async () => {
      const validJson = toJson(IngestRequestSchema, validRequest());
      const body = fc.oneof(
        fc.jsonValue().map((v) => JSON.stringify(v) ?? "null"),
        treeMutations(KNOWN_JSON_KEYS).map((m) => toJsonText(mutateTree(validJson, m))),
        byteMutations.map((m) =>
          mutateBytes(Buffer.from(JSON.stringify(validJson)), m).toString("latin1"),
        ),
      );
      await fc.assert(
        fc.asyncProperty(body, async (text) => {
          sent.calls++;
          const outcome = await h1Call(svc.url, INGEST, Buffer.from(text, "latin1"), {
            "x-api-key": svc.key,
            "content-type": "application/json",
          });
          expectNamedOutcome(outcome, text.slice(0, 200));
        }),
        fuzzParams(jsonRuns),
      );
    },
    timeoutFor(jsonRuns, 15),
  );

  const typedRuns = fuzzRuns(80, 0.5);
  it(
    "should answer typed but invalid requests from real clients over every protocol with OK or INVALID_ARGUMENT and field paths",
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.nat({ max: 5 }), typedRequest, async (which, init) => {
          const { name, json, client } = clients[which] as (typeof clients)[number];
          const request = create(IngestRequestSchema, init);
          if (json) {
            // What a JSON client cannot even write (NaN in a Struct, a Timestamp out of range) is not sent.
            let writable = true;
            try {
              toJsonString(IngestRequestSchema, request);
            } catch {
              writable = false;
            }
            fc.pre(writable);
          }
          sent.calls++;
          try {
            const res = await client.ingest(request);
            if (res.accepted > 0) accepted.set(res.requestId, res.accepted);
          } catch (error) {
            expectNamedError(ConnectError.from(error), `${name}: ${describeRequest(request)}`);
          }
        }),
        fuzzParams(typedRuns),
      );
    },
    timeoutFor(typedRuns, 20),
  );

  const headerRuns = fuzzRuns(80, 0.5);
  it(
    "should answer wrong content types and odd protocol headers with a 4xx or a client error, never a 5xx",
    async () => {
      const contentType = fc.constantFrom(
        undefined,
        "",
        "text/plain",
        "application/json",
        "application/json; charset=latin1",
        "application/proto",
        "application/protobuf",
        "application/grpc",
        "application/grpc+json",
        "application/grpc+foo",
        "application/grpc-web",
        "application/grpc-web-text",
        "application/connect+proto",
        "application/connect+json",
        "multipart/form-data; boundary=x",
        "APPLICATION/GRPC",
      );
      const extra = fc.dictionary(
        fc.constantFrom(
          "grpc-encoding",
          "grpc-timeout",
          "connect-timeout-ms",
          "connect-protocol-version",
          "content-encoding",
          "connect-content-encoding",
          "grpc-accept-encoding",
        ),
        fc.constantFrom(
          "gzip",
          "br",
          "zstd",
          "identity",
          "",
          "abc",
          "1n",
          "99999999999S",
          "-1",
          "1",
        ),
        { maxKeys: 2 },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom<"h1" | "h2">("h1", "h2"),
          fc.constantFrom(INGEST, INGEST_STREAM),
          contentType,
          extra,
          fc.boolean(),
          async (http, path, type, headers, framed) => {
            const all: Record<string, string> = { "x-api-key": svc.key, ...headers };
            if (type !== undefined) all["content-type"] = type;
            const body = framed ? envelope(validBinary) : validBinary;
            sent.calls++;
            const outcome =
              http === "h2"
                ? await h2.call(path, body, all)
                : await h1Call(svc.url, path, body, all);
            if (outcome.kind === "http") expect(outcome.status, outcome.body).toBeLessThan(500);
            else expectNamedOutcome(outcome, `${http} ${path} ${type} ${JSON.stringify(headers)}`);
          },
        ),
        fuzzParams(headerRuns),
      );
    },
    timeoutFor(headerRuns, 15),
  );

  it("should answer messages nested 10,000 levels deep with INVALID_ARGUMENT, in every framing", async () => {
    for (const framing of FRAMINGS) {
      for (const [name, message] of [
        ["a dimension of nested lists", deepRequest(5_000)],
        ["unknown groups", deepGroups(10_000)],
      ] as const) {
        const body = framing === "connect" ? message : envelope(message);
        const outcome = await send(framing, INGEST, body);
        expect(outcome.kind, `${framing}: ${name}`).toBe("error");
        if (outcome.kind !== "error") continue;
        expect(outcome.error.code, `${framing}: ${name}: ${outcome.error.rawMessage}`).toBe(
          Code.InvalidArgument,
        );
        expect(outcome.error.rawMessage).toMatch(/recursion depth/);
      }
    }
    // Connect JSON: the decoder stops at its recursion limit.
    const deep = deepJson(10_000, "array");
    for (const text of [
      deep,
      `{"service":"test-service","events":[{"custom":{},"dimensions":{"d":${deep}}}]}`,
      `{"service":"test-service","events":[{"custom":{},"metadata":${deepJson(10_000, "object")}}]}`,
    ]) {
      const outcome = await h1Call(svc.url, INGEST, Buffer.from(text), {
        "x-api-key": svc.key,
        "content-type": "application/json",
      });
      expect(outcome.kind).toBe("error");
      if (outcome.kind === "error") expect(outcome.error.code).toBe(Code.InvalidArgument);
    }
    // Nesting within the decoder's limit reaches validation, which names the field.
    const client = clients[0]?.client as Client<typeof IngestService>;
    const error = await client
      .ingest({
        service: "test-service",
        events: [
          {
            dimensions: { d: nestedList(40) as never },
            kind: { case: "custom", value: {} },
            value: 1,
          },
        ],
      })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field).toBe(
      "events[0].dimensions.d",
    );
  });

  it("should answer a timestamp beyond what a Date holds with INVALID_ARGUMENT naming it, not INTERNAL", async () => {
    // Needs validate.ts to format the timestamp only after its range check (see the report).
    for (const { name, json, client } of clients) {
      if (json) continue; // a JSON client cannot write such a Timestamp
      const error = await failure(
        client.ingest({
          service: "test-service",
          events: [
            { timestamp: { seconds: 10n ** 15n }, value: 1, kind: { case: "custom", value: {} } },
          ],
        }),
      );
      expect(error.code, `${name}: ${error.rawMessage}`).toBe(Code.InvalidArgument);
      expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations).toEqual([
        expect.objectContaining({ field: "events[0].timestamp" }),
      ]);
    }
  });

  it("should answer a message flagged as compressed without an encoding with INVALID_ARGUMENT", async () => {
    for (const framing of ["grpc", "grpc-web", "connect"] as const) {
      const path = framing === "connect" ? INGEST_STREAM : INGEST;
      const outcome = await send(framing, path, envelope(validBinary, 1));
      expect(outcome.kind, framing).toBe("error");
      if (outcome.kind !== "error") continue;
      expect(outcome.error.code, `${framing}: ${outcome.error.rawMessage}`).toBe(
        Code.InvalidArgument,
      );
      expect(outcome.error.rawMessage).toMatch(/compressed/);
    }
  });

  it("should name the decode problem and the message type for undecodable bytes, with a MALFORMED_MESSAGE reason", async () => {
    const bad = Uint8Array.of(0x0a, 0xff, 0xff, 0x01); // service: a length past the end
    for (const framing of FRAMINGS) {
      const outcome = await send(framing, INGEST, framing === "connect" ? bad : envelope(bad));
      expect(outcome.kind).toBe("error");
      if (outcome.kind !== "error") continue;
      expect(outcome.error.code, framing).toBe(Code.InvalidArgument);
      expect(outcome.error.rawMessage).toBe(
        "cannot decode mcp.metrics.v1.IngestRequest from binary: premature EOF",
      );
      expect(outcome.error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("MALFORMED_MESSAGE");
    }
  });

  it("should have stored exactly what it accepted, kept the baseline, and still take good batches on every protocol", async () => {
    await expectStoredAsAnswered(svc.sql, baseline, accepted);

    for (const { name, client } of clients) {
      const res = await client.ingest(mixedBatch("test-service"));
      expect(res.accepted, name).toBe(7);
      expect(await countIn(svc.sql, "metrics", "request_id = ?", res.requestId), name).toBe(7);
    }
    expect((await fetch(`${svc.url}/health`)).status).toBe(200);
    if (process.env.FUZZ_RUNS) {
      console.info(`bad-input-rpc: ${sent.calls} calls, ${accepted.size} accepted`);
      // npm run test:fuzz: bench/results/fuzz-rpc-<backend>-<timestamp>.json (the docs' figures).
      writeResult("fuzz-rpc", {
        fuzzRuns: Number(process.env.FUZZ_RUNS),
        seed: process.env.FUZZ_SEED ?? null,
        calls: sent.calls,
        accepted: accepted.size,
        seconds: Math.round((performance.now() - suiteStarted) / 100) / 10,
      });
    }
  });
});
