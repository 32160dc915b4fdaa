import { afterEach, describe, expect, it } from "vitest";
import { freshPgSchema, PG_TEST_URL } from "../support/database.js";
import { pgRelay, viaRelay } from "../support/pg-relay.js";
import { spawnService } from "../support/process.js";
import { freePort } from "../support/service.js";

describe("a replica whose PostgreSQL does not answer at start-up", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("should serve in standby, not ready and saying why, and take over once PostgreSQL answers", async () => {
    const schema = await freshPgSchema();
    cleanups.push(() => schema.drop());
    const port = await freePort();
    const service = await spawnService({
      DATABASE_URL: viaRelay(schema.url, port), // nothing listens there yet
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
    const relay = await pgRelay(new URL(PG_TEST_URL), port);
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
