import { rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { hashApiKey } from "../../src/auth/api-key.js";
import { GRPC, ingestClient } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { postMetrics } from "../support/legacy.js";
import { spawnService } from "../support/process.js";
import { processStorage, tempDir } from "../support/service.js";

describe("the service's logs", () => {
  it("should never contain an API key or a payload body, even at debug level", async () => {
    const dir = tempDir();
    const ingestKey = "ingest-key-SECRET-0a1b2c3d4e5f";
    const adminKey = "admin-key-SECRET-6a7b8c9d0e1f";
    const marker = "PAYLOAD-MARKER-7f3e";
    const storage = await processStorage(dir);
    const service = await spawnService({
      ...storage.env,
      METRICS_API_KEY_TEST_SERVICE: ingestKey,
      METRICS_ADMIN_API_KEY: adminKey,
      LOG_LEVEL: "trace",
    });
    try {
      const metric = { type: "auth_request", value: 1, metadata: { note: marker } };
      // Accepted, invalid, malformed, wrong-key and timestamp-warning requests.
      await postMetrics(
        service.url,
        { service: "test-service", metrics: [metric] },
        { key: ingestKey },
      );
      await postMetrics(
        service.url,
        { service: "test-service", metrics: [{ ...metric, duration_ms: -1 }] },
        { key: ingestKey },
      );
      await postMetrics(service.url, null, { key: ingestKey, raw: `{"note": "${marker}"` });
      await postMetrics(
        service.url,
        { service: "x", metrics: [metric] },
        { key: `${ingestKey}-wrong` },
      );
      const old = { ...metric, timestamp: "2020-01-01T00:00:00Z" };
      await postMetrics(
        service.url,
        { service: "test-service", metrics: [old] },
        { key: ingestKey },
      );
      // Refused as another service: the refusal is logged, the key is not.
      await postMetrics(
        service.url,
        { service: "someone-else", metrics: [metric] },
        { key: ingestKey },
      );
      const client = ingestClient(GRPC, service.url, ingestKey);
      const batch = authBatch(1);
      batch.events[0] = { ...batch.events[0], metadata: { note: marker } };
      await client.ingest(batch);
      await fetch(`${service.url}/admin/retention/cleanup?dry_run=false`, {
        method: "POST",
        headers: { "x-api-key": adminKey },
      });
      await fetch(`${service.url}/admin/retention/policies/api_keys?retention_days=1`, {
        method: "PUT",
        headers: { "x-api-key": adminKey },
      });
    } finally {
      service.child.kill("SIGTERM");
      await service.exited;
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const { stdout, stderr } = service.output();
    const logs = stdout + stderr;
    expect(logs.split("\n").length).toBeGreaterThan(5); // it did log, at trace level
    const hashes = [hashApiKey(ingestKey), hashApiKey(adminKey)];
    for (const secret of [ingestKey, adminKey, ...hashes, "SECRET", marker]) {
      expect(logs).not.toContain(secret);
    }
  }, 30_000);
});
