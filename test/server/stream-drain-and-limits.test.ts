import { Code } from "@connectrpc/connect";
import { describe, expect, it, vi } from "vitest";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { IngestStreamResponseSchema } from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { failure, GRPC, ingestClient } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { countIn, holdWriteLock, startTestService } from "../support/service.js";

describe("streams and large rejections", () => {
  it("should end an idle stream at shutdown with UNAVAILABLE and the totals of what it stored", async () => {
    // A shutdown that waited for this stream would outlast the test's 30 s timeout.
    const svc = await startTestService({ METRICS_SHUTDOWN_TIMEOUT_MS: "120000" });
    const client = ingestClient(GRPC, svc.url, await svc.keyFor("long-lived"));
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    async function* messages() {
      yield authBatch(4, "long-lived");
      await held; // an emitter with nothing more to say for now
    }
    const call = failure(client.ingestStream(messages()));
    await vi.waitUntil(
      async () => (await countIn(svc.sql, "metrics", "service = 'long-lived'")) === 4,
      {
        timeout: 5_000,
        interval: 10,
      },
    );
    await svc.close();
    release();
    const error = await call;
    expect(error.code).toBe(Code.Unavailable);
    expect(error.findDetails(IngestStreamResponseSchema)[0]).toMatchObject({
      accepted: 4,
      messages: 1,
    });
  });

  it("should answer a batch with thousands of violations with INVALID_ARGUMENT over gRPC, listing the first 100", async () => {
    const svc = await startTestService();
    try {
      const bad = authBatch(100, "many-bad");
      const dims = Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`bad-key-${i}`, 1]));
      bad.events = bad.events.map((e) => ({ ...e, dimensions: dims }));
      const error = await failure(ingestClient(GRPC, svc.url, svc.key).ingest(bad));
      expect(error.code).toBe(Code.InvalidArgument);
      // 100 events x (25 bad keys + 1 "too many dimensions") violations.
      expect(error.rawMessage).toContain("and 2590 more");
      expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations).toHaveLength(100);
      expect(await countIn(svc.sql, "metrics", "service = 'many-bad'")).toBe(0);
    } finally {
      await svc.close();
    }
  });

  it("should keep answering other requests while a commit waits for another process's lock", async () => {
    const svc = await startTestService({ SQLITE_BUSY_TIMEOUT_MS: "20000" });
    const client = ingestClient(GRPC, svc.url, await svc.keyFor("behind-lock"));
    const release = await holdWriteLock(svc.storageEnv);
    try {
      let settled = false;
      const waiting = client.ingest(authBatch(2, "behind-lock")).finally(() => {
        settled = true;
      });
      const health = await fetch(`${svc.url}/health`);
      expect(health.status).toBe(200);
      expect(settled).toBe(false);
      await release();
      expect((await waiting).accepted).toBe(2);
    } finally {
      await release();
      await svc.close();
    }
  });
});
