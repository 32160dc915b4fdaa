import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.js";
import { refuseWrites } from "../support/database.js";
import { startTestService, type TestService } from "../support/service.js";

/** A running Watch: the statuses it has seen, and how it ended. */
function watch(url: string) {
  const abort = new AbortController();
  const statuses: ServingStatus[] = [];
  const updates = createClient(Health, createGrpcTransport({ baseUrl: url })).watch(
    { service: "" },
    { signal: abort.signal },
  );
  const ended = (async () => {
    try {
      for await (const update of updates) statuses.push(update.status);
      return undefined;
    } catch (error) {
      return ConnectError.from(error);
    }
  })();
  return { statuses, ended, abort: () => abort.abort() };
}

/** Waits until `check` holds, for at most `millis`. */
async function until(check: () => boolean, millis: number): Promise<void> {
  const deadline = performance.now() + millis;
  while (!check()) {
    if (performance.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("grpc.health.v1.Health Watch", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should send SERVING, then NOT_SERVING once the database refuses writes, then SERVING again", async () => {
    const w = watch(svc.url);
    // Every readiness probe fails from a second connection, as a full or
    // read-only disk would: a real database error that is not a lock (which
    // would leave the verdict standing). No commit is needed to notice it.
    let undo: (() => Promise<void>) | undefined;
    try {
      await until(() => w.statuses.length > 0, 5000);
      expect(w.statuses).toEqual([ServingStatus.SERVING]);
      undo = await refuseWrites(svc.sql, "readiness_probe", "INSERT");
      // Within a probe interval and a watch interval (1 s each).
      await until(() => w.statuses.length > 1, 5000);
      expect(w.statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
      await undo();
      await until(() => w.statuses.length > 2, 5000);
      expect(w.statuses).toEqual([
        ServingStatus.SERVING,
        ServingStatus.NOT_SERVING,
        ServingStatus.SERVING,
      ]);
    } finally {
      await undo?.();
      w.abort();
      await w.ended;
    }
  });
});

describe("grpc.health.v1.Health Watch during a shutdown", () => {
  it("should send NOT_SERVING and end, without holding close() up", async () => {
    const svc = await startTestService({ METRICS_SHUTDOWN_TIMEOUT_MS: "10000" });
    const w = watch(svc.url);
    await until(() => w.statuses.length > 0, 5000);
    const started = performance.now();
    await svc.close();
    expect(performance.now() - started).toBeLessThan(2000);
    const error = await w.ended;
    expect(error?.code).not.toBe(Code.Internal);
    expect(w.statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
  });
});
