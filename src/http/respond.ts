import type { connectNodeAdapter } from "@connectrpc/connect-node";

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
