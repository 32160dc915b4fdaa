import {
  type Client,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { IngestService } from "../../gen/mcp/metrics/v1/ingest_pb.js";

/** One way of reaching the server: an RPC protocol over an HTTP version. */
export interface Protocol {
  readonly name: string;
  transport(baseUrl: string, interceptors: Interceptor[]): Transport;
}

/** Every protocol and HTTP version the one port must serve. */
export const PROTOCOLS: readonly Protocol[] = [
  {
    name: "gRPC over h2c",
    transport: (baseUrl, interceptors) => createGrpcTransport({ baseUrl, interceptors }),
  },
  {
    name: "Connect binary over HTTP/1.1",
    transport: (baseUrl, interceptors) =>
      createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors }),
  },
  {
    name: "Connect JSON over HTTP/1.1",
    transport: (baseUrl, interceptors) =>
      createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, interceptors }),
  },
  {
    name: "Connect binary over HTTP/2",
    transport: (baseUrl, interceptors) =>
      createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, interceptors }),
  },
  {
    name: "gRPC-Web over HTTP/1.1",
    transport: (baseUrl, interceptors) =>
      createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors }),
  },
  {
    name: "gRPC-Web over HTTP/2",
    transport: (baseUrl, interceptors) =>
      createGrpcWebTransport({ baseUrl, httpVersion: "2", interceptors }),
  },
];

/** An interceptor that sends an API key, or none when `key` is undefined. */
export function apiKey(key: string | undefined): Interceptor {
  return (next) => async (req) => {
    if (key !== undefined) req.header.set("x-api-key", key);
    return await next(req);
  };
}

/** An IngestService client over a protocol, authenticated with `key`. */
export function ingestClient(
  protocol: Protocol,
  baseUrl: string,
  key: string | undefined,
): Client<typeof IngestService> {
  return createClient(IngestService, protocol.transport(baseUrl, [apiKey(key)]));
}

function protocolNamed(name: string): Protocol {
  const found = PROTOCOLS.find((p) => p.name === name);
  if (found === undefined) throw new Error(`no protocol ${name}`);
  return found;
}

/** gRPC over cleartext HTTP/2, the default of the generated clients. */
export const GRPC = protocolNamed("gRPC over h2c");

/** Connect with binary messages over HTTP/1.1, for where h2c is not possible. */
export const CONNECT_HTTP1 = protocolNamed("Connect binary over HTTP/1.1");

/** The ConnectError a call fails with; fails the test if the call succeeds. */
export async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}
