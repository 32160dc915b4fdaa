/**
 * An auth server's `/validate` endpoint (nginx `auth_request`), measured with
 * the middleware: one auth event per request, with outcome, method, server,
 * hashed user and duration.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
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
