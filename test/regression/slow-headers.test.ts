// backends: sqlite only: the headers timeout, before storage
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { startTestService } from "../support/service.js";

describe("regression: a client that sends its headers slowly (slowloris)", () => {
  it("should be cut off after the headers timeout, while other clients are served", async () => {
    const svc = await startTestService();
    try {
      const started = Date.now();
      const closedAfter = await new Promise<number>((resolve) => {
        const socket = connect(svc.port, "127.0.0.1", () => {
          socket.write("POST /metrics HTTP/1.1\r\nHost: x\r\n");
        });
        // One more header line every 2 s: never idle, never finished. Before
        // the fix Node never enforced headersTimeout on the one port.
        const drip = setInterval(() => socket.write("X-Drip: 1\r\n"), 2000);
        socket.on("error", () => {});
        socket.on("close", () => {
          clearInterval(drip);
          resolve(Date.now() - started);
        });
        socket.resume();
      });
      // 10 s of headers allowed, checked every second; well under the 60 s a
      // drip could otherwise hold the connection for in this test's time.
      expect(closedAfter).toBeGreaterThanOrEqual(9_000);
      expect(closedAfter).toBeLessThan(25_000);
      expect((await fetch(`${svc.url}/health`)).status).toBe(200);
    } finally {
      await svc.close();
    }
  }, 40_000);
});
