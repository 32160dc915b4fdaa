// backends: sqlite only: undecodable request messages, refused before storage
// Bug: request bytes that do not decode as the RPC's message were answered INTERNAL (the server's fault) instead of INVALID_ARGUMENT.
import { randomBytes } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import {
  IngestRequestSchema,
  IngestStreamRequestSchema,
  IngestStreamResponseSchema,
} from "../../gen/mcp/metrics/v1/ingest_pb.js";
import {
  createH2,
  envelope,
  h1Call,
  INGEST,
  INGEST_STREAM,
  type RawOutcome,
} from "../reliability/rpc-wire.js";
import { authBatch } from "../support/events.js";
import {
  countRows,
  exposition,
  samples,
  scrape,
  startTestService,
  type TestService,
} from "../support/service.js";

/** A valid request's bytes with their last three cut off: a field's length runs past the end. */
const valid = toBinary(IngestRequestSchema, create(IngestRequestSchema, authBatch(3)));
const truncated = valid.subarray(0, -3);

/** Bytes no IngestRequest can be: a tag with wire type 7, which does not exist. */
const garbage = Buffer.concat([Buffer.of(0x0f), randomBytes(64)]);

/** Checks the answer is the catalog's MALFORMED_MESSAGE refusal for `typeName`; returns its error. */
function expectMalformed(outcome: RawOutcome, typeName: string) {
  expect(outcome.kind).toBe("error");
  if (outcome.kind !== "error") return undefined;
  expect(outcome.error.code, outcome.error.rawMessage).toBe(Code.InvalidArgument);
  const prefix = `cannot decode ${typeName}`;
  expect(outcome.error.rawMessage.slice(0, prefix.length)).toBe(prefix);
  expect(outcome.error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("MALFORMED_MESSAGE");
  return outcome.error;
}

describe("regression: undecodable protobuf request messages", () => {
  let svc: TestService;
  let h2: ReturnType<typeof createH2>;
  let prometheusPort: number;
  beforeAll(async () => {
    const prometheus = await exposition();
    prometheusPort = prometheus.port;
    svc = await startTestService(prometheus.env);
    h2 = createH2(svc.url);
  });
  afterAll(async () => {
    h2.close();
    await svc.close();
  });

  it.each([
    ["truncated", truncated],
    ["random", garbage],
  ])(
    "should answer %s bytes over Connect (application/proto) with INVALID_ARGUMENT",
    async (_name, bytes) => {
      const outcome = await h1Call(svc.url, INGEST, bytes, {
        "content-type": "application/proto",
        "x-api-key": svc.key,
      });
      expectMalformed(outcome, "mcp.metrics.v1.IngestRequest");
    },
  );

  it.each([
    ["truncated", truncated],
    ["random", garbage],
  ])("should answer %s bytes over gRPC with INVALID_ARGUMENT", async (_name, bytes) => {
    const outcome = await h2.call(INGEST, envelope(bytes), {
      "content-type": "application/grpc",
      "x-api-key": svc.key,
    });
    expectMalformed(outcome, "mcp.metrics.v1.IngestRequest");
  });

  it("should end an IngestStream whose second message is truncated with INVALID_ARGUMENT, keeping the first message's events", async () => {
    const message = (n: number) =>
      toBinary(IngestStreamRequestSchema, create(IngestStreamRequestSchema, authBatch(n)));
    const body = Buffer.concat([envelope(message(3)), envelope(message(4).subarray(0, -3))]);
    const outcome = await h2.call(INGEST_STREAM, body, {
      "content-type": "application/grpc",
      "x-api-key": svc.key,
    });
    const error = expectMalformed(outcome, "mcp.metrics.v1.IngestStreamRequest");
    // What the stream had stored before the bad message, as every stream error reports it.
    const totals = error?.findDetails(IngestStreamResponseSchema)[0];
    expect(totals).toMatchObject({ accepted: 3, messages: 1 });
    expect(countRows(svc.db, "metrics", "request_id = ?", totals?.requestId)).toBe(3);
  });

  // The error boundary logs "rpc failed" for exactly the calls it lets through as INTERNAL; the
  // request counter, outside it, sees the same code, and is easier to read than the log.
  it("should have counted every failure as invalid_argument, and no call as internal", async () => {
    const requests = samples(await scrape(prometheusPort), "mcp_metrics_requests_total");
    // Every call above: the unary ones, which connect-es refuses before any interceptor, too.
    expect(requests).toContain(
      'mcp_metrics_requests_total{ingress="grpc",code="invalid_argument"} 3',
    );
    expect(requests).toContain(
      'mcp_metrics_requests_total{ingress="connect",code="invalid_argument"} 2',
    );
    expect(
      requests.filter((line) => line.includes('code="internal"') && !line.endsWith(" 0")),
    ).toEqual([]);
  });
});
