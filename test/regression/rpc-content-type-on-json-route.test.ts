// backends: sqlite only: routing by content type, before storage
// Bug: POST /metrics with an RPC content type and no key was answered as an RPC (HTTP 200, grpc-status 16) instead of the legacy 401.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { legacyMetric } from "../support/legacy.js";
import { startTestService, type TestService } from "../support/service.js";

describe("regression: an RPC content type on POST /metrics", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it.each(["application/grpc", "application/connect+proto"])(
    "should answer %s without a key with the legacy 401 JSON",
    async (contentType) => {
      const res = await fetch(`${svc.url}/metrics`, {
        method: "POST",
        headers: { "content-type": contentType },
        body: JSON.stringify({ service: "test-service", metrics: [legacyMetric()] }),
      });
      expect(res.status).toBe(401);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      expect(res.headers.has("grpc-status")).toBe(false);
      expect(await res.json()).toEqual({ detail: "API key required in X-API-Key header" });
    },
  );
});
