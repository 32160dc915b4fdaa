// backends: sqlite only: HTTP/2 method routing; no storage
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { h2Request } from "../support/http2.js";
import { startTestService, type TestService } from "../support/service.js";

/** HTTP/2 carries any :method; "__proto__" once matched Object.prototype in the route table and crashed the process. */
describe("regression: an HTTP/2 :method named after an Object property", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it.each(["__proto__", "constructor", "hasOwnProperty", "toString"])(
    "should answer 405 to :method %s and keep serving",
    async (method) => {
      expect((await h2Request(svc.url, "/health", method)).status).toBe(405);
      expect((await fetch(`${svc.url}/health`)).status).toBe(200);
    },
  );
});
