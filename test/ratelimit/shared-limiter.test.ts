// backends: sqlite only: the Redis-shared rate limit; storage is incidental and the same on both
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { Code } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/log.js";
import { createSharedRateLimiter } from "../../src/ratelimit/shared-limiter.js";
import { failure, GRPC, ingestClient } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { exposition, freePort, samples, scrape, startTestService } from "../support/service.js";

/** The real Redis of these machines (`.ci/test-deps` starts it when it is not running). */
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
/** Nothing listens here: Redis unreachable. */
const NO_REDIS = "redis://127.0.0.1:1";

const silent = createLogger("silent");
const unique = () => `test-${randomBytes(8).toString("hex")}`;

describe("the shared rate limit (Redis)", () => {
  const limiters: { close(): Promise<void> }[] = [];
  const open = async (url = REDIS_URL, onLocalDecision?: () => void) => {
    const limiter = await createSharedRateLimiter({
      url,
      log: silent,
      timeoutMillis: 200,
      ...(onLocalDecision ? { onLocalDecision } : {}),
    });
    limiters.push(limiter);
    return limiter;
  };
  afterAll(async () => {
    for (const limiter of limiters) await limiter.close();
  });

  it("should let two replicas together spend one bucket, then refuse with the time to the next token", async () => {
    const [a, b] = [await open(), await open()];
    const bucket = unique();
    const decisions = [];
    for (let i = 0; i < 14; i++) decisions.push(await (i % 2 === 0 ? a : b).take(bucket, 10));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
    expect(decisions.slice(0, 10).every((d) => d.allowed)).toBe(true);
    const refused = decisions[13];
    expect(refused?.allowed).toBe(false);
    // 10 per minute: the next token is about 6 s away.
    expect(refused?.retryAfterSeconds).toBeGreaterThan(5);
    expect(refused?.retryAfterSeconds).toBeLessThanOrEqual(6);
    expect(a.shared && b.shared).toBe(true);
  });

  it("should refill continuously on Redis's clock and report a bucket without spending", async () => {
    const limiter = await open();
    const bucket = unique();
    // All at once (ioredis pipelines them): taken one by one on a loaded machine,
    // the bucket would refill a token every 100 ms meanwhile.
    await Promise.all(Array.from({ length: 600 }, () => limiter.take(bucket, 600)));
    expect((await limiter.take(bucket, 600)).allowed).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 350)); // 10 tokens per second
    const state = await limiter.peek(bucket, 600);
    expect(state.available).toBeGreaterThanOrEqual(2);
    expect(state.available).toBeLessThanOrEqual(5);
    expect((await limiter.peek(bucket, 600)).available).toBe(state.available);
    expect((await limiter.take(bucket, 600)).allowed).toBe(true);
  });

  it("should refuse everything for a limit of 0", async () => {
    expect((await (await open()).take(unique(), 0)).allowed).toBe(false);
  });

  it("should fall back to this replica's buckets when Redis is unreachable, never refusing everything", async () => {
    let local = 0;
    const limiter = await open(NO_REDIS, () => local++);
    const bucket = unique();
    const decisions = [];
    for (let i = 0; i < 5; i++) decisions.push(await limiter.take(bucket, 3));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
    expect(limiter.shared).toBe(false);
    expect(local).toBe(5);
  });
});

describe("a Redis that goes away and comes back", () => {
  it("should decide locally while it is down, say so once, and share the buckets again once it is back", async () => {
    const port = await freePort();
    const start = () =>
      spawn(
        "redis-server",
        ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        {
          stdio: "ignore",
        },
      );
    let server = start();
    const warnings: string[] = [];
    const infos: string[] = [];
    const log = createLogger("silent");
    log.warn = ((_obj: unknown, msg?: string) => warnings.push(msg ?? "")) as typeof log.warn;
    log.info = ((msg: unknown) => infos.push(String(msg))) as typeof log.info;
    await expect
      .poll(async () => (await probeRedis(port)) === "PONG", { timeout: 5000 })
      .toBe(true);
    let local = 0;
    const limiter = await createSharedRateLimiter({
      url: `redis://127.0.0.1:${port}`,
      log,
      timeoutMillis: 200,
      onLocalDecision: () => local++,
    });
    try {
      const bucket = unique();
      expect((await limiter.take(bucket, 100)).allowed).toBe(true);
      expect(limiter.shared).toBe(true);

      server.kill("SIGKILL");
      await new Promise((resolve) => server.once("exit", resolve));
      for (let i = 0; i < 5; i++) expect((await limiter.take(bucket, 100)).allowed).toBe(true);
      expect(limiter.shared).toBe(false);
      expect(local).toBe(5);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain("Redis unreachable");

      server = start();
      await expect
        .poll(
          async () => {
            await limiter.take(bucket, 100);
            return limiter.shared;
          },
          { timeout: 10_000, interval: 200 },
        )
        .toBe(true);
      expect(infos.some((m) => m.includes("Redis reachable again"))).toBe(true);
    } finally {
      await limiter.close();
      server.kill("SIGKILL");
    }
  });
});

/** PING over a plain socket: whether a Redis answers on `port`. */
async function probeRedis(port: number): Promise<string> {
  return await new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
    socket.once("data", (d) => {
      resolve(d.toString().trim().replace(/^\+/, ""));
      socket.destroy();
    });
    socket.once("error", () => resolve("down"));
  });
}

describe("two replicas sharing one Redis", () => {
  it("should give a key limited to N requests per minute N successes in total across both", async () => {
    const key = unique();
    const env = {
      REDIS_URL,
      METRICS_RATE_LIMIT: "5",
      METRICS_API_KEY_SHARED_LIMIT: key,
    };
    const [one, two] = [await startTestService(env), await startTestService(env)];
    try {
      const clients = [ingestClient(GRPC, one.url, key), ingestClient(GRPC, two.url, key)];
      let ok = 0;
      const refused: Code[] = [];
      for (let i = 0; i < 9; i++) {
        try {
          await clients[i % 2]?.ingest(authBatch(1, "shared-limit"));
          ok++;
        } catch (error) {
          refused.push((await failure(Promise.reject(error))).code);
        }
      }
      expect(ok).toBe(5);
      expect(refused).toEqual([
        Code.ResourceExhausted,
        Code.ResourceExhausted,
        Code.ResourceExhausted,
        Code.ResourceExhausted,
      ]);
    } finally {
      await one.close();
      await two.close();
    }
  });

  it("should keep serving with per-replica limits while Redis is unreachable, and count it", async () => {
    const prometheus = await exposition();
    const svc = await startTestService({
      REDIS_URL: NO_REDIS,
      METRICS_RATE_LIMIT: "1000",
      ...prometheus.env,
    });
    try {
      const client = ingestClient(GRPC, svc.url, svc.key);
      for (let i = 0; i < 3; i++) expect((await client.ingest(authBatch(1))).accepted).toBe(1);
      const text = await scrape(prometheus.port);
      expect(samples(text, "mcp_metrics_rate_limit_local_decisions_total").join("\n")).toMatch(
        / [3-9]\d*$/,
      );
    } finally {
      await svc.close();
    }
  });
});
