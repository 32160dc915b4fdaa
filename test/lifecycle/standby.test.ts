// backends: sqlite only: a second SQLite connection's write lock makes the start wait; PostgreSQL's standby is test/scale-out/postgres-unreachable.test.ts
import { rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { launchService, startService } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { StartAborted } from "../../src/lifecycle/components.js";
import { createLogger } from "../../src/log.js";
import { CONNECT_HTTP1, failure, GRPC, ingestClient } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { freePort, tempDir } from "../support/service.js";

const KEY = "standby-lock-key-0123456789";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A temporary directory, removed after the test. */
function scratch(): string {
  const dir = tempDir();
  cleanups.unshift(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A service's configuration on a SQLite file and a free port, and a logger whose lines are kept. */
async function setUp(dbPath: string) {
  const port = await freePort();
  const config = loadConfig({
    METRICS_SERVICE_HOST: "127.0.0.1",
    METRICS_SERVICE_PORT: String(port),
    SQLITE_DB_PATH: dbPath,
    // A lock is waited for 100 ms at start-up, then the service waits in standby.
    SQLITE_BUSY_TIMEOUT_MS: "100",
    OTEL_PROMETHEUS_ENABLED: "false",
    METRICS_API_KEY_STANDBY: KEY,
  });
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("info", {
    write: (line: string) => {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { config, log, lines, url: `http://127.0.0.1:${port}`, dbPath };
}

/** A GET on a connection of its own (a closed port shows as an error, not a reused socket). */
function getOnNewConnection(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.setTimeout(2000, () => req.destroy(new Error("timed out")));
  });
}

/** A database with the service's tables, and another connection holding its write lock. */
async function lockedDatabase(dbPath: string) {
  const first = await setUp(dbPath);
  await (await startService(first.config, first.log)).close();
  const holder = new BetterSqlite3(dbPath);
  holder.exec("BEGIN IMMEDIATE");
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    holder.exec("ROLLBACK");
    holder.close();
  };
  cleanups.push(release);
  return release;
}

describe("the standby, a not-ready mode of the one port", () => {
  it("should answer not ready while the database is locked, then serve on the same listening port, never refusing a connection", async () => {
    const dbPath = join(scratch(), "metrics.db");
    const release = await lockedDatabase(dbPath);
    const { config, log, lines, url } = await setUp(dbPath);
    let inStandby!: () => void;
    const standby = new Promise<void>((resolve) => {
      inStandby = resolve;
    });
    const service = launchService(config, log, { standby: true, onStandby: () => inStandby() });
    cleanups.push(() => service.close());
    await standby;

    const ready = await getOnNewConnection(`${url}/readyz`);
    expect(ready.status).toBe(503);
    const reason = (JSON.parse(ready.body) as { checks: { database: string } }).checks.database;
    expect(reason).not.toMatch(/^(writable|unproven)$/);
    expect((await getOnNewConnection(`${url}/healthz`)).status).toBe(200);
    expect((await getOnNewConnection(`${url}/health`)).status).toBe(503);
    for (const protocol of [GRPC, CONNECT_HTTP1]) {
      const refused = await failure(
        ingestClient(protocol, url, KEY).ingest(authBatch(1, "standby")),
      );
      expect(refused.code).toBe(Code.Unavailable);
      expect(refused.metadata.get("retry-after")).toBe("1");
    }
    const legacy = await postMetrics(
      url,
      { service: "standby", metrics: [legacyMetric()] },
      {
        key: KEY,
      },
    );
    expect(legacy.status).toBe(503);
    expect(legacy.headers.get("retry-after")).toBe("1");

    // A probe on a new connection every few ms, through the handover.
    const statuses: number[] = [];
    const errors: string[] = [];
    let probing = true;
    const prober = (async () => {
      while (probing) {
        try {
          statuses.push((await getOnNewConnection(`${url}/readyz`)).status);
        } catch (error) {
          errors.push(String(error));
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    release();
    const running = await service.started;
    await expect.poll(() => statuses.at(-1), { timeout: 5000 }).toBe(200);
    probing = false;
    await prober;
    expect(errors).toEqual([]);
    expect(statuses[0]).toBe(503);
    expect(running.address.port).toBe(config.port);
    expect((await ingestClient(GRPC, url, KEY).ingest(authBatch(3, "standby"))).accepted).toBe(3);

    const said = lines.map((line) => line.msg);
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 50,
        msg: "database not writable",
        reason,
        database: dbPath,
      }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({ msg: "listening", standby: true, reason, port: config.port }),
    );
    const outOfStandby = said.indexOf("database writable: out of standby");
    expect(outOfStandby).toBeGreaterThan(said.lastIndexOf("listening"));
    expect(said.filter((msg) => msg === "listening")).toHaveLength(2);
  });

  it("should stop at once when asked to in standby, closing the port", async () => {
    const dbPath = join(scratch(), "metrics.db");
    await lockedDatabase(dbPath);
    const { config, log, url } = await setUp(dbPath);
    let inStandby!: () => void;
    const standby = new Promise<void>((resolve) => {
      inStandby = resolve;
    });
    const service = launchService(config, log, { standby: true, onStandby: () => inStandby() });
    const started = service.started.catch((error: unknown) => error);
    await standby;
    const began = performance.now();
    await service.close();
    expect(performance.now() - began).toBeLessThan(2000);
    expect(await started).toBeInstanceOf(StartAborted);
    await expect(getOnNewConnection(`${url}/healthz`)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("should fail the start, closing the port, when the database cannot be opened for a reason that will not pass", async () => {
    // Not a database: no wait would help.
    const dbPath = join(scratch(), "metrics.db");
    writeFileSync(dbPath, "not a database, and never will be ".repeat(100));
    const { config, log, url, lines } = await setUp(dbPath);
    let waited = false;
    const service = launchService(config, log, {
      standby: true,
      onStandby: () => {
        waited = true;
      },
    });
    cleanups.push(() => service.close());
    await expect(service.started).rejects.toThrow(/not a database/);
    expect(waited).toBe(false);
    expect(lines.map((line) => line.msg)).not.toContain("database not writable");
    await expect(getOnNewConnection(`${url}/healthz`)).rejects.toThrow(/ECONNREFUSED/);
  });
});
