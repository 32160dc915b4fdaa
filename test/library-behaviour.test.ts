// backends: sqlite only: the libraries' own errors, raised without the service or a database of ours
import { readFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { type ConnectError, createConnectRouter } from "@connectrpc/connect";
import {
  createAsyncIterable,
  envelopeDecompress,
  readAllBytes,
} from "@connectrpc/connect/protocol";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IngestRequestSchema, IngestService } from "../gen/mcp/metrics/v1/ingest_pb.js";
import { connectDecodeFailure, pgConnectionFailure, READ_FROM } from "../src/library-behaviour.js";

/** The installed version of a package. */
const installed = (name: string): string =>
  (JSON.parse(readFileSync(`node_modules/${name}/package.json`, "utf8")) as { version: string })
    .version;

/** What the library threw, as an Error. */
async function thrown(work: () => unknown): Promise<Error> {
  try {
    await work();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a failure");
}

describe("library behaviour the service relies on (src/library-behaviour.ts)", () => {
  it("should be read from the installed versions: re-read the texts when one changes", () => {
    for (const [name, version] of Object.entries(READ_FROM)) {
      expect(
        installed(name),
        `${name}: re-check src/library-behaviour.ts, then update READ_FROM`,
      ).toBe(version);
    }
  });

  it("should recognise connect-es's failure to decode a request message's bytes", async () => {
    // A Connect unary call whose body does not decode, to the router's own handler.
    const router = createConnectRouter().service(IngestService, {
      ingest: (req) => ({ accepted: req.events.length, rejected: 0, requestId: "r" }),
    });
    const handler = router.handlers.find((h) => h.requestPath.endsWith("/Ingest"));
    const call = async (body: Uint8Array) => {
      const res = await handler?.({
        httpVersion: "1.1",
        method: "POST",
        url: `http://localhost${handler.requestPath}`,
        header: new Headers({ "content-type": "application/proto" }),
        body: createAsyncIterable([body]),
        signal: new AbortController().signal,
      });
      const bytes = res?.body
        ? await readAllBytes(res.body as AsyncIterable<Uint8Array>, 1 << 20)
        : new Uint8Array();
      return { status: res?.status, text: new TextDecoder().decode(bytes) };
    };
    const bad = await call(new Uint8Array([0x0a, 0xff]));
    const error = JSON.parse(bad.text) as { code: string; message: string };
    expect(error.code).toBe("internal");
    const failure = connectDecodeFailure(error.message);
    expect(failure?.kind, error.message).toBe("binary");
    // The problem is protobuf-es's own words, without connect-es's prefix.
    expect(failure).toMatchObject({ problem: expect.not.stringMatching(/^parse binary/) });
    // A message that decodes is answered.
    const good = await call(
      toBinary(IngestRequestSchema, create(IngestRequestSchema, { service: "s" })),
    );
    expect(good.status).toBe(200);
  });

  it("should recognise connect-es's compressed message in a request naming no encoding", async () => {
    const error = await thrown(() =>
      envelopeDecompress({ flags: 0b1, data: new Uint8Array([1, 2, 3]) }, null, 1024),
    );
    expect(connectDecodeFailure((error as ConnectError).rawMessage)).toEqual({
      kind: "compressed_without_encoding",
    });
  });

  it("should not take other errors for decode failures", () => {
    expect(connectDecodeFailure("disk on fire")).toBeUndefined();
    expect(connectDecodeFailure("")).toBeUndefined();
  });

  describe("pg's connection failures without a code", () => {
    let closing: Server;
    let silent: Server;
    const sockets: Socket[] = [];
    const portOf = (server: Server) => (server.address() as { port: number }).port;
    beforeAll(async () => {
      // A server that hangs up at once, and one that never answers.
      closing = createServer((socket) => socket.destroy());
      silent = createServer((socket) => sockets.push(socket));
      await Promise.all(
        [closing, silent].map((s) => new Promise<void>((done) => s.listen(0, "127.0.0.1", done))),
      );
    });
    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await Promise.all([closing, silent].map((s) => new Promise((done) => s.close(done))));
    });

    it("should recognise a connection the server closed", async () => {
      const client = new pg.Client({ host: "127.0.0.1", port: portOf(closing), user: "x" });
      client.on("error", () => {});
      const error = await thrown(() => client.connect());
      expect((error as { code?: string }).code).toBeUndefined();
      expect(pgConnectionFailure(error.message), error.message).toBe(true);
    });

    it("should recognise a pool's connect that timed out", async () => {
      const pool = new pg.Pool({
        host: "127.0.0.1",
        port: portOf(silent),
        user: "x",
        connectionTimeoutMillis: 200,
      });
      pool.on("error", () => {});
      const error = await thrown(() => pool.connect());
      expect((error as { code?: string }).code).toBeUndefined();
      expect(pgConnectionFailure(error.message), error.message).toBe(true);
      await pool.end().catch(() => {});
    });

    it("should not take a server's answer for a connection failure", () => {
      expect(pgConnectionFailure('relation "nope" does not exist')).toBe(false);
    });
  });
});
