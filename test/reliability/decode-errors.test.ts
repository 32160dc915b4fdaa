// backends: sqlite only: decode-error mapping on a stand-in service without storage
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.js";
import {
  IngestService,
  IngestStreamRequestSchema,
  IngestStreamResponseSchema,
} from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { errors } from "../../src/errors.js";
import { decodeErrorOf, mapDecodeErrors } from "../../src/http/decode-errors.js";
import { createOnePortServer, DEFAULT_ONE_PORT_OPTIONS } from "../../src/http/one-port.js";
import { failure, ingestClient, PROTOCOLS } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { createH2, envelope, h1Call, INGEST, INGEST_STREAM } from "./rpc-wire.js";

/** A service that answers as the real one does, without storage: enough to see the mapping. */
const impl: ServiceImpl<typeof IngestService> = {
  ingest(req) {
    // A genuine server fault must stay INTERNAL.
    if (req.service === "boom") throw errors.internal(new Error("disk on fire"));
    return { accepted: req.events.length, rejected: 0, requestId: "req_0000000000000000" };
  },
  async ingestStream(requests) {
    let messages = 0;
    try {
      for await (const _ of requests) messages++;
    } catch (cause) {
      // As the real handler does: what was done so far travels with the error.
      const error = ConnectError.from(cause);
      error.details.push({ desc: IngestStreamResponseSchema, value: { messages } });
      throw error;
    }
    return { accepted: 0, rejected: 0, requestId: "req_0000000000000000", messages };
  },
};

/** Bytes no IngestRequest decodes from: field 1 announces more bytes than there are. */
const GARBAGE = Uint8Array.of(0x0a, 0xff, 0xff, 0x01);

describe("mapDecodeErrors (src/http/decode-errors.ts)", () => {
  let url: string;
  let close: () => Promise<void>;
  let h2: ReturnType<typeof createH2>;

  beforeAll(async () => {
    const handler = connectNodeAdapter({
      routes: (router) => {
        router.service(IngestService, impl);
        router.service(Health, {
          check: () => ({ status: ServingStatus.SERVING }),
          async *watch() {
            yield { status: ServingStatus.SERVING };
          },
        });
        mapDecodeErrors(router);
      },
    });
    const port = createOnePortServer(handler, DEFAULT_ONE_PORT_OPTIONS);
    const address = await port.listen(0, "127.0.0.1");
    url = `http://127.0.0.1:${address.port}`;
    close = () => port.close(1000);
    h2 = createH2(url);
  });
  afterAll(async () => {
    h2.close();
    await close();
  });

  const framings = [
    {
      name: "Connect",
      send: (b: Uint8Array) => h1Call(url, INGEST, b, { "content-type": "application/proto" }),
    },
    {
      name: "gRPC",
      send: (b: Uint8Array) => h2.call(INGEST, envelope(b), { "content-type": "application/grpc" }),
    },
    {
      name: "gRPC-Web",
      send: (b: Uint8Array) =>
        h1Call(url, INGEST, envelope(b), { "content-type": "application/grpc-web+proto" }),
    },
  ];

  it.each(framings)(
    "should answer an undecodable unary message over $name with INVALID_ARGUMENT",
    async ({ send }) => {
      const outcome = await send(GARBAGE);
      expect(outcome.kind).toBe("error");
      if (outcome.kind !== "error") return;
      expect(outcome.error.code).toBe(Code.InvalidArgument);
      expect(outcome.error.rawMessage).toBe(
        "cannot decode mcp.metrics.v1.IngestRequest from binary: premature EOF",
      );
      expect(outcome.error.findDetails(ErrorInfoSchema)[0]).toMatchObject({
        reason: "MALFORMED_MESSAGE",
        domain: "metrics.mcp",
      });
    },
  );

  it.each([
    ["gRPC", "application/grpc"],
    ["gRPC-Web", "application/grpc-web+proto"],
    ["Connect streaming", "application/connect+proto"],
  ])(
    "should keep a stream's details when its second message cannot be decoded (%s)",
    async (_name, contentType) => {
      const good = toBinary(
        IngestStreamRequestSchema,
        create(IngestStreamRequestSchema, { service: "s" }),
      );
      const body = Buffer.concat([envelope(good), envelope(GARBAGE)]);
      const headers = { "content-type": contentType };
      const outcome =
        contentType === "application/grpc"
          ? await h2.call(INGEST_STREAM, body, headers)
          : await h1Call(url, INGEST_STREAM, body, headers);
      expect(outcome.kind).toBe("error");
      if (outcome.kind !== "error") return;
      expect(outcome.error.code).toBe(Code.InvalidArgument);
      expect(outcome.error.rawMessage).toMatch(
        /^cannot decode mcp\.metrics\.v1\.IngestStreamRequest/,
      );
      expect(outcome.error.findDetails(IngestStreamResponseSchema)[0]?.messages).toBe(1);
      expect(outcome.error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("MALFORMED_MESSAGE");
    },
  );

  it("should map a server-streaming call's decode failure, and pass its messages through", async () => {
    const watch = "/grpc.health.v1.Health/Watch";
    const headers = { "content-type": "application/grpc" };
    const bad = await h2.call(watch, envelope(GARBAGE), headers);
    expect(bad.kind === "error" && bad.error.code).toBe(Code.InvalidArgument);
    const good = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema));
    const ok = await h2.call(watch, envelope(good), headers);
    expect(ok.kind).toBe("ok");
  });

  it("should answer a message flagged as compressed without an encoding with INVALID_ARGUMENT", async () => {
    const outcome = await h2.call(INGEST, envelope(GARBAGE, 1), {
      "content-type": "application/grpc",
    });
    expect(outcome.kind === "error" && outcome.error.code).toBe(Code.InvalidArgument);
  });

  describe.each(PROTOCOLS)("$name", (protocol) => {
    it("should leave answers that are no decode failure alone: OK, and a server fault's INTERNAL", async () => {
      const client = ingestClient(protocol, url, undefined);
      expect((await client.ingest(authBatch(3, "s"))).accepted).toBe(3);
      const error = await failure(client.ingest(authBatch(1, "boom")));
      expect(error.code).toBe(Code.Internal);
      expect(error.rawMessage).toBe("internal error");
    });
  });
});

describe("decodeErrorOf", () => {
  it.each([
    [
      new ConnectError("parse binary: premature EOF", Code.Internal),
      "cannot decode T from binary: premature EOF",
    ],
    [
      new ConnectError(
        "parse binary: cannot decode mcp.metrics.v1.Event from binary: maximum recursion depth of 100 reached",
        Code.Internal,
      ),
      "cannot decode mcp.metrics.v1.Event from binary: maximum recursion depth of 100 reached",
    ],
    [
      new ConnectError(
        "received compressed envelope, but do not know how to decompress",
        Code.Internal,
      ),
      "cannot decode T: a message is flagged as compressed, but the request names no compression",
    ],
  ])("should map connect-es's INTERNAL %s to INVALID_ARGUMENT", (error, message) => {
    const mapped = decodeErrorOf(error, "T");
    expect(mapped?.code).toBe(Code.InvalidArgument);
    expect(mapped?.rawMessage).toBe(message);
  });

  it.each([
    new ConnectError("internal error", Code.Internal),
    new ConnectError("parse binary: premature EOF", Code.Unknown),
    new ConnectError("invalid batch: service: Service name is required", Code.InvalidArgument),
  ])("should leave %s alone", (error) => {
    expect(decodeErrorOf(error, "T")).toBeUndefined();
  });
});
