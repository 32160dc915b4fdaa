import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestService, type TestService } from "../support/service.js";

/** HTTP/2 carries any :method; "__proto__" once matched Object.prototype in the route table and crashed the process. */
function requestWithMethod(url: string, method: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const req = session.request({ ":path": "/health", ":method": method });
    req.on("response", (headers) => {
      resolve(Number(headers[":status"]));
      session.close();
    });
    req.on("error", reject);
    req.end();
  });
}

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
      expect(await requestWithMethod(svc.url, method)).toBe(405);
      expect((await fetch(`${svc.url}/health`)).status).toBe(200);
    },
  );
});
