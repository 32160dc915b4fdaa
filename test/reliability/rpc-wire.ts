import { request } from "node:http";
import http2 from "node:http2";
import { create, fromBinary, fromJsonString, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import { HealthCheckResponseSchema } from "../../gen/grpc/health/v1/health_pb.js";
import {
  IngestRequestSchema,
  IngestResponseSchema,
  IngestStreamResponseSchema,
} from "../../gen/mcp/metrics/v1/ingest_pb.js";

/** The unary and the client-streaming RPC's paths. */
export const INGEST = "/mcp.metrics.v1.IngestService/Ingest";
export const INGEST_STREAM = "/mcp.metrics.v1.IngestService/IngestStream";
/** The standard health check, served without a key. */
export const HEALTH_CHECK = "/grpc.health.v1.Health/Check";

/** What the server answered to one raw call, in whichever protocol it answered. */
export type RawOutcome =
  | { readonly kind: "ok"; readonly accepted: number; readonly requestId: string }
  | { readonly kind: "error"; readonly error: ConnectError }
  /** An answer outside the RPC protocols, e.g. 415 for a content type none of them takes. */
  | { readonly kind: "http"; readonly status: number; readonly body: string };

/** An HTTP answer as read off the wire, of either HTTP version. */
interface RawAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly trailers: Headers;
  readonly data: Buffer;
}

/** One auth event for `service`, as the binary IngestRequest every RPC protocol carries. */
export function ingestBytes(service: string): Uint8Array {
  return toBinary(
    IngestRequestSchema,
    create(IngestRequestSchema, {
      service,
      events: [{ kind: { case: "authRequest", value: { success: true } } }],
    }),
  );
}

/** One gRPC-style length-prefixed message (gRPC, gRPC-Web, Connect streaming). */
export function envelope(data: Uint8Array, flags = 0, declaredLength = data.byteLength): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(declaredLength >>> 0, 1);
  return Buffer.concat([head, data]);
}

/** Splits a body into its envelopes. */
function splitEnvelopes(body: Buffer): { flags: number; data: Buffer }[] {
  const out: { flags: number; data: Buffer }[] = [];
  let at = 0;
  while (at + 5 <= body.length) {
    const length = body.readUInt32BE(at + 1);
    out.push({ flags: body[at] as number, data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

function okOf(path: string, data: Uint8Array, json: boolean): RawOutcome {
  if (path.startsWith("/grpc.health.v1.Health/")) {
    fromBinary(HealthCheckResponseSchema, data);
    return { kind: "ok", accepted: 0, requestId: "" };
  }
  const schema = path === INGEST ? IngestResponseSchema : IngestStreamResponseSchema;
  const message = json
    ? fromJsonString(schema, Buffer.from(data).toString("utf8"))
    : fromBinary(schema, data);
  return { kind: "ok", accepted: message.accepted, requestId: message.requestId };
}

const unreadable = (what: string, data: Buffer) =>
  new ConnectError(`unreadable ${what}: ${data.toString("hex").slice(0, 200)}`, Code.Unknown);

/**
 * Reads an answer in the protocol the server chose (its content type): gRPC
 * (status in trailers, or in headers when trailers-only), gRPC-Web (status in
 * a trailer envelope), Connect streaming (end-of-stream envelope), Connect
 * unary (HTTP status and JSON error), or plain HTTP.
 */
function outcomeOf(path: string, answer: RawAnswer): RawOutcome {
  const { status, headers, trailers, data } = answer;
  const type = headers.get("content-type") ?? "";
  const message = (frame: { data: Buffer } | undefined, json: boolean): RawOutcome => {
    if (frame === undefined) throw new Error(`OK without a message (${type})`);
    return okOf(path, frame.data, json);
  };
  if (status === 200 && type.startsWith("application/grpc-web")) {
    const frames = splitEnvelopes(data);
    const trailer = frames.find((f) => (f.flags & 0x80) !== 0);
    const error = findTrailerError(trailer ? trailerParse(trailer.data) : headers);
    return error ? { kind: "error", error } : message(frames[0], type.includes("json"));
  }
  if (status === 200 && type.startsWith("application/grpc")) {
    const fields = new Headers(headers);
    for (const [key, value] of trailers) fields.set(key, value);
    if (!fields.has("grpc-status")) throw new Error("gRPC answer without grpc-status");
    const error = findTrailerError(fields);
    return error
      ? { kind: "error", error }
      : message(splitEnvelopes(data)[0], type.includes("json"));
  }
  if (status === 200 && type.startsWith("application/connect+")) {
    const frames = splitEnvelopes(data);
    const end = frames.find((f) => (f.flags & 0b10) !== 0);
    const json = JSON.parse(end?.data.toString("utf8") ?? "{}") as { error?: unknown };
    if (json.error === undefined) return message(frames[0], type.includes("json"));
    const bytes = Buffer.from(JSON.stringify(json.error));
    return {
      kind: "error",
      error: errorFromJsonBytes(bytes, undefined, unreadable("end of stream", data)),
    };
  }
  if (status === 200) return message({ data }, type.startsWith("application/json"));
  if (type.startsWith("application/json")) {
    return {
      kind: "error",
      error: errorFromJsonBytes(data, undefined, unreadable("error body", data)),
    };
  }
  return { kind: "http", status, body: data.toString() };
}

function headersOf(fields: Record<string, string | string[] | number | undefined>): Headers {
  const out = new Headers();
  for (const [key, value] of Object.entries(fields)) {
    if (!key.startsWith(":") && value !== undefined) out.set(key, String(value));
  }
  return out;
}

/** A raw call over HTTP/1.1 (node:http, which unlike fetch reads HTTP/1.1 trailers). */
export function h1Call(
  baseUrl: string,
  path: string,
  body: Uint8Array,
  headers: Record<string, string | string[]>,
): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}`, { method: "POST", headers });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("error", reject);
      res.on("end", () => {
        try {
          resolve(
            outcomeOf(path, {
              status: res.statusCode ?? 0,
              headers: headersOf(res.headers),
              trailers: headersOf(res.trailers),
              data: Buffer.concat(chunks),
            }),
          );
        } catch (error) {
          reject(error);
        }
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** One cleartext HTTP/2 connection for raw calls, opened again if the server closed it. */
export function createH2(baseUrl: string) {
  let session: http2.ClientHttp2Session | undefined;
  const open = (): http2.ClientHttp2Session => {
    if (session === undefined || session.closed || session.destroyed) {
      session = http2.connect(baseUrl);
      session.on("error", () => {});
    }
    return session;
  };
  return {
    /** A raw call over HTTP/2 with the body as given (framed or not). */
    /** Headers with several values are sent as that many header fields. */
    call(
      path: string,
      body: Uint8Array,
      headers: Record<string, string | string[]>,
    ): Promise<RawOutcome> {
      return new Promise((resolve, reject) => {
        const stream = open().request({
          ":method": "POST",
          ":path": path,
          te: "trailers",
          ...headers,
        });
        let status = 0;
        let head = new Headers();
        let tail = new Headers();
        const chunks: Buffer[] = [];
        stream.on("response", (h) => {
          status = Number(h[":status"]);
          head = headersOf(h);
        });
        stream.on("trailers", (t) => {
          tail = headersOf(t);
        });
        stream.on("data", (d: Buffer) => chunks.push(d));
        stream.on("error", reject);
        stream.on("close", () => {
          try {
            resolve(
              outcomeOf(path, {
                status,
                headers: head,
                trailers: tail,
                data: Buffer.concat(chunks),
              }),
            );
          } catch (error) {
            reject(new Error(`${String(error)} (rst ${stream.rstCode})`));
          }
        });
        stream.end(body);
      });
    },
    close(): void {
      session?.close();
    },
  };
}
