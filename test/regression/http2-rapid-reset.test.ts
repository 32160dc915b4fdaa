// backends: sqlite only: HTTP/2 reset floods, before storage
import { connect, constants } from "node:http2";
import { describe, expect, it } from "vitest";
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
      const { session, goaway } = await connectWatched(svc.url);
      // Rounds of 100 streams, each reset as soon as it is sent (the session is
      // connected, so a stream is sent at once); the next round starts when the
      // last one is gone, so no stream waits behind the concurrency limit.
      let opened = 0;
      while (opened < 20_000 && !session.destroyed && goaway.code === undefined) {
        const round: Promise<unknown>[] = [];
        for (let i = 0; i < 100; i++) {
          try {
            const stream = session.request({
              ":method": "POST",
              ":path": "/mcp.metrics.v1.IngestService/Ingest",
              "content-type": "application/grpc",
            });
            stream.on("error", () => {});
            round.push(new Promise((resolve) => stream.once("close", resolve)));
            stream.close(constants.NGHTTP2_CANCEL);
            opened++;
          } catch {
            break; // the session is closing: the flood is over
          }
        }
        await Promise.all(round);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      session.destroy();
      console.log(
        `rapid reset: ${opened} streams opened and reset; server GOAWAY code ${goaway.code}`,
      );
      expect(opened).toBeGreaterThan(100);
      // The server closed the abusive connection: the service's reset budget
      // (ENHANCE_YOUR_CALM) or, for streams reset before the service saw them,
      // nghttp2's own limit (INTERNAL_ERROR).
      expect([constants.NGHTTP2_ENHANCE_YOUR_CALM, constants.NGHTTP2_INTERNAL_ERROR]).toContain(
        goaway.code,
      );
      expect(opened).toBeLessThan(20_000);
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
