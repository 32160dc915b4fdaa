import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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

describe("two replicas behind the compose variant's HAProxy (TCP mode, /readyz checks)", () => {
  let a: TestService;
  let b: TestService;
  let haproxy: ChildProcess;
  let url: string;
  beforeAll(async () => {
    a = await startTestService();
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
    // Replica A drains: its /readyz says 503 until it stops; HAProxy stops sending it new connections.
    const closing = a.running.close();
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await postMetrics(
        url,
        { service: "test-service", metrics: [{ type: "custom", value: 3 }] },
        { key: a.key },
      );
      statuses.push(res.status);
    }
    await closing;
    // Once A is gone, B takes everything (a connection refused by A is redispatched).
    await expect
      .poll(
        () =>
          postMetrics(
            url,
            { service: "test-service", metrics: [{ type: "custom", value: 4 }] },
            { key: a.key },
          ).then((r) => r.status),
        { timeout: 10_000 },
      )
      .toBe(200);
    for (let i = 0; i < 5; i++) {
      const res = await postMetrics(
        url,
        { service: "test-service", metrics: [{ type: "custom", value: 5 }] },
        { key: a.key },
      );
      expect(res.status).toBe(200);
    }
    // While A drained, a request it still took was answered 503 with Retry-After, never lost.
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
  });
});
