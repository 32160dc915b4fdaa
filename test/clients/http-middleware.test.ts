import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createMetricsClient,
  expressAuthMetrics,
  fastifyAuthMetrics,
  hashUser,
  type MetricsClient,
  withAuthMetrics,
} from "../../clients/typescript/src/index.js";
import { startTestService, type TestService } from "../support/service.js";

const JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";

/** What an auth server's /validate answers: 200 with the user for a good token, else 401. */
function validate(authorization: string | undefined): { status: number; user?: string } {
  if (authorization === `Bearer ${JWT}`) return { status: 200, user: "alice" };
  return { status: 401 };
}

function plainHandler(req: IncomingMessage, res: ServerResponse) {
  const verdict = validate(req.headers.authorization);
  if (verdict.user) {
    res.setHeader("x-username", verdict.user);
    res.setHeader("x-auth-method", "jwt");
  }
  res.statusCode = verdict.status;
  res.end();
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Three requests through a gateway: one good token, one bad, one with none. */
async function drive(baseUrl: string, server: string) {
  const headers = { "x-original-url": `https://gw.example/${server}/mcp` };
  await fetch(`${baseUrl}/validate`, { headers: { ...headers, authorization: `Bearer ${JWT}` } });
  await fetch(`${baseUrl}/validate`, { headers: { ...headers, authorization: "Bearer opaque" } });
  await fetch(`${baseUrl}/validate`, { headers });
}

describe("the HTTP auth middleware", () => {
  let svc: TestService;
  let client: MetricsClient;
  beforeAll(async () => {
    svc = await startTestService();
    client = createMetricsClient({ baseUrl: svc.url, apiKey: svc.key, service: "test-service" });
  });
  afterAll(async () => {
    await client.close();
    await svc.close();
  });

  const stored = async (server: string) => {
    expect(await client.flush()).toBe(true);
    return await svc.sql.all<{
      success: number;
      method: string;
      user_hash: string | null;
      error_code: string | null;
      duration_ms: number;
    }>(
      "SELECT success, method, user_hash, error_code, duration_ms FROM auth_metrics WHERE server = ? ORDER BY id",
      server,
    );
  };

  const expectOutcomes = (rows: Awaited<ReturnType<typeof stored>>) => {
    expect(rows.map(({ duration_ms: _d, ...rest }) => rest)).toEqual([
      { success: 1, method: "jwt", user_hash: hashUser("alice"), error_code: null },
      { success: 0, method: "oauth", user_hash: null, error_code: "401" },
      { success: 0, method: "noauth", user_hash: null, error_code: "401" },
    ]);
    for (const row of rows) expect(row.duration_ms).toBeGreaterThan(0);
  };

  it("should emit one auth event per request from a node:http handler", async () => {
    const server = createServer(withAuthMetrics(client, plainHandler));
    await drive(await listen(server), "plain-srv");
    server.close();
    expectOutcomes(await stored("plain-srv"));
  });

  it("should emit one auth event per request as Express middleware", async () => {
    const app = express();
    app.use(expressAuthMetrics(client));
    app.get("/validate", (req, res) => {
      const verdict = validate(req.headers.authorization);
      if (verdict.user) res.set({ "x-username": verdict.user, "x-auth-method": "jwt" });
      res.status(verdict.status).end();
    });
    const server = createServer(app);
    await drive(await listen(server), "express-srv");
    server.close();
    expectOutcomes(await stored("express-srv"));
  });

  it("should emit one auth event per request as a Fastify onResponse hook", async () => {
    const app = Fastify();
    app.addHook("onResponse", fastifyAuthMetrics(client));
    app.get("/validate", async (request, reply) => {
      const verdict = validate(request.headers.authorization);
      if (verdict.user) reply.header("x-username", verdict.user).header("x-auth-method", "jwt");
      return reply.code(verdict.status).send();
    });
    const baseUrl = await app.listen({ port: 0, host: "127.0.0.1" });
    await drive(baseUrl, "fastify-srv");
    await app.close();
    expectOutcomes(await stored("fastify-srv"));
  });

  it("should measure only the requests it is told to include", async () => {
    const server = createServer(
      withAuthMetrics(client, plainHandler, { include: (req) => req.url === "/validate" }),
    );
    const baseUrl = await listen(server);
    await fetch(`${baseUrl}/healthz`, { headers: { "x-original-url": "/skip-srv/mcp" } });
    await fetch(`${baseUrl}/validate`, { headers: { "x-original-url": "/skip-srv/mcp" } });
    server.close();
    expect(await stored("skip-srv")).toHaveLength(1);
  });
});
