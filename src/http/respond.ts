import type { ConnectError } from "@connectrpc/connect";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { httpStatusOf } from "../errors.js";

/** The adapter's fallback handler type (connect-node does not export its request types). */
type NodeHandlerFn = NonNullable<Parameters<typeof connectNodeAdapter>[0]["fallback"]>;

/** A request object of either HTTP version, as the Connect adapter passes it. */
export type AnyRequest = Parameters<NodeHandlerFn>[0];

/** A response object of either HTTP version, as the Connect adapter passes it. */
export type AnyResponse = Parameters<NodeHandlerFn>[1];

/** Sends a JSON body with a status and optional headers. */
export function sendJson(
  res: AnyResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

/** A request's path, without its query. */
export function pathOf(req: AnyRequest): string {
  return (req.url ?? "/").split("?")[0] ?? "/";
}

/** The client's network address (what failed authentications are throttled by). */
export function addressOf(req: AnyRequest): string {
  return req.socket?.remoteAddress ?? "unknown";
}

/**
 * The legacy `{"detail": ...}` answer for a catalog error, with its retry
 * headers: `Retry-After`, and the rate-limit fields when it carries them.
 */
export function sendLegacyError(res: AnyResponse, error: ConnectError): void {
  const headers: Record<string, string> = {};
  const retryAfter = error.metadata.get("retry-after");
  if (retryAfter !== null) headers["Retry-After"] = retryAfter;
  const limit = error.metadata.get("x-ratelimit-limit");
  if (limit !== null) {
    headers["X-RateLimit-Limit"] = limit;
    headers["X-RateLimit-Remaining"] = error.metadata.get("x-ratelimit-remaining") ?? "0";
    headers.RateLimit = error.metadata.get("ratelimit") ?? "";
    headers["RateLimit-Policy"] = error.metadata.get("ratelimit-policy") ?? "";
  }
  sendJson(res, httpStatusOf(error.code), { detail: error.rawMessage }, headers);
}
