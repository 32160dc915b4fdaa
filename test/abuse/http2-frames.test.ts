// backends: sqlite only: abuse of the HTTP/2 framing, before storage (npm run test:abuse)
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { h2Request } from "../support/http2.js";
import {
  errorCodeOf,
  FRAME,
  headers,
  type ReceivedFrame,
  rawExchange,
  windowUpdate,
} from "../support/raw-h2.js";
import { countIn, startTestService, type TestService } from "../support/service.js";
import { scaled, servedMeanwhile } from "./support.js";

/*
 * Probe 8 of issue 21 in raw HTTP/2 frames, which node:http2's client will not
 * send: a WINDOW_UPDATE past 2^31-1, and more streams than the connection's
 * SETTINGS allow. Each checks the code docs/security.md gives and that other clients
 * are served; `npm run test:abuse` repeats them.
 */

const { NGHTTP2_FLOW_CONTROL_ERROR, NGHTTP2_INTERNAL_ERROR, NGHTTP2_REFUSED_STREAM } =
  http2.constants;

describe("probe 8: HTTP/2 frames past the connection's limits", () => {
  let svc: TestService;
  let victim: string;
  beforeAll(async () => {
    svc = await startTestService();
    victim = await svc.keyFor("victim");
  });
  afterAll(async () => {
    await svc.close();
  });

  /** HEADERS opening streams 1, 3, … with JSON requests whose bodies never come, in one write. */
  const jsonRequests = (count: number): Buffer =>
    Buffer.concat(
      Array.from({ length: count }, (_, i) =>
        headers(2 * i + 1, {
          ":method": "POST",
          ":scheme": "http",
          ":path": "/metrics",
          ":authority": "127.0.0.1",
          "content-type": "application/json",
          "x-api-key": svc.key,
        }),
      ),
    );
  const expectServed = async () => {
    expect((await h2Request(svc.url, "/health")).status).toBe(200);
    // Another key: the abuser's own bucket pays for the requests it opened.
    expect((await servedMeanwhile(svc.url, victim, 1)).statuses).toEqual([200]);
  };
  const goawayCodes = (frames: readonly ReceivedFrame[]) =>
    frames.filter((f) => f.type === FRAME.goaway).map((f) => errorCodeOf(f));

  it("should end the connection with GOAWAY INTERNAL_ERROR (as docs/security.md says) when a WINDOW_UPDATE overflows its window, and serve other clients", async () => {
    for (let round = 0; round < scaled(1, 100); round++) {
      // The connection window starts at 65,535: 2^31-1 more overflows it (RFC 9113 §6.9.1).
      const { frames, closed } = await rawExchange(svc.port, windowUpdate(0, 0x7fffffff));
      expect(goawayCodes(frames)).toEqual([NGHTTP2_INTERNAL_ERROR]);
      expect(closed).toBe(true);
    }
    await expectServed();
  });

  it("should reset a stream whose window a WINDOW_UPDATE overflows FLOW_CONTROL_ERROR, then end the connection GOAWAY INTERNAL_ERROR, and serve other clients", async () => {
    for (let round = 0; round < scaled(1, 100); round++) {
      const { frames, closed } = await rawExchange(
        svc.port,
        Buffer.concat([jsonRequests(1), windowUpdate(1, 0x7fffffff)]),
      );
      const resets = frames.filter((f) => f.type === FRAME.rstStream);
      expect(resets.map((f) => [f.streamId, errorCodeOf(f)])).toEqual([
        [1, NGHTTP2_FLOW_CONTROL_ERROR],
      ]);
      expect(goawayCodes(frames)).toEqual([NGHTTP2_INTERNAL_ERROR]);
      expect(closed).toBe(true);
    }
    await expectServed();
  });

  it("should refuse the streams past 256 REFUSED_STREAM while the client has not acknowledged the SETTINGS, keeping the connection", async () => {
    const { frames, closed } = await rawExchange(svc.port, jsonRequests(300), 1000, false);
    const codes = frames.filter((f) => f.type === FRAME.rstStream).map((f) => errorCodeOf(f));
    expect(codes.filter((c) => c === NGHTTP2_REFUSED_STREAM).length).toBeGreaterThan(0);
    expect(goawayCodes(frames)).toEqual([]);
    expect(closed).toBe(false);
    await expectServed();
  });

  it("should end the connection with GOAWAY INTERNAL_ERROR past 256 streams once the client has acknowledged the SETTINGS, and serve other clients", async () => {
    const stored = await countIn(svc.sql, "metrics");
    for (let round = 0; round < scaled(1, 20); round++) {
      // nghttp2 treats the 257th stream as a connection error, and Node reports
      // every connection error as INTERNAL_ERROR.
      const { frames, closed } = await rawExchange(svc.port, jsonRequests(512), 3000);
      expect(goawayCodes(frames)).toEqual([NGHTTP2_INTERNAL_ERROR]);
      // The last stream id it processed: at least the 256 it allowed.
      const goaway = frames.find((f) => f.type === FRAME.goaway);
      expect(goaway?.payload.readUInt32BE(0)).toBeGreaterThanOrEqual(511);
      expect(closed).toBe(true);
    }
    // None of those requests stored anything.
    expect(await countIn(svc.sql, "metrics")).toBe(stored);
    await expectServed();
  });
});
