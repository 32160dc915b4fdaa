// backends: sqlite only: plain HTTP routes; no storage
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { h2Request } from "../support/http2.js";
import { startTestService, type TestService } from "../support/service.js";

describe("plain HTTP routes on the one port", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should answer GET /health over HTTP/1.1 with the legacy body", async () => {
    const res = await fetch(`${svc.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "healthy", service: "metrics-collection" });
  });

  it("should answer GET /health over cleartext HTTP/2 on the same port", async () => {
    const res = await h2Request(svc.url, "/health");
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ status: "healthy", service: "metrics-collection" });
  });

  it("should answer 404 for an unknown path and 405 for a wrong method, in the legacy shape", async () => {
    const missing = await fetch(`${svc.url}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ detail: "Not Found" });
    const wrong = await fetch(`${svc.url}/health`, { method: "DELETE" });
    expect(wrong.status).toBe(405);
    expect(await wrong.json()).toEqual({ detail: "Method Not Allowed" });
  });
});
