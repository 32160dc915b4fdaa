import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { GRPC, ingestClient } from "../support/clients.js";
import { freshPgSchema } from "../support/database.js";
import { authBatch } from "../support/events.js";
import { spawnService } from "../support/process.js";

/*
 * docs/configuration.md: "METRICS_SHUTDOWN_TIMEOUT_MS … the whole shutdown's budget …; a
 * shutdown still running 2 s past it exits 1". On a real started process: a
 * commit that cannot end (another connection holds a lock on `metrics`, and
 * the storage timeout is far away) keeps the shutdown from finishing.
 */

const KEY = "overrun-key-0123456789";
const BUDGET_MILLIS = 1_000;
/** main.ts's guard: how far past the budget a stuck shutdown is cut short. */
const OVERRUN_MILLIS = 2_000;
/** The longest a commit may wait (the most METRICS_STORAGE_TIMEOUT_MS may be). */
const STORAGE_TIMEOUT_MILLIS = 14_500;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A started service on a fresh schema, one batch committed, and a lock on `metrics` from another connection. */
async function serviceWithLockedTable() {
  const schema = await freshPgSchema();
  cleanups.push(() => schema.drop());
  const svc = await spawnService({
    DATABASE_URL: schema.url,
    METRICS_API_KEY_OVERRUN: KEY,
    METRICS_SHUTDOWN_TIMEOUT_MS: String(BUDGET_MILLIS),
    METRICS_STORAGE_TIMEOUT_MS: String(STORAGE_TIMEOUT_MILLIS),
  });
  cleanups.push(() => {
    if (svc.child.exitCode === null && svc.child.signalCode === null) svc.child.kill("SIGKILL");
  });
  const client = ingestClient(GRPC, svc.url, KEY);
  expect((await client.ingest(authBatch(1, "overrun"))).accepted).toBe(1);
  const locker = new pg.Client({ connectionString: schema.url });
  await locker.connect();
  await locker.query("BEGIN");
  // Every INSERT waits for it; the service's commit cannot end meanwhile.
  await locker.query("LOCK TABLE metrics IN EXCLUSIVE MODE");
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await locker.query("ROLLBACK");
    await locker.end();
  };
  cleanups.push(release);
  // A request in flight whose commit is stuck behind the lock.
  const stuck = client.ingest(authBatch(1, "overrun")).then(
    () => "answered",
    () => "failed",
  );
  await sleep(300);
  return { svc, release, stuck };
}

describe("a shutdown that overruns its budget", () => {
  it("should exit 1 once it runs 2 s past METRICS_SHUTDOWN_TIMEOUT_MS, with a fatal log line", async () => {
    const { svc, stuck } = await serviceWithLockedTable();
    const signalled = performance.now();
    svc.child.kill("SIGTERM");
    const code = await svc.exited;
    const elapsed = performance.now() - signalled;

    expect(code).toBe(1);
    // Cut short by the guard: not before budget + 2 s, and long before the
    // stuck commit's own timeout would have ended the shutdown.
    expect(elapsed).toBeGreaterThanOrEqual(BUDGET_MILLIS + OVERRUN_MILLIS - 50);
    expect(elapsed).toBeLessThan(BUDGET_MILLIS + OVERRUN_MILLIS + 3_000);
    const fatal = svc
      .output()
      .stdout.split("\n")
      .filter((line) => line.includes("shutdown overran its timeout"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(fatal).toEqual([expect.objectContaining({ level: 60, timeoutMillis: BUDGET_MILLIS })]);
    expect(svc.output().stdout).not.toContain('"msg":"stopped"');
    // The stuck request was never answered as stored.
    expect(await stuck).toBe("failed");
  });

  it("should exit 0, not 1, when the same stuck commit ends within the budget", async () => {
    const { svc, release, stuck } = await serviceWithLockedTable();
    const signalled = performance.now();
    svc.child.kill("SIGTERM");
    await sleep(BUDGET_MILLIS / 2);
    await release();
    const code = await svc.exited;

    expect(code).toBe(0);
    expect(performance.now() - signalled).toBeLessThan(BUDGET_MILLIS + OVERRUN_MILLIS);
    expect(await stuck).toBe("answered");
    expect(svc.output().stdout).toContain('"msg":"stopped"');
  });
});
