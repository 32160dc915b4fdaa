import { createConnection, createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { freshPgSchema, PG_TEST_URL } from "../support/database.js";
import { spawnService } from "../support/process.js";
import { freePort } from "../support/service.js";

/** A TCP relay to the tests' PostgreSQL, opened on `port` only when asked: PostgreSQL "starting". */
function relayTo(target: URL, port: number): Promise<{ close(): void }> {
  const sockets = new Set<{ destroy(): void }>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
  });
  const close = () => {
    server.close();
    for (const socket of sockets) socket.destroy();
  };
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve({ close })));
}

describe("a replica whose PostgreSQL does not answer at start-up", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("should serve in standby, not ready and saying why, and take over once PostgreSQL answers", async () => {
    const schema = await freshPgSchema();
    cleanups.push(() => schema.drop());
    const port = await freePort();
    const url = new URL(schema.url);
    url.host = `127.0.0.1:${port}`; // nothing listens there yet
    const service = await spawnService({
      DATABASE_URL: url.toString(),
      METRICS_API_KEY_TEST_SERVICE: "standby-key-0123456789",
      LOG_LEVEL: "info",
    });
    cleanups.push(async () => {
      service.child.kill("SIGTERM");
      await service.exited;
    });
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${service.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain("unreachable");
    const refused = await fetch(`${service.url}/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "standby-key-0123456789" },
      body: JSON.stringify({ service: "test-service", metrics: [{ type: "custom", value: 1 }] }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).not.toBeNull();

    // PostgreSQL comes up: the replica migrates it and takes the port over.
    const relay = await relayTo(new URL(PG_TEST_URL), port);
    cleanups.push(() => relay.close());
    await expect
      .poll(async () => (await fetch(`${service.url}/readyz`)).status, { timeout: 15_000 })
      .toBe(200);
    const stored = await fetch(`${service.url}/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "standby-key-0123456789" },
      body: JSON.stringify({ service: "test-service", metrics: [{ type: "custom", value: 1 }] }),
    });
    expect(stored.status).toBe(200);
    expect(service.output().stdout).toContain("out of standby");
  });
});
