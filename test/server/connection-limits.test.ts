// backends: sqlite only: connection bounds on the port and the exposition server, before storage
import { readFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import * as tls from "node:tls";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import type { ConnectionRefusal } from "../../src/http/connection-limit.js";
import { createOnePortServer, DEFAULT_ONE_PORT_OPTIONS } from "../../src/http/one-port.js";
import { createExpositionServer, EXPOSITION_LIMITS } from "../../src/telemetry/exposition.js";
import {
  exposition,
  freePort,
  samples,
  scrape,
  startTestService,
  type TestService,
  tempDir,
} from "../support/service.js";
import { selfSignedCertificate } from "../support/tls.js";

/*
 * Linux routes all of 127.0.0.0/8 to the loopback interface, so a client can
 * connect from 127.0.0.2, 127.0.0.3, ... to a server on 127.0.0.1: each is
 * another client address for the per-address bounds.
 */

/** A TCP connection from `localAddress` to 127.0.0.1:`port`, once connected. */
function connectFrom(port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress }, () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Milliseconds until `socket` closes (errors such as a reset included), or -1 after `within`. */
function closedAfter(socket: net.Socket, within: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(-1), within);
    socket.on("error", () => {});
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
    });
    socket.resume();
  });
}

/** A connection the server refuses: opened, then closed within 1 s without a byte of answer. */
async function refused(port: number, localAddress: string): Promise<void> {
  const socket = await connectFrom(port, localAddress).catch(() => undefined);
  // A reset may even come before the connect callback runs: refused as well.
  if (socket === undefined) return;
  let answered = 0;
  socket.on("data", (chunk: Buffer) => {
    answered += chunk.length;
  });
  expect(await closedAfter(socket, 1000)).toBeGreaterThanOrEqual(0);
  expect(answered).toBe(0);
}

/** `GET path` on a fresh connection from `localAddress`: its status. */
function getFrom(port: number, path: string, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, localAddress, agent: false }, (res) => {
        res.resume();
        res.once("end", () => resolve(res.statusCode ?? 0));
      })
      .once("error", reject);
  });
}

/** The refusal counter's samples of one port (those above 0: every series starts at 0), read until they settle on `expected`. */
async function refusalsOn(prometheusPort: number, port: string, expected: string[]) {
  // The exposition reuses a collection for 500 ms: poll.
  await expect
    .poll(
      async () =>
        samples(await scrape(prometheusPort), "mcp_metrics_connections_refused_total")
          .filter((line) => line.includes(`port="${port}"`) && !line.endsWith(" 0"))
          .sort(),
      { timeout: 3000, interval: 200 },
    )
    .toEqual(expected.sort());
}

describe("connection bounds on the one port", () => {
  let svc: TestService;
  let prometheusPort: number;
  const held: net.Socket[] = [];
  beforeAll(async () => {
    const prometheus = await exposition();
    prometheusPort = prometheus.port;
    svc = await startTestService({
      ...prometheus.env,
      METRICS_MAX_CONNECTIONS: "6",
      METRICS_MAX_CONNECTIONS_PER_ADDRESS: "3",
    });
  });
  afterAll(async () => {
    for (const socket of held) socket.destroy();
    await svc.close();
  });

  it("should refuse an address's connections past its bound at once, and any past the total, serving other addresses", async () => {
    // Three silent connections from 127.0.0.1: a client that never sends a byte.
    for (let i = 0; i < 3; i++) held.push(await connectFrom(svc.port, "127.0.0.1"));
    await refused(svc.port, "127.0.0.1");
    const others: net.Socket[] = [];
    for (let i = 0; i < 3; i++) others.push(await connectFrom(svc.port, "127.0.0.2"));
    // Six open: a seventh is refused whatever its address.
    await refused(svc.port, "127.0.0.3");
    await refusalsOn(prometheusPort, "main", [
      'mcp_metrics_connections_refused_total{port="main",reason="per_address"} 1',
      'mcp_metrics_connections_refused_total{port="main",reason="total"} 1',
    ]);
    // Under the total again, another address is served while 127.0.0.1 is at its bound
    // (polled: the server closes its side a moment after the client).
    for (const socket of others) socket.destroy();
    await expect
      .poll(() => getFrom(svc.port, "/health", "127.0.0.2").catch(() => 0), {
        timeout: 2000,
        interval: 50,
      })
      .toBe(200);
    await refused(svc.port, "127.0.0.1");
    // Closed connections leave the counts: 127.0.0.1 is served again.
    for (const socket of held.splice(0)) socket.destroy();
    await expect
      .poll(() => getFrom(svc.port, "/health", "127.0.0.1").catch(() => 0), {
        timeout: 2000,
        interval: 50,
      })
      .toBe(200);
  });
});

describe("connection bounds with TLS on the one port", () => {
  it("should reset an address's connection past its bound before any handshake", async () => {
    const { certFile, keyFile } = selfSignedCertificate(tempDir());
    const cert = readFileSync(certFile);
    const reasons: ConnectionRefusal[] = [];
    const port = createOnePortServer((_req, res) => res.end("ok"), {
      ...DEFAULT_ONE_PORT_OPTIONS,
      tls: { cert, key: readFileSync(keyFile) },
      maxConnectionsPerAddress: 2,
      onConnectionRefused: (reason) => reasons.push(reason),
    });
    const { port: number } = await port.listen(0, "127.0.0.1");
    const held = [await connectFrom(number, "127.0.0.1"), await connectFrom(number, "127.0.0.1")];
    try {
      await refused(number, "127.0.0.1");
      expect(reasons).toEqual(["per_address"]);
      // A TLS client from another address completes its handshake and is answered.
      const raw = await connectFrom(number, "127.0.0.2");
      const protocol = await new Promise<string | false>((resolve, reject) => {
        const socket = tls.connect(
          { socket: raw, host: "127.0.0.1", ca: cert, ALPNProtocols: ["http/1.1"] },
          () => {
            resolve(socket.alpnProtocol ?? false);
            socket.end();
          },
        );
        socket.once("error", reject);
      });
      expect(protocol).toBe("http/1.1");
    } finally {
      for (const socket of held) socket.destroy();
      await port.close(100);
    }
  });
});

describe("the Prometheus port's limits", () => {
  let svc: TestService;
  let port: number;
  beforeAll(async () => {
    const prometheus = await exposition();
    port = prometheus.port;
    svc = await startTestService(prometheus.env);
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should close an idle keep-alive connection after 5 s, and cut a client that drips its headers or sends nothing at 10 s", async () => {
    const idle = new Promise<number>((resolve, reject) => {
      const agent = new http.Agent({ keepAlive: true });
      const req = http.get(
        { host: "127.0.0.1", port, path: "/metrics", localAddress: "127.0.0.4", agent },
        (res) => {
          res.resume();
          res.once("end", () => {
            // The agent keeps the socket for another request: the server closes it.
            const ended = performance.now();
            socket?.once("close", () => {
              agent.destroy();
              resolve(performance.now() - ended);
            });
          });
        },
      );
      let socket: net.Socket | undefined;
      req.once("socket", (s) => {
        socket = s;
      });
      req.once("error", reject);
    });
    const dripped = (async () => {
      const socket = await connectFrom(port, "127.0.0.5");
      socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n");
      // One header line every 2 s: never idle, never finished.
      const drip = setInterval(() => socket.write("X-Drip: 1\r\n"), 2000);
      const after = await closedAfter(socket, 20_000);
      clearInterval(drip);
      return after;
    })();
    // A connection that never sends a byte (half-open) is cut at the headers timeout too.
    const silent = connectFrom(port, "127.0.0.7").then((socket) => closedAfter(socket, 20_000));
    const idleMillis = await idle;
    expect(idleMillis).toBeGreaterThanOrEqual(EXPOSITION_LIMITS.keepAliveTimeoutMillis - 500);
    expect(idleMillis).toBeLessThan(EXPOSITION_LIMITS.keepAliveTimeoutMillis + 2500);
    // Node's default let it hold the connection for 91 s; 10 s, checked every second, here.
    const dripMillis = await dripped;
    expect(dripMillis).toBeGreaterThanOrEqual(9_000);
    expect(dripMillis).toBeLessThan(12_500);
    const silentMillis = await silent;
    expect(silentMillis).toBeGreaterThanOrEqual(9_000);
    expect(silentMillis).toBeLessThan(12_500);
  }, 20_000);

  it("should refuse an address's connections past 16 and count them, serving other addresses", async () => {
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < EXPOSITION_LIMITS.maxConnectionsPerAddress; i++) {
        held.push(await connectFrom(port, "127.0.0.3"));
      }
      await refused(port, "127.0.0.3");
      expect(await getFrom(port, "/metrics", "127.0.0.6")).toBe(200);
      await refusalsOn(port, "prometheus", [
        'mcp_metrics_connections_refused_total{port="prometheus",reason="per_address"} 1',
      ]);
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});

describe("the exposition server", () => {
  /** A reader whose collections take 50 ms and are numbered in the text (`n`). */
  function countingReader() {
    const reader = {
      collections: 0,
      async collect() {
        const n = ++reader.collections;
        await new Promise((r) => setTimeout(r, 50));
        return {
          resourceMetrics: { resource: resourceFromAttributes({ n }), scopeMetrics: [] },
          errors: [],
        };
      },
    };
    return reader;
  }
  const collectionOf = (text: string) => Number(/n="(\d+)"/.exec(text)?.[1]);

  it("should start a collection at most every 500 ms, shared by the scrapes that wait for it, none older than its scrape", async () => {
    const reader = countingReader();
    const server = createExpositionServer(reader, () => {});
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
    const scrapeOnce = async () => {
      const started = performance.now();
      const text = await (await fetch(url)).text();
      return { n: collectionOf(text), millis: performance.now() - started };
    };
    try {
      // An idle exposition answers at once.
      const first = await scrapeOnce();
      expect(first).toMatchObject({ n: 1 });
      expect(first.millis).toBeLessThan(EXPOSITION_LIMITS.minCollectionIntervalMillis);
      // Ten scrapes at once, right after: one more collection serves them all.
      const burst = await Promise.all(Array.from({ length: 10 }, scrapeOnce));
      expect(burst.map((b) => b.n)).toEqual(Array(10).fill(2));
      expect(reader.collections).toBe(2);
      // A scrape after them gets a collection that started after it arrived.
      expect((await scrapeOnce()).n).toBe(3);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("should space collections by 5 times the last one's duration when that is longer than 500 ms", async () => {
    const starts: number[] = [];
    const slow = {
      async collect() {
        starts.push(performance.now());
        await new Promise((r) => setTimeout(r, 150));
        return {
          resourceMetrics: { resource: resourceFromAttributes({}), scopeMetrics: [] },
          errors: [],
        };
      },
    };
    const server = createExpositionServer(slow, () => {});
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
    try {
      await (await fetch(url)).text();
      await (await fetch(url)).text();
      const [first = 0, second = 0] = starts;
      // 150 ms × 5 = 750 ms, not 500.
      expect(second - first).toBeGreaterThanOrEqual(740);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("should refuse connections past its total bound", async () => {
    const reasons: ConnectionRefusal[] = [];
    const server = createExpositionServer(countingReader(), () => {}, {
      maxConnections: 3,
      onConnectionRefused: (reason) => reasons.push(reason),
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    const held = [
      await connectFrom(port, "127.0.0.1"),
      await connectFrom(port, "127.0.0.2"),
      await connectFrom(port, "127.0.0.3"),
    ];
    try {
      await refused(port, "127.0.0.4");
      expect(reasons).toEqual(["total"]);
    } finally {
      for (const socket of held) socket.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("the Prometheus port's address", () => {
  it("should read OTEL_EXPORTER_PROMETHEUS_HOST and _PORT before the older OTEL_PROMETHEUS_ names", () => {
    expect(loadConfig({}).telemetry.prometheus).toEqual({ host: "0.0.0.0", port: 9465 });
    expect(
      loadConfig({ OTEL_PROMETHEUS_HOST: "10.0.0.2", OTEL_PROMETHEUS_PORT: "9000" }).telemetry
        .prometheus,
    ).toEqual({ host: "10.0.0.2", port: 9000 });
    expect(
      loadConfig({
        OTEL_EXPORTER_PROMETHEUS_HOST: "10.0.0.1",
        OTEL_PROMETHEUS_HOST: "10.0.0.2",
        OTEL_EXPORTER_PROMETHEUS_PORT: "9001",
        OTEL_PROMETHEUS_PORT: "9000",
      }).telemetry.prometheus,
    ).toEqual({ host: "10.0.0.1", port: 9001 });
    expect(() => loadConfig({ OTEL_EXPORTER_PROMETHEUS_PORT: "x" })).toThrow(
      /OTEL_EXPORTER_PROMETHEUS_PORT="x"/,
    );
  });

  it("should default the connection bounds and read them", () => {
    expect(loadConfig({})).toMatchObject({ maxConnections: 4096, maxConnectionsPerAddress: 256 });
    expect(
      loadConfig({ METRICS_MAX_CONNECTIONS: "100", METRICS_MAX_CONNECTIONS_PER_ADDRESS: "10" }),
    ).toMatchObject({ maxConnections: 100, maxConnectionsPerAddress: 10 });
    expect(() => loadConfig({ METRICS_MAX_CONNECTIONS: "0" })).toThrow(/METRICS_MAX_CONNECTIONS=/);
  });

  it("should bind the exposition where OTEL_EXPORTER_PROMETHEUS_HOST says", async () => {
    const promPort = await freePort();
    const svc = await startTestService({
      OTEL_PROMETHEUS_ENABLED: "true",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(promPort),
    });
    try {
      expect((await fetch(`http://127.0.0.1:${promPort}/metrics`)).status).toBe(200);
      // Bound to 127.0.0.1 only, not 0.0.0.0: another loopback address is refused.
      await expect(fetch(`http://127.0.0.2:${promPort}/metrics`)).rejects.toThrow();
    } finally {
      await svc.close();
    }
  });
});
