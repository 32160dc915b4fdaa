import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startService } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { GRPC, ingestClient } from "../support/clients.js";
import { freshPgSchema, onPostgres } from "../support/database.js";
import { authBatch } from "../support/events.js";
import { tempDir } from "../support/service.js";

/** The components, in start order, as docs/reliability.md ("Start and stop") lists them. */
const ORDER = [
  "port",
  "storage",
  "telemetry",
  "keys",
  "readiness",
  "ingest",
  "retention",
  "rate limits",
  "scheduler",
  "server",
];

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A configuration on the suite's backend, and a logger whose lines are kept. */
async function setUp(env: Record<string, string> = {}) {
  const schema = onPostgres ? await freshPgSchema() : undefined;
  if (schema) cleanups.push(() => schema.drop());
  const key = "lifecycle-key-0123456789";
  const dir = tempDir();
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = loadConfig({
    METRICS_SERVICE_HOST: "127.0.0.1",
    METRICS_SERVICE_PORT: "0",
    SQLITE_DB_PATH: join(dir, "metrics.db"),
    ...(schema ? { DATABASE_URL: schema.url } : {}),
    OTEL_PROMETHEUS_ENABLED: "false",
    METRICS_API_KEY_LIFECYCLE: key,
    ...env,
  });
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("debug", {
    write: (line: string) => {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { config, log, lines, key };
}

const messages = (lines: Record<string, unknown>[], msg: string) =>
  lines.filter((line) => line.msg === msg).map((line) => line.component);

describe("the service's components", () => {
  it("should start in the documented order and stop in the reverse order, the port last", async () => {
    const { config, log, lines, key } = await setUp();
    const running = await startService(config, log);
    let closed = false;
    cleanups.push(() => closed || running.close());
    expect(messages(lines, "component started")).toEqual(ORDER);
    // "listening" once the server serves, and not before.
    const listening = lines.findIndex((line) => line.msg === "listening");
    const storageStarted = lines.findIndex(
      (line) => line.msg === "component started" && line.component === "storage",
    );
    expect(listening).toBeGreaterThan(storageStarted);
    const url = `http://127.0.0.1:${running.address.port}`;
    expect((await ingestClient(GRPC, url, key).ingest(authBatch(2, "lifecycle"))).accepted).toBe(2);
    await running.close();
    closed = true;
    expect(messages(lines, "component stopped")).toEqual([...ORDER].reverse());
    expect(lines.at(-1)).toMatchObject({ msg: "stopped" });
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });

  it("should run the retention sweep on the scheduler, after METRICS_RETENTION_START_DELAY_MS", async () => {
    const { config, log, lines } = await setUp({
      METRICS_RETENTION_START_DELAY_MS: "0",
      METRICS_RETENTION_INTERVAL_MS: "1000",
    });
    const running = await startService(config, log);
    cleanups.push(() => running.close());
    await expect
      .poll(() => lines.filter((line) => line.msg === "retention sweep done").length, {
        timeout: 5000,
      })
      .toBeGreaterThanOrEqual(2);
  });

  it("should stop what had started, the port included, when a component fails to start", async () => {
    const { config, log, lines } = await setUp({ OTEL_PROMETHEUS_ENABLED: "true" });
    // The Prometheus port is taken: telemetry cannot start.
    const { createServer } = await import("node:net");
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise((resolve) => taken.close(resolve)));
    const { port } = taken.address() as { port: number };
    await expect(
      startService(
        {
          ...config,
          telemetry: { ...config.telemetry, prometheus: { host: "127.0.0.1", port } },
        },
        log,
      ),
    ).rejects.toThrow(/EADDRINUSE/);
    expect(messages(lines, "component started")).toEqual(["port", "storage"]);
    expect(messages(lines, "component stopped")).toEqual(["storage", "port"]);
  });
});
