import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONNECT_HTTP1, GRPC, ingestClient } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { postMetrics } from "../support/legacy.js";
import {
  countIn,
  freePort,
  startTestService,
  type TestService,
  tempDir,
} from "../support/service.js";

const CONFIG = join(import.meta.dirname, "..", "..", "deploy", "haproxy", "haproxy.cfg");

/**
 * The compose variant's HAProxy configuration, as shipped, with only the
 * addresses changed: it listens on `port` and balances over the replicas'
 * ports on 127.0.0.1 (no Docker DNS here).
 */
function localConfig(port: number, replicas: readonly TestService[]): string {
  let config = readFileSync(CONFIG, "utf8").replace(/^\s*bind :8890$/m, `  bind 127.0.0.1:${port}`);
  for (const [i, name] of ["metrics-a", "metrics-b"].entries()) {
    config = config.replace(
      new RegExp(`server ${name} ${name}:8890`),
      `server ${name} 127.0.0.1:${replicas[i]?.port}`,
    );
  }
  return config;
}

/** An answer to a `POST /metrics` sent on a connection of its own. */
interface Answer {
  readonly status: number;
  readonly retryAfter: string | undefined;
  readonly body: string;
}

/**
 * A `POST /metrics` on a new connection, closed after the answer: HAProxy
 * balances connections, so each such request is balanced anew. The body is
 * sent once `send` resolves (at once by default), the connection open.
 */
function postOnNewConnection(
  url: string,
  key: string,
  value: number,
  send: (connected: Promise<void>) => Promise<void> = (connected) => connected,
): Promise<Answer> {
  const body = JSON.stringify({ service: "test-service", metrics: [{ type: "custom", value }] });
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${url}/metrics`,
      {
        method: "POST",
        agent: false,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          "x-api-key": key,
          connection: "close",
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers["retry-after"],
            body: text,
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    const connected = new Promise<void>((opened) =>
      req.once("socket", (socket) => socket.once("connect", () => opened())),
    );
    send(connected).then(() => req.end(body), reject);
  });
}

/**
 * `n` requests on new connections open at once: HAProxy's `leastconn` puts
 * a connection on the replica holding fewer, and connections an earlier test
 * left open (HTTP/2 clients, keep-alive) can tip that balance for a whole
 * series of one-at-a-time requests; `n` at once outnumber them, so both
 * replicas get some. The bodies go once every connection is open.
 */
async function postOnConnectionsAtOnce(url: string, key: string, n: number): Promise<Answer[]> {
  const opened: Promise<void>[] = [];
  let go = () => {};
  const gate = new Promise<void>((resolve) => {
    go = resolve;
  });
  const answers = Array.from({ length: n }, () =>
    postOnNewConnection(url, key, 3, (connected) => {
      opened.push(connected);
      return gate;
    }),
  );
  await Promise.all(opened);
  // HAProxy has connected each to its replica (TCP mode: at accept).
  await sleep(100);
  go();
  return Promise.all(answers);
}

/**
 * A `POST /metrics` whose body keeps coming, a little at a time (fast enough
 * for the minimum data rate): the request is in flight until the socket is
 * destroyed, so a shutdown of that replica keeps draining meanwhile.
 */
async function holdRequestOpen(port: number, key: string): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => {});
  socket.write(
    `POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\nx-api-key: ${key}\r\ncontent-length: 1000000\r\n\r\n{"service":"test-service","metrics":[`,
  );
  const drip = setInterval(() => {
    if (!socket.destroyed) socket.write(" ".repeat(1024));
  }, 250);
  socket.once("close", () => clearInterval(drip));
  // In flight once the service has read its headers.
  await sleep(100);
  return socket;
}

describe("two replicas behind the compose variant's HAProxy (TCP mode, /readyz checks)", () => {
  let a: TestService;
  let b: TestService;
  let haproxy: ChildProcess;
  let url: string;
  beforeAll(async () => {
    // A budget that outlasts the test's watch of A's drain (the default leaves
    // in-flight requests 7.5 s).
    a = await startTestService({ METRICS_SHUTDOWN_TIMEOUT_MS: "30000" });
    b = await startTestService({ ...a.storageEnv, METRICS_API_KEY_TEST_SERVICE: a.key });
    const port = await freePort();
    const file = join(tempDir(), "haproxy.cfg");
    writeFileSync(file, localConfig(port, [a, b]));
    haproxy = spawn("haproxy", ["-db", "-f", file], { stdio: "ignore" });
    url = `http://127.0.0.1:${port}`;
    // Up once HAProxy listens and a replica's first check passed.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const status = await postMetrics(
        url,
        { service: "test-service", metrics: [{ type: "custom", value: 1 }] },
        { key: a.key },
      ).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) break;
      if (Date.now() > deadline)
        throw new Error(`HAProxy did not pass requests (last status ${status})`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });
  afterAll(async () => {
    haproxy?.kill("SIGTERM");
    await b?.close();
    await a?.close();
  });

  it("should pass gRPC over h2c, Connect and the JSON route to the replicas, each stored once", async () => {
    const before = await countIn(a.sql, "metrics");
    // Separate clients, separate connections: spread over both replicas.
    const sends = Array.from({ length: 8 }, (_, i) =>
      ingestClient(i % 2 ? GRPC : CONNECT_HTTP1, url, a.key).ingest(authBatch(5)),
    );
    for (const res of await Promise.all(sends)) expect(res.accepted).toBe(5);
    const json = await postMetrics(
      url,
      { service: "test-service", metrics: [{ type: "custom", value: 2 }] },
      { key: a.key },
    );
    expect(json.status).toBe(200);
    expect(await countIn(a.sql, "metrics")).toBe(before + 41);
  });

  it("should take a draining replica out of rotation and keep every request answered by the other", async () => {
    // Replica A drains, held in its drain by a request whose body is still on its
    // way (sent straight to A, not through HAProxy), so that what HAProxy does
    // with a draining replica can be watched before A stops.
    const holder = await holdRequestOpen(a.port, a.key);
    const closing = a.running.close();
    const drainStarted = performance.now();
    try {
      // 1. HAProxy has not noticed yet: it needs `fall 2` failed checks, `inter 2s`
      // apart, so A stays in rotation at least 2 s. A answers each new connection
      // it still gets 503 with Retry-After: 1 (B, ready, answers 200: a 503 can
      // only be A's, a 200 only B's); nothing is dropped.
      // Each request is balanced when its connection opens, well before 2 s.
      const early = await postOnConnectionsAtOnce(url, a.key, 16);
      expect(performance.now() - drainStarted).toBeLessThan(2_000);
      expect(early.filter((r) => r.status !== 200 && r.status !== 503)).toEqual([]);
      expect(early.some((r) => r.status === 503)).toBe(true);
      expect(early.some((r) => r.status === 200)).toBe(true);
      for (const refused of early.filter((r) => r.status === 503)) {
        expect(refused.retryAfter).toBe("1");
        expect(refused.body).toContain("shutting down");
      }

      // 2. Two failed checks later (at most 2 × 2 s, plus a second), A is out of
      // rotation while it still drains: every new connection goes to B.
      await sleep(Math.max(0, drainStarted + 5_000 - performance.now()));
      const probe = await fetch(`${a.url}/readyz`);
      expect(probe.status).toBe(503);
      expect(await probe.json()).toMatchObject({ checks: { draining: true } });
      const late: number[] = [];
      for (let i = 0; i < 20; i++) late.push((await postOnNewConnection(url, a.key, 4)).status);
      expect(late).toEqual(Array(20).fill(200));
      // Still draining: what answered was B, not a stopped A's redispatch.
      expect((await fetch(`${a.url}/readyz`)).status).toBe(503);
    } finally {
      holder.destroy();
    }
    await closing;

    // 3. Once A is gone, B takes everything, on new and reused connections alike.
    for (let i = 0; i < 5; i++) {
      expect((await postOnNewConnection(url, a.key, 5)).status).toBe(200);
      const res = await postMetrics(
        url,
        { service: "test-service", metrics: [{ type: "custom", value: 5 }] },
        { key: a.key },
      );
      expect(res.status).toBe(200);
    }
  });
});
