/**
 * An auth server's `/validate` endpoint (nginx `auth_request`), measured with
 * the middleware: one auth event per request, with outcome, method, server,
 * hashed user and duration.
 *
 * Run it as a script, after `npm run build` at the repository root:
 *
 *   METRICS_SERVICE_URL=http://127.0.0.1:8890 METRICS_API_KEY=<key> \
 *     node dist/clients/typescript/examples/auth-server.js
 *
 * It serves `/validate` on 127.0.0.1 (port AUTH_SERVER_PORT, default any free
 * one), calls it with a good and a wrong token, drains the client and prints
 * its counters; it exits 1 if the two events were not sent.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { createMetricsClient, withAuthMetrics } from "../src/index.js";

/** Builds the auth server; `verify` stands for the real token check. */
export function createAuthServer(verify: (token: string | undefined) => string | undefined) {
  const metrics = createMetricsClient({
    baseUrl: process.env.METRICS_SERVICE_URL ?? "http://metrics-service:8890",
    apiKey: process.env.METRICS_API_KEY ?? "",
    service: "auth-server",
  });

  function validate(req: IncomingMessage, res: ServerResponse) {
    const user = verify(req.headers.authorization?.replace(/^Bearer /, ""));
    if (user) res.setHeader("x-username", user).setHeader("x-auth-method", "jwt");
    res.writeHead(user ? 200 : 401).end();
  }

  const server = createServer(withAuthMetrics(metrics, validate));
  return { server, metrics };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!process.env.METRICS_API_KEY) {
    console.error(
      "set METRICS_API_KEY (and METRICS_SERVICE_URL, default http://metrics-service:8890)",
    );
    process.exit(2);
  }
  const { server, metrics } = createAuthServer((token) => (token === "good" ? "alice" : undefined));
  await new Promise<void>((resolve) =>
    server.listen(Number(process.env.AUTH_SERVER_PORT ?? 0), "127.0.0.1", resolve),
  );
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/validate`;
  for (const token of ["good", "wrong"]) {
    const answer = await fetch(url, {
      headers: { authorization: `Bearer ${token}`, "x-original-url": "/example-server/mcp" },
    });
    console.log(`GET /validate with the ${token} token: ${answer.status}`);
  }
  server.close();
  await metrics.close();
  const stats = metrics.stats();
  console.log(stats);
  process.exitCode = stats.sent === 2 ? 0 : 1;
}
