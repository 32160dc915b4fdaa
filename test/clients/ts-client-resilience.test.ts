import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { createMetricsClient } from "../../clients/typescript/src/index.js";
import { expectBalanced } from "../support/client-stats.js";
import { spawnService } from "../support/process.js";
import { freePort, processStorage, startTestService, tempDir } from "../support/service.js";

const quiet = { warn: () => {} };
const run = promisify(execFile);
/** The client as \`npm test\` builds it (run in a child process of its own). */
const CLIENT_MODULE = pathToFileURL(
  join(import.meta.dirname, "..", "..", "dist", "clients", "typescript", "src", "index.js"),
).href;

describe("the TypeScript client against a restarting server", () => {
  const dir = tempDir();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(["grpc", "connect"] as const)(
    "should lose nothing and recover by itself over %s",
    async (protocol) => {
      const port = await freePort();
      const key = `k-${randomBytes(8).toString("hex")}`;
      const storage = await processStorage(dir, `${protocol}.db`);
      const env = {
        METRICS_SERVICE_PORT: String(port),
        ...storage.env,
        METRICS_API_KEY_TEST_SERVICE: key,
      };
      const warnings: string[] = [];
      let service = await spawnService(env);
      const client = createMetricsClient({
        baseUrl: service.url,
        apiKey: key,
        service: "test-service",
        protocol,
        flushIntervalMillis: 20,
        retry: { initialBackoffMillis: 20, maxBackoffMillis: 200 },
        logger: { warn: (m) => warnings.push(m) },
      });
      let next = 0;
      const emitting = setInterval(() => {
        for (let i = 0; i < 10; i++) client.custom({ metricName: "restart", value: next++ });
      }, 5);
      try {
        await expect.poll(() => client.stats().sent, { timeout: 10_000 }).toBeGreaterThan(300);
        service.child.kill("SIGTERM");
        expect(await service.exited).toBe(0);
        const sentBeforeRestart = client.stats().sent;
        await sleep(300); // down: the client's requests are refused and retried meanwhile
        service = await spawnService(env);
        await expect
          .poll(() => client.stats().sent, { timeout: 15_000 })
          .toBeGreaterThan(sentBeforeRestart + 300);
      } finally {
        clearInterval(emitting);
      }
      expect(await client.flush(15_000)).toBe(true);
      const stats = client.stats();
      await client.close();
      service.child.kill("SIGTERM");
      await service.exited;

      expect({ ...stats, warnings }).toMatchObject({
        emitted: next,
        sent: next,
        dropped: 0,
        failed: 0,
        warnings: [],
      });
      expect(stats.retries).toBeGreaterThan(0);
      const stored = await storage
        .sql()
        .get("SELECT count(*) AS n, count(DISTINCT value) AS d, max(value) AS hi FROM metrics");
      await storage.close();
      // Every acknowledged event stored exactly once, and nothing missing.
      expect(stored).toEqual({ n: next, d: next, hi: next - 1 });
    },
    60_000,
  );
});

describe("the TypeScript client in a 429 storm", () => {
  it("should wait as long as the server says, and keep its buffer bounded", async () => {
    // 30 requests a minute: a full bucket of 30, then one token every 2 s.
    const svc = await startTestService({ METRICS_RATE_LIMIT: "30" });
    const client = createMetricsClient({
      baseUrl: svc.url,
      apiKey: svc.key,
      service: "test-service",
      maxBatchEvents: 10,
      maxBufferedEvents: 200,
      flushIntervalMillis: 10,
      // Backoff alone would retry within milliseconds: only RetryInfo can hold it back.
      retry: { initialBackoffMillis: 1, maxBackoffMillis: 5 },
      logger: quiet,
    });
    let peakBuffered = 0;
    const started = Date.now();
    // A fixed amount of work, however slow the machine: 150 rounds of 100.
    for (let round = 0; round < 150; round++) {
      for (let i = 0; i < 100; i++) client.custom({ metricName: "storm", value: i });
      peakBuffered = Math.max(peakBuffered, client.stats().buffered);
      await sleep(20);
    }
    const stats = client.stats();
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `429 storm: ${stats.emitted} emitted, ${stats.sent} sent, ${stats.dropped} dropped, ` +
        `${stats.retries} retries in ${seconds.toFixed(1)} s, peak buffer ${peakBuffered}/200`,
    );
    // Two requests in flight, each waiting the ~2 s the server asks for.
    expect(stats.retries).toBeGreaterThan(0);
    expect(stats.retries).toBeLessThanOrEqual(2 * Math.ceil(seconds / 2) + 2);
    expect(peakBuffered).toBe(200);
    expect(stats.buffered + stats.inFlight).toBeLessThanOrEqual(200 + 2 * 10);
    // Nearly everything beyond the first bucket of 30 requests is dropped, oldest first.
    expect(stats.dropped).toBeGreaterThan(stats.emitted - 400 - stats.sent);
    expect(stats.sent).toBeGreaterThanOrEqual(300);
    expectBalanced(client);

    const closing = Date.now();
    expect(await client.close(300)).toBe(false);
    expect(Date.now() - closing).toBeLessThan(2_000);
    const after = client.stats();
    expect(after).toMatchObject({ buffered: 0, inFlight: 0 });
    expect(after.failed).toBeGreaterThan(0);
    expectBalanced(client);
    await svc.close();
  });
});

describe("the TypeScript client with no server", () => {
  it("should never keep a process alive while it retries in the background", async () => {
    const port = await freePort();
    const script = `
      import { createMetricsClient } from ${JSON.stringify(CLIENT_MODULE)};
      const client = createMetricsClient({ baseUrl: "http://127.0.0.1:${port}", apiKey: "k",
        service: "test-service", logger: { warn() {} } });
      for (let i = 0; i < 5; i++) client.custom({ metricName: "orphan", value: i });
      console.log("flushed:", await client.flush(300));`;
    const started = Date.now();
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
      timeout: 10_000,
    });
    expect(stdout.trim()).toBe("flushed: false");
    // Without close(), and with batches still being retried, the process ends by itself.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("should give up at close's deadline and let the process go", async () => {
    const port = await freePort();
    const client = createMetricsClient({
      baseUrl: `http://127.0.0.1:${port}`,
      apiKey: "k",
      service: "test-service",
      logger: quiet,
    });
    for (let i = 0; i < 50; i++) client.custom({ metricName: "nowhere", value: i });
    const closing = Date.now();
    expect(await client.close(300)).toBe(false);
    expect(Date.now() - closing).toBeLessThan(2_000);
    expect(client.stats()).toMatchObject({ emitted: 50, failed: 50, buffered: 0, inFlight: 0 });
    client.custom({ metricName: "after-close", value: 1 });
    expect(client.stats()).toMatchObject({ emitted: 51, dropped: 1 });
  });
});
