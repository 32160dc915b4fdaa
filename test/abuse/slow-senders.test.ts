// backends: sqlite only: the port's fixed timers for slow senders, before storage (npm run test:abuse)
import http2 from "node:http2";
import * as net from "node:net";
import { describe, it } from "vitest";
import { envelope, INGEST } from "../reliability/rpc-wire.js";
import { h2Request } from "../support/http2.js";
import { startTestService } from "../support/service.js";
import { grpcAnswer, scaled, servedMeanwhile, sleep } from "./support.js";

/*
 * The slow senders of issue 21's probes 1 and 2 that only the port's fixed
 * timers end: the 10 s a connection may stay silent and the 30 s a request
 * or a stream may take (docs/security.md, "Limits and their defaults"). They cannot be
 * made shorter from outside, so the four run side by side, each on its own
 * service: the file takes about 31 s.
 */

/** Headers are allowed 10 s, a whole request 30 s; Node checks them every second. */
const SILENT_MILLIS = 10_000;
const REQUEST_MILLIS = 30_000;
/** How late past a timer an answer may come on a loaded machine. */
const SLACK_MILLIS = 3000;

/** Milliseconds until `socket` closes, and what the server wrote on it. */
function watch(socket: net.Socket): Promise<{ millis: number; received: string }> {
  const started = performance.now();
  let received = "";
  socket.on("data", (chunk: Buffer) => {
    received += chunk.toString("latin1");
  });
  socket.on("error", () => {});
  return new Promise((resolve) => {
    socket.once("close", () => resolve({ millis: performance.now() - started, received }));
  });
}

const connected = (socket: net.Socket) =>
  new Promise<void>((resolve) => socket.once("connect", () => resolve()));

describe.concurrent("slow senders that only the port's fixed timers end", () => {
  it("should close a connection that sends nothing, and one that sends the HTTP/2 preface but no SETTINGS, at 10 s, serving others meanwhile", async ({
    expect,
  }) => {
    const svc = await startTestService();
    try {
      const silent = net.connect(svc.port, "127.0.0.1");
      const prefaceOnly = net.connect(svc.port, "127.0.0.1");
      await Promise.all([connected(silent), connected(prefaceOnly)]);
      const closes = [watch(silent), watch(prefaceOnly)];
      prefaceOnly.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      await sleep(SILENT_MILLIS / 2);
      expect((await fetch(`${svc.url}/health`)).status).toBe(200);
      expect((await h2Request(svc.url, "/health")).status).toBe(200);
      const [silentClose, prefaceClose] = await Promise.all(closes);
      // Nothing written to the silent one; the other got the server's SETTINGS.
      expect(silentClose.received).toBe("");
      for (const { millis } of [silentClose, prefaceClose]) {
        expect(millis).toBeGreaterThanOrEqual(SILENT_MILLIS - 500);
        expect(millis).toBeLessThan(SILENT_MILLIS + SLACK_MILLIS);
      }
    } finally {
      await svc.close();
    }
  }, 60_000);

  it.for(["HTTP/1.1", "HTTP/2"] as const)(
    "should answer JSON bodies dripped over %s 408 within 30 s of their start, whatever each byte resets, serving another key meanwhile",
    { timeout: 60_000 },
    async (version, { expect }) => {
      const svc = await startTestService();
      const session = http2.connect(svc.url);
      session.on("error", () => {});
      const drips: NodeJS.Timeout[] = [];
      try {
        const abuser = await svc.keyFor("abuser");
        const started = performance.now();
        const head = '{"service": "abuser", ';
        const post = (): { write: (chunk: string) => void; answer: Promise<string> } => {
          if (version === "HTTP/2") {
            const stream = session.request({
              ":method": "POST",
              ":path": "/metrics",
              "content-type": "application/json",
              "content-length": "100000",
              "x-api-key": abuser,
            });
            stream.on("error", () => {});
            stream.write(head);
            return {
              write: (chunk) => stream.writable && stream.write(chunk),
              answer: new Promise((resolve) => {
                stream.once("response", (h) => resolve(`status ${h[":status"]}`));
                stream.once("close", () => resolve(`reset ${stream.rstCode}`));
              }),
            };
          }
          const socket = net.connect(svc.port, "127.0.0.1");
          socket.write(
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
              `X-API-Key: ${abuser}\r\nContent-Length: 100000\r\n\r\n${head}`,
          );
          return {
            write: (chunk) => socket.writable && socket.write(chunk),
            answer: watch(socket).then(({ received }) => {
              const status = /^HTTP\/1\.1 (\d+) /.exec(received)?.[1];
              return status === undefined ? "closed unanswered" : `status ${status}`;
            }),
          };
        };
        const ended = (answer: Promise<string>) =>
          Promise.race([
            answer.then((how) => ({ how, millis: performance.now() - started })),
            sleep(REQUEST_MILLIS + SLACK_MILLIS + 2000).then(() => ({
              how: "still open",
              millis: Number.POSITIVE_INFINITY,
            })),
          ]);
        const clients = scaled(2, 16);
        // Slow ones: a byte a second. Steady ones: 400 bytes a second (over any
        // minimum rate a server may ask for), still 250 s for the whole body.
        const slow = Array.from({ length: clients }, () => {
          const client = post();
          drips.push(setInterval(() => client.write(" "), 1000));
          return ended(client.answer);
        });
        const steady = Array.from({ length: clients }, () => {
          const client = post();
          drips.push(setInterval(() => client.write(" ".repeat(40)), 100));
          return ended(client.answer);
        });
        await sleep(REQUEST_MILLIS / 2);
        const served = await servedMeanwhile(svc.url, await svc.keyFor("victim"), 20);
        expect(served.statuses.filter((s) => s !== 200)).toEqual([]);
        const outcomes = await Promise.all([...slow, ...steady]);
        const tally = outcomes.map((o) => `${o.how} after ${(o.millis / 1000).toFixed(1)} s`);
        console.log(`${version} JSON drip: ${[...new Set(tally)].join(", ")}`);
        for (const { how, millis } of outcomes) {
          expect(how).toBe("status 408");
          expect(millis).toBeLessThan(REQUEST_MILLIS + SLACK_MILLIS);
        }
        // The steady ones are cut by the deadline, not before.
        for (const { millis } of await Promise.all(steady)) {
          expect(millis).toBeGreaterThanOrEqual(REQUEST_MILLIS - 500);
        }
      } finally {
        for (const drip of drips) clearInterval(drip);
        session.destroy();
        await svc.close();
      }
    },
  );

  it("should reset unary calls whose answers a zero window holds with CANCEL at 30 s, freeing their key's slots, serving another key meanwhile", async ({
    expect,
  }) => {
    const pool = scaled(8, 64);
    const share = pool / 4;
    const svc = await startTestService({
      METRICS_MAX_CONCURRENT_REQUESTS: String(pool),
      METRICS_MAX_CONCURRENT_REQUESTS_PER_KEY: String(share),
    });
    const session = http2.connect(svc.url, { settings: { initialWindowSize: 0 } });
    session.on("error", () => {});
    try {
      const abuser = await svc.keyFor("abuser");
      // service "abuser", one auth event: a valid IngestRequest.
      const message = envelope(
        Buffer.from([0x0a, 0x06, ...Buffer.from("abuser"), 0x12, 0x02, 0x52, 0x00]),
      );
      const started = performance.now();
      const calls = Array.from({ length: pool }, () => {
        const stream = session.request({
          ":method": "POST",
          ":path": INGEST,
          "content-type": "application/grpc",
          "x-api-key": abuser,
        });
        stream.on("error", () => {});
        const refused = grpcAnswer(stream);
        const reset = new Promise<{ millis: number; code: number | undefined }>((resolve) =>
          stream.once("close", () =>
            resolve({ millis: performance.now() - started, code: stream.rstCode }),
          ),
        );
        stream.end(message);
        return { refused, reset };
      });
      // A key alone may use all but a share of the pool; the rest is refused at once.
      const early = await Promise.all(calls.slice(pool - share).map((c) => c.refused));
      expect(early.map((a) => a.reason)).toEqual(Array(share).fill("KEY_SHARE_EXCEEDED"));
      const served = await servedMeanwhile(svc.url, await svc.keyFor("victim"), 20);
      expect(served.statuses.filter((s) => s !== 200)).toEqual([]);
      // The held calls: stored, but their answers cannot be written; the idle timer resets them.
      for (const { millis, code } of await Promise.all(
        calls.slice(0, pool - share).map((c) => c.reset),
      )) {
        expect(code).toBe(http2.constants.NGHTTP2_CANCEL);
        expect(millis).toBeGreaterThanOrEqual(REQUEST_MILLIS - 500);
        expect(millis).toBeLessThan(REQUEST_MILLIS + SLACK_MILLIS);
      }
      // Its slots are free: the key is served again.
      const again = await servedMeanwhile(svc.url, abuser, 1, "abuser");
      expect(again.statuses).toEqual([200]);
    } finally {
      session.destroy();
      await svc.close();
    }
  }, 60_000);
});
