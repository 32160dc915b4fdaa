// backends: sqlite only: HTTP/2 reset floods, before storage
import { connect, constants } from "node:http2";
import { describe, expect, it } from "vitest";
import {
  errorCodeOf,
  FRAME,
  headers,
  type ReceivedFrame,
  rawExchange,
  rstStream,
} from "../support/raw-h2.js";
import { startTestService } from "../support/service.js";

/** A connected HTTP/2 session, and the code of the GOAWAY the server sends on it, once it does. */
async function connectWatched(url: string) {
  const session = connect(url);
  session.on("error", () => {});
  const goaway: { code?: number } = {};
  session.on("goaway", (code) => {
    goaway.code = code;
  });
  await new Promise((resolve) => session.once("remoteSettings", resolve));
  return { session, goaway };
}

describe("regression: an HTTP/2 rapid-reset flood (CVE-2023-44487)", () => {
  it("should close a connection that opens and resets streams in a flood, and keep serving others", async () => {
    const svc = await startTestService();
    try {
      // The attack as it is made: HEADERS then RST_STREAM at once, stream after
      // stream, written as raw frames (see raw-h2.ts for why not node:http2).
      const streams = 20_000;
      const flood = Buffer.concat(
        Array.from({ length: streams }, (_, i) => {
          const id = 2 * i + 1;
          return Buffer.concat([
            headers(id, {
              ":method": "POST",
              ":scheme": "http",
              ":authority": "127.0.0.1",
              ":path": "/mcp.metrics.v1.IngestService/Ingest",
              "content-type": "application/grpc",
            }),
            rstStream(id, constants.NGHTTP2_CANCEL),
          ]);
        }),
      );
      const isGoaway = (f: ReceivedFrame): boolean => f.type === FRAME.goaway;
      const { frames } = await rawExchange(svc.port, flood, 20_000, true, (received) =>
        received.some(isGoaway),
      );
      const goaway = frames.find(isGoaway);
      const lastStreamId = (goaway?.payload.readUInt32BE(0) ?? 0) & 0x7fffffff;
      console.log(
        `rapid reset: GOAWAY code ${goaway && errorCodeOf(goaway)} after stream ${lastStreamId} of ${2 * streams - 1}`,
      );
      // The server ended the abusive connection long before the flood's end:
      // the service's reset budget (ENHANCE_YOUR_CALM, then the socket is
      // closed) or nghttp2's own limit (INTERNAL_ERROR) for streams the
      // service had already answered, as it answers a call without a key at
      // once (their client's reset does not reach the service's count).
      // After nghttp2's GOAWAY Node reads no more from the socket but keeps it
      // open until the idle timeout, like any idle connection (docs/security.md).
      expect(goaway).toBeDefined();
      expect([constants.NGHTTP2_ENHANCE_YOUR_CALM, constants.NGHTTP2_INTERNAL_ERROR]).toContain(
        errorCodeOf(goaway as ReceivedFrame),
      );
      expect(lastStreamId).toBeLessThan(2 * streams - 1);
      // The service is still up, on both HTTP versions.
      expect((await fetch(`${svc.url}/health`)).status).toBe(200);
      const again = connect(svc.url);
      const status = await new Promise<number>((resolve, reject) => {
        const req = again.request({ ":path": "/health" });
        req.on("response", (headers) => resolve(Number(headers[":status"])));
        req.on("error", reject);
        req.end();
      });
      again.close();
      expect(status).toBe(200);
    } finally {
      await svc.close();
    }
  }, 60_000);
});

describe("regression: HTTP/2 calls reset once the server is working on them", () => {
  it("should close a connection that keeps cancelling calls it started, with ENHANCE_YOUR_CALM", async () => {
    const svc = await startTestService();
    try {
      const { session, goaway } = await connectWatched(svc.url);
      let cancelled = 0;
      while (cancelled < 2_000 && !session.destroyed && goaway.code === undefined) {
        // Each call sends part of a message, so the server starts on it and waits for the rest.
        const round = Array.from({ length: 50 }, () => {
          const stream = session.request({
            ":method": "POST",
            ":path": "/mcp.metrics.v1.IngestService/Ingest",
            "content-type": "application/grpc",
            "x-api-key": svc.key,
          });
          stream.on("error", () => {});
          stream.write(Buffer.from([0, 0, 0, 0, 100]));
          return stream;
        });
        await new Promise((resolve) => setTimeout(resolve, 20));
        await Promise.all(
          round.map((stream) => {
            const closed = stream.closed
              ? Promise.resolve()
              : new Promise((resolve) => stream.once("close", resolve));
            stream.close(constants.NGHTTP2_CANCEL);
            cancelled++;
            return closed;
          }),
        );
      }
      session.destroy();
      console.log(`slow reset: ${cancelled} calls cancelled; server GOAWAY code ${goaway.code}`);
      expect(goaway.code).toBe(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      expect(cancelled).toBeLessThan(2_000);
      expect((await fetch(`${svc.url}/health`)).status).toBe(200);
    } finally {
      await svc.close();
    }
  }, 60_000);
});
