import * as http2 from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { endStreamFlag, endStreamToJson, errorToJson } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { httpStatusOf } from "../errors.js";
import { type AnyRequest, type AnyResponse, sendJson, sendLegacyError } from "./respond.js";

/** The ingress a request came in on, from its content type and path. */
export type Ingress = "grpc" | "grpc-web" | "connect" | "json";

/** Path prefix of every RPC this service serves. */
const RPC_PATH_PREFIX = "/mcp.metrics.v1.";

/** The RPC protocol of a request, from its content type. */
export function rpcIngress(contentType: string | null): Exclude<Ingress, "json"> {
  const type = contentType?.toLowerCase() ?? "";
  if (type.startsWith("application/grpc-web")) return "grpc-web";
  if (type.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/** The shape of an RPC's path, `/package.Service/Method`, which no JSON route has. */
const RPC_PATH = /^\/[^/?]+\.[^/?]+\/[^/?]+(?:\?|$)/;

/**
 * The ingress of any request on the port, as the instruments label it. A
 * request for another service's RPC (e.g. `grpc.health.v1`) is known by its
 * content type; a JSON route's path stays JSON whatever the content type
 * claims, so that `POST /metrics` keeps the legacy answers (401 and 422 as
 * `{"detail"}`, never a gRPC status in an HTTP 200).
 */
export function ingressOf(req: AnyRequest): Ingress {
  const url = req.url ?? "";
  const contentType = String(req.headers["content-type"] ?? "").toLowerCase();
  const rpc =
    url.startsWith(RPC_PATH_PREFIX) ||
    ((contentType.startsWith("application/grpc") ||
      contentType.startsWith("application/connect+")) &&
      RPC_PATH.test(url));
  return rpc ? rpcIngress(contentType) : "json";
}

/** The error's metadata (e.g. `retry-after`) as response headers. */
function metadataHeaders(error: ConnectError): Record<string, string> {
  return Object.fromEntries(error.metadata.entries());
}

/**
 * Answers a request with `error` without reading its body, in the protocol it
 * was sent in, so that every client sees the real code, message, details and
 * `retry-after`: a gRPC or gRPC-Web trailers-only response, a Connect
 * end-of-stream message, a Connect unary error, or the legacy `{"detail"}`.
 * Returns the ingress, for the instruments.
 */
export function answerUnread(req: AnyRequest, res: AnyResponse, error: ConnectError): Ingress {
  const ingress = ingressOf(req);
  // A stream the client already reset has no one to answer (and would throw).
  if (res instanceof http2.Http2ServerResponse && (res.stream.destroyed || res.stream.closed)) {
    return ingress;
  }
  const contentType = String(req.headers["content-type"] ?? "");
  switch (ingress) {
    case "grpc":
    case "grpc-web": {
      // setTrailerStatus copies the error's metadata (retry-after) too.
      const headers = setTrailerStatus(new Headers(), error);
      headers.set("content-type", contentType);
      const fields = Object.fromEntries(headers.entries());
      // Trailers-only: one HEADERS frame that ends the stream (gRPC over HTTP/2).
      if (res instanceof http2.Http2ServerResponse && !res.stream.headersSent) {
        res.stream.respond({ ":status": 200, ...fields }, { endStream: true });
        // The body is not wanted: RST_STREAM(NO_ERROR) asks the client to stop
        // sending it (RFC 9113 §8.1).
        res.stream.close(http2.constants.NGHTTP2_NO_ERROR);
      } else {
        res.writeHead(200, fields);
        res.end();
      }
      break;
    }
    case "connect": {
      if (contentType.toLowerCase().startsWith("application/connect+")) {
        // A streaming call: HTTP 200 and a single end-of-stream message.
        const json = Buffer.from(JSON.stringify(endStreamToJson(error.metadata, error, undefined)));
        const envelope = Buffer.alloc(5 + json.length);
        envelope.writeUInt8(endStreamFlag, 0);
        envelope.writeUInt32BE(json.length, 1);
        json.copy(envelope, 5);
        res.writeHead(200, { "content-type": contentType, ...metadataHeaders(error) });
        res.end(envelope);
      } else {
        sendJson(
          res,
          httpStatusOf(error.code),
          errorToJson(error, undefined),
          metadataHeaders(error),
        );
      }
      break;
    }
    case "json":
      sendLegacyError(res, error);
      break;
  }
  return ingress;
}
