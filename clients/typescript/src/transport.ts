import * as http from "node:http";
import * as https from "node:https";
import type { Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";

/**
 * How the client talks to the service: `"grpc"` (gRPC over HTTP/2, cleartext
 * for `http://` URLs) or `"connect"` (the Connect protocol, binary, over
 * HTTP/1.1, for networks where HTTP/2 without TLS cannot pass).
 */
export type Protocol = "grpc" | "connect";

/** A transport and the means to release its connections. */
export interface OwnedTransport {
  readonly transport: Transport;
  /** Closes every connection the transport holds. */
  close(): void;
}

/** Builds a transport that owns its connections. */
export function createOwnedTransport(baseUrl: string, protocol: Protocol): OwnedTransport {
  if (protocol === "grpc") {
    // One HTTP/2 connection, reopened after a restart or GOAWAY; idle pings
    // notice a dead peer, and the session is unref'd while idle so the client
    // never keeps a process alive.
    const sessionManager = new Http2SessionManager(baseUrl, {
      pingIntervalMs: 30_000,
      pingIdleConnection: false,
    });
    return {
      transport: createGrpcTransport({ baseUrl, sessionManager }),
      close: () => sessionManager.abort(),
    };
  }
  const agent = baseUrl.startsWith("https:")
    ? new https.Agent({ keepAlive: true })
    : new http.Agent({ keepAlive: true });
  return {
    transport: createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      useBinaryFormat: true,
      nodeOptions: { agent },
    }),
    close: () => agent.destroy(),
  };
}
