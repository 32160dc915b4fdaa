import { connect } from "node:http2";
import { describe, expect, it } from "vitest";
import { startTestService } from "../support/service.js";

describe("regression: an HTTP/2 rapid-reset flood (CVE-2023-44487)", () => {
  it("should survive 20,000 streams opened and reset at once, and keep serving others", async () => {
    const svc = await startTestService();
    try {
      const session = connect(svc.url);
      session.on("error", () => {});
      let opened = 0;
      for (let i = 0; i < 20_000 && !session.destroyed; i++) {
        try {
          const stream = session.request({
            ":method": "POST",
            ":path": "/mcp.metrics.v1.IngestService/Ingest",
            "content-type": "application/grpc",
          });
          stream.on("error", () => {});
          stream.close(0x8); // RST_STREAM CANCEL right away
          opened++;
        } catch {
          break; // the server already sent GOAWAY: the flood is over
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      session.destroy();
      console.log(`rapid reset: ${opened} streams opened and reset before the session ended`);
      expect(opened).toBeGreaterThan(100);
      // The service is still up, on both HTTP versions.
      expect((await fetch(`${svc.url}/health`)).status).toBe(200);
      const again = connect(svc.url);
      const status = await new Promise<number>((resolve, reject) => {
        const req = again.request({ ":path": "/health" });
        req.on("response", (headers) => resolve(Number(headers[":status"])));
        req.on("error", reject);
        req.end();
      });
      again.close();
      expect(status).toBe(200);
    } finally {
      await svc.close();
    }
  }, 60_000);
});
