import { createHash } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { MetricsEmitter } from "./metrics-client.js";

/** What the auth middleware knows of one finished request. */
export interface AuthExchange {
  /** The request's headers (lower-case names). */
  readonly requestHeaders: IncomingHttpHeaders;
  /** The request's path and query. */
  readonly url: string;
  /** The response status; 499 when the client went away before the answer. */
  readonly statusCode: number;
  /** A response header as the handler set it. */
  responseHeader(name: string): string | undefined;
}

/**
 * How the auth middleware reads a request. The defaults follow the gateway's
 * auth server (nginx `auth_request` to `/validate`): the target server is the
 * first path segment of `X-Original-URL` (else of the request path), the
 * method and user come from the `X-Auth-Method` and `X-Username` response
 * headers the auth handler sets (else the method from the `Authorization`
 * scheme), and any status below 400 is a success.
 */
export interface AuthMetricsOptions {
  /** Which requests to measure, decided when the request arrives. Default: all. */
  include?: (req: IncomingMessage) => boolean;
  /** The MCP server the caller wanted to reach. */
  server?: (exchange: AuthExchange) => string | undefined;
  /** The authentication method ("jwt", "oauth", "noauth"...). */
  method?: (exchange: AuthExchange) => string | undefined;
  /** The user's identity, hashed (SHA-256, first 12 hex digits) before it is sent. */
  user?: (exchange: AuthExchange) => string | undefined;
  /** Whether the request counts as authenticated. */
  success?: (statusCode: number) => boolean;
}

/** A plain `node:http` request handler. */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Starts measuring one request: when its response finishes (or the client
 * goes away first), one auth event goes to `emitter` with the outcome, the
 * method and the duration. Costs the request a clock read and two listeners.
 */
export function trackAuthRequest(
  emitter: MetricsEmitter,
  req: IncomingMessage,
  res: ServerResponse,
  options: AuthMetricsOptions = {},
): void {
  if (options.include && !options.include(req)) return;
  const started = performance.now();
  const done = () => {
    res.off("finish", done);
    res.off("close", done);
    emitAuthEvent(emitter, options, performance.now() - started, {
      requestHeaders: req.headers,
      url: req.url ?? "",
      // "close" before "finish": the client hung up before the answer.
      statusCode: res.writableFinished ? res.statusCode : 499,
      responseHeader: (name) => headerText(res.getHeader(name)),
    });
  };
  res.on("finish", done);
  res.on("close", done);
}

/** Wraps a `node:http` handler so that every request it serves emits an auth event. */
export function withAuthMetrics(
  emitter: MetricsEmitter,
  handler: NodeHandler,
  options: AuthMetricsOptions = {},
): NodeHandler {
  return (req, res) => {
    trackAuthRequest(emitter, req, res, options);
    handler(req, res);
  };
}

/** Express-style middleware: `app.use(expressAuthMetrics(client))`. */
export function expressAuthMetrics(
  emitter: MetricsEmitter,
  options: AuthMetricsOptions = {},
): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  return (req, res, next) => {
    trackAuthRequest(emitter, req, res, options);
    next();
  };
}

/** The parts of a Fastify request the hook reads. */
export interface FastifyRequestLike {
  readonly raw: IncomingMessage;
}

/** The parts of a Fastify reply the hook reads. */
export interface FastifyReplyLike {
  readonly statusCode: number;
  /** Milliseconds since Fastify received the request. */
  readonly elapsedTime: number;
  getHeader(name: string): unknown;
}

/**
 * A Fastify `onResponse` hook: `app.addHook("onResponse", fastifyAuthMetrics(client))`.
 * Fastify keeps its reply headers off the raw response, so this reads them
 * from the reply, and takes the duration Fastify measured.
 */
export function fastifyAuthMetrics(
  emitter: MetricsEmitter,
  options: AuthMetricsOptions = {},
): (request: FastifyRequestLike, reply: FastifyReplyLike, done: () => void) => void {
  return (request, reply, done) => {
    if (!options.include || options.include(request.raw)) {
      emitAuthEvent(emitter, options, reply.elapsedTime, {
        requestHeaders: request.raw.headers,
        url: request.raw.url ?? "",
        statusCode: reply.statusCode,
        responseHeader: (name) => headerText(reply.getHeader(name)),
      });
    }
    done();
  };
}

/** The hash the gateway uses for user identities: SHA-256, first 12 hex digits. */
export function hashUser(user: string): string {
  return createHash("sha256").update(user).digest("hex").slice(0, 12);
}

function emitAuthEvent(
  emitter: MetricsEmitter,
  options: AuthMetricsOptions,
  durationMs: number,
  exchange: AuthExchange,
): void {
  const success = (options.success ?? defaultSuccess)(exchange.statusCode);
  const method = (options.method ?? defaultMethod)(exchange);
  const server = (options.server ?? defaultServer)(exchange);
  const user = (options.user ?? defaultUser)(exchange);
  emitter.auth({
    success,
    durationMs,
    method,
    server,
    userHash: user ? hashUser(user) : undefined,
    errorCode: success ? undefined : String(exchange.statusCode),
  });
}

function defaultSuccess(status: number): boolean {
  return status < 400;
}

function defaultMethod(exchange: AuthExchange): string {
  const declared = exchange.responseHeader("x-auth-method");
  if (declared) return declared;
  const authorization = exchange.requestHeaders.authorization;
  if (authorization === undefined) return "noauth";
  const [scheme = "", token = ""] = authorization.split(" ", 2);
  if (scheme.toLowerCase() !== "bearer") return scheme.toLowerCase();
  // A JWT is three base64url segments; any other bearer token is OAuth-issued.
  return token.split(".").length === 3 ? "jwt" : "oauth";
}

function defaultServer(exchange: AuthExchange): string | undefined {
  const original = exchange.requestHeaders["x-original-url"];
  const path = pathOf(typeof original === "string" ? original : exchange.url);
  return path.split("/").find((segment) => segment !== "");
}

function defaultUser(exchange: AuthExchange): string | undefined {
  return exchange.responseHeader("x-username");
}

function headerText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return undefined;
}

function pathOf(url: string): string {
  try {
    return new URL(url, "http://localhost").pathname;
  } catch {
    return "";
  }
}
