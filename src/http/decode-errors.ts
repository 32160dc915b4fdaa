import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  createAsyncIterable,
  encodeEnvelope,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  endStreamFlag,
  endStreamFromJson,
  endStreamToJson,
  errorFromJsonBytes,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import {
  findTrailerError,
  headerGrpcStatus,
  headerStatusDetailsBin,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { errors } from "../errors.js";
import { connectDecodeFailure } from "../library-behaviour.js";
import {
  type ArrivalLimits,
  ArrivalWatch,
  type Lateness,
  latenessText,
  RATE_GRACE_MILLIS,
} from "./arrival.js";
import { type Ingress, rpcIngress } from "./unread-answer.js";

/** The gRPC status INTERNAL, as `grpc-status` carries it. */
const GRPC_INTERNAL = String(Code.Internal);

/** The HTTP status of a Connect unary INTERNAL error. */
const CONNECT_INTERNAL_STATUS = codeToHttpStatus(Code.Internal);

/** Stands in for an error body connect-es wrote that cannot be read back (never expected). */
const UNREADABLE = new ConnectError("unreadable error body", Code.Unknown);

/** Whether a request body is a stream of bytes (as connect-node's always is). */
function isAsyncIterable(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof (body as AsyncIterable<Uint8Array> | null)?.[Symbol.asyncIterator] === "function";
}

/** Turns an error connect-es sent back to the client into the one it should have sent. */
type Remap = (error: ConnectError) => ConnectError | undefined;

/**
 * The INVALID_ARGUMENT a request message that cannot be decoded deserves,
 * naming the message type and the problem, or undefined for any other error.
 * Details the handler attached (a stream's totals so far) are kept.
 */
export function decodeErrorOf(error: ConnectError, typeName: string): ConnectError | undefined {
  if (error.code !== Code.Internal) return undefined;
  const failure = connectDecodeFailure(error.rawMessage);
  if (failure === undefined) return undefined;
  let message: string;
  if (failure.kind === "binary") {
    // protobuf-es already names the (nested) message for some problems, e.g. the recursion limit.
    message = failure.problem.startsWith("cannot decode ")
      ? failure.problem
      : `cannot decode ${typeName} from binary: ${failure.problem}`;
  } else {
    message = `cannot decode ${typeName}: a message is flagged as compressed, but the request names no compression`;
  }
  const mapped = errors.malformedMessage(message);
  mapped.details.push(...error.details);
  return mapped;
}

/** Rewrites a gRPC status in `trailer` (gRPC, gRPC-Web) if it is a decode failure; true if it did. */
function remapTrailer(trailer: Headers, remap: Remap): boolean {
  if (trailer.get(headerGrpcStatus) !== GRPC_INTERNAL) return false;
  const error = findTrailerError(trailer);
  const mapped = error && remap(error);
  if (!mapped) return false;
  // setTrailerStatus sets the details only when there are any: drop the old ones first.
  trailer.delete(headerStatusDetailsBin);
  setTrailerStatus(trailer, mapped);
  return true;
}

/** The payload of `chunk` if it is exactly one envelope with `flags`, else undefined. */
function envelopeData(chunk: Uint8Array, flags: number): Uint8Array | undefined {
  if (chunk.byteLength < 5 || chunk[0] !== flags) return undefined;
  const length = new DataView(chunk.buffer, chunk.byteOffset, 5).getUint32(1);
  return length === chunk.byteLength - 5 ? chunk.subarray(5) : undefined;
}

/**
 * A body whose chunks pass through `map`; `throw` and `return` reach the
 * original, so that write errors still abort the handler. connect-es writes
 * each envelope of a streaming response as one chunk (transformJoinEnvelopes).
 */
function mapChunks(
  body: AsyncIterable<Uint8Array>,
  map: (chunk: Uint8Array) => Uint8Array,
): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      const it = body[Symbol.asyncIterator]();
      return {
        async next() {
          const result = await it.next();
          return result.done ? result : { done: false, value: map(result.value) };
        },
        throw: (error?: unknown) => it.throw?.(error) ?? Promise.reject(error),
        return: (value?: unknown) =>
          it.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }),
      };
    },
  };
}

async function allBytes(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** gRPC: the status travels in the trailers, read once the body has been written. */
function remapGrpc(
  res: UniversalServerResponse,
  remap: Remap,
  finalOnReturn: boolean,
): UniversalServerResponse {
  const trailer = res.trailer;
  if (trailer === undefined) return res;
  // A unary or client-streaming handler resolves only once its outcome is known
  // (connect-es waits for the first response chunk), so its trailers are final now.
  if (finalOnReturn || res.body === undefined) {
    remapTrailer(trailer, remap);
    return res;
  }
  const body = res.body;
  return {
    ...res,
    body: (async function* () {
      yield* body;
      remapTrailer(trailer, remap);
    })(),
  };
}

/**
 * gRPC-Web: the status travels in the last envelope of the body, flagged as
 * trailers. A compressed trailer envelope (over compressMinBytes, 1 KiB) is
 * left alone: a decode error's trailers are a fraction of that.
 */
function remapGrpcWeb(res: UniversalServerResponse, remap: Remap): UniversalServerResponse {
  if (res.body === undefined) return res;
  return {
    ...res,
    body: mapChunks(res.body, (chunk) => {
      const data = envelopeData(chunk, trailerFlag);
      if (data === undefined) return chunk;
      const trailer = trailerParse(data);
      return remapTrailer(trailer, remap)
        ? encodeEnvelope(trailerFlag, trailerSerialize(trailer))
        : chunk;
    }),
  };
}

/** Connect streaming: the error travels in the end-of-stream envelope. */
function remapConnectStream(res: UniversalServerResponse, remap: Remap): UniversalServerResponse {
  if (res.body === undefined) return res;
  return {
    ...res,
    body: mapChunks(res.body, (chunk) => {
      const data = envelopeData(chunk, endStreamFlag);
      if (data === undefined) return chunk;
      const end = endStreamFromJson(data);
      const mapped = end.error && remap(end.error);
      if (!mapped) return chunk;
      const json = JSON.stringify(endStreamToJson(end.metadata, mapped, undefined));
      return encodeEnvelope(endStreamFlag, Buffer.from(json));
    }),
  };
}

/** Connect unary: the error is the JSON body of an HTTP error status. */
async function remapConnectUnary(
  res: UniversalServerResponse,
  remap: Remap,
): Promise<UniversalServerResponse> {
  // A compressed error body is left alone: decode errors are far below compressMinBytes.
  if (
    res.status !== CONNECT_INTERNAL_STATUS ||
    res.body === undefined ||
    res.header?.has("content-encoding")
  ) {
    return res;
  }
  const bytes = await allBytes(res.body);
  const mapped = remap(errorFromJsonBytes(bytes, undefined, UNREADABLE));
  const body = mapped ? errorToJsonBytes(mapped, undefined) : bytes;
  const header = new Headers(res.header);
  header.set("content-length", String(body.byteLength));
  return {
    ...res,
    status: mapped ? codeToHttpStatus(mapped.code) : res.status,
    header,
    body: createAsyncIterable([body]),
  };
}

/** The only flag a request's message envelope may set: compressed (gRPC, gRPC-Web, Connect streams). */
const COMPRESSED_FLAG = 0x01;

/**
 * The longest one request message may take to arrive by default, from its
 * first byte to its last (a unary call's, from the request's start): a client
 * that drips a message a byte at a time (each byte resetting the stream's idle
 * timer) is cut off after it, instead of holding its slot for as long as it likes.
 */
export const MESSAGE_DEADLINE_MILLIS = 30_000;

/**
 * The least data rate a request message must keep after {@link RATE_GRACE_MILLIS},
 * by default, in bytes per second: Kestrel's MinRequestBodyDataRate. A client
 * on any real link sends thousands of times faster; one dripping bytes to hold
 * a slot is cut off after 5 s instead of the deadline.
 */
export const MIN_DATA_RATE_BYTES_PER_SECOND = 240;

const DEFAULT_ARRIVAL_LIMITS: ArrivalLimits = {
  deadlineMillis: MESSAGE_DEADLINE_MILLIS,
  minBytesPerSecond: MIN_DATA_RATE_BYTES_PER_SECOND,
};

/** How a request body comes: in envelopes or not, one message (unary) or a stream of them. */
interface BodyShape {
  readonly enveloped: boolean;
  readonly unary: boolean;
}

/**
 * A request body passed through as it comes, refusing:
 * - with INVALID_ARGUMENT an envelope whose flags set any bit but
 *   "compressed" (connect-es reads only the bits it knows and would store a
 *   message flagged 0x02 or 0xFE, and answer gRPC-Web's trailer flag, 0x80, a
 *   server's alone, with UNIMPLEMENTED);
 * - with RESOURCE_EXHAUSTED a message that arrives too slowly
 *   ({@link ArrivalLimits}): a stream's messages are timed each from its
 *   first byte (a stream may wait between messages, and pays tokens for it),
 *   a unary call's whole body from the request's start.
 * Envelope headers are read across chunk boundaries; message bytes are
 * skipped, never copied.
 */
async function* guardedBody(
  body: AsyncIterable<Uint8Array>,
  typeName: string,
  onRefused: (error: ConnectError) => ConnectError,
  limits: ArrivalLimits,
  shape: BodyShape,
): AsyncIterable<Uint8Array> {
  let late: Lateness | undefined;
  let wake: (() => void) | undefined;
  const watch = new ArrivalWatch(limits, (lateness) => {
    late = lateness;
    wake?.();
  });
  const tooSlow = (lateness: Lateness): ConnectError =>
    onRefused(errors.messageTooSlow(latenessText(`a ${typeName} message`, lateness)));
  /** Header bytes of the current envelope read so far (0-5), its length, message bytes still to skip. */
  let header = 0;
  let length = 0;
  let skip = 0;
  /** Envelopes begun so far: tells a chunk that continues an envelope from one that begins another. */
  let begun = 0;
  if (shape.unary) watch.begin();
  const iterator = body[Symbol.asyncIterator]();
  try {
    for (;;) {
      if (late !== undefined) throw tooSlow(late);
      let result: IteratorResult<Uint8Array> | undefined;
      if (watch.watching) {
        const next = iterator.next();
        result = await Promise.race([
          next,
          new Promise<undefined>((resolve) => {
            wake = () => resolve(undefined);
          }),
        ]);
        wake = undefined;
        // The message is late: the read still pending must not reject unheard.
        if (result === undefined) next.catch(() => {});
      } else {
        result = await iterator.next();
      }
      if (late !== undefined) throw tooSlow(late);
      if (result === undefined || result.done) return;
      const chunk = result.value;
      watch.add(chunk.length);
      if (!shape.enveloped) {
        yield chunk;
        continue;
      }
      const before = begun;
      const underWay = header !== 0 || skip !== 0;
      /** Where in this chunk the last envelope begun in it starts. */
      let lastStart = 0;
      let i = 0;
      while (i < chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - i);
          skip -= n;
          i += n;
          continue;
        }
        const byte = chunk[i++] as number;
        if (header === 0) {
          begun++;
          lastStart = i - 1;
          if ((byte & ~COMPRESSED_FLAG) !== 0) {
            throw onRefused(
              errors.malformedMessage(
                `cannot decode ${typeName}: an envelope sets reserved flag bits (0x${byte.toString(16).padStart(2, "0")}); a request may set only 0x01, compressed`,
              ),
            );
          }
          length = 0;
        } else {
          length = length * 256 + byte;
        }
        if (++header === 5) {
          header = 0;
          skip = length;
        }
      }
      if (shape.unary) {
        yield chunk;
        continue;
      }
      const pending = header !== 0 || skip !== 0;
      if (pending && underWay && begun === before) {
        // The envelope under way goes on: still timed from its first byte.
        yield chunk;
        continue;
      }
      // Every envelope begun before ends in this chunk.
      watch.end();
      yield chunk;
      // One begun in this chunk is left under way: timed from when the handler,
      // done with the messages before it (a commit may take seconds), reads
      // on, with the bytes of it already here.
      if (pending) {
        watch.begin();
        watch.add(chunk.length - lastStart);
      }
    }
  } finally {
    watch.end();
  }
}

/** Whether a request of this content type comes in envelopes (everything but Connect unary). */
function enveloped(ingress: Ingress, contentType: string | null): boolean {
  return (
    ingress !== "connect" ||
    (contentType?.toLowerCase().startsWith("application/connect+") ?? false)
  );
}

/**
 * Wraps one RPC's handler so that a request message that cannot be decoded,
 * or whose envelope sets reserved flag bits, is answered INVALID_ARGUMENT,
 * naming the problem, in every protocol.
 */
export function withDecodeErrors(
  handler: UniversalHandler,
  onMapped?: (ingress: Ingress, error: ConnectError) => void,
  limits: ArrivalLimits = DEFAULT_ARRIVAL_LIMITS,
): UniversalHandler {
  const typeName = handler.method.input.typeName;
  const kind = handler.method.methodKind;
  const finalOnReturn = kind === "unary" || kind === "client_streaming";
  const wrapped = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const contentType = req.header.get("content-type");
    const ingress = rpcIngress(contentType);
    const body = req.body;
    const res = await handler(
      isAsyncIterable(body)
        ? {
            ...req,
            // A unary request is read before any interceptor runs: counted here, like a decode error.
            body: guardedBody(
              body,
              typeName,
              (error) => {
                if (kind === "unary") onMapped?.(ingress, error);
                return error;
              },
              limits,
              { enveloped: enveloped(ingress, contentType), unary: kind === "unary" },
            ),
          }
        : req,
    );
    const remap: Remap = (error) => {
      const mapped = decodeErrorOf(error, typeName);
      if (mapped) onMapped?.(ingress, mapped);
      return mapped;
    };
    switch (ingress) {
      case "grpc":
        return remapGrpc(res, remap, finalOnReturn);
      case "grpc-web":
        return remapGrpcWeb(res, remap);
      case "connect":
        return contentType?.toLowerCase().startsWith("application/connect+")
          ? remapConnectStream(res, remap)
          : await remapConnectUnary(res, remap);
    }
  };
  return Object.assign(wrapped, {
    requestPath: handler.requestPath,
    service: handler.service,
    method: handler.method,
    supportedContentType: handler.supportedContentType,
    protocolNames: handler.protocolNames,
    allowedMethods: handler.allowedMethods,
  });
}

/**
 * Makes every RPC of `router` answer undecodable request messages with
 * INVALID_ARGUMENT instead of connect-es's INTERNAL (which tells clients the
 * server is at fault, and retrying clients to try again). Call it last in the
 * adapter's `routes` callback: the adapter reads `router.handlers` after it.
 *
 * connect-es decodes a unary request before any interceptor runs, so no
 * interceptor can map it (nor count it); only the protocol's answer can be
 * rewritten, and only when it is one of these errors, so the happy path costs
 * a status check. `onMapped` is told of each answer rewritten, by ingress, so
 * that such calls are counted like the others.
 */
export function mapDecodeErrors(
  router: ConnectRouter,
  onMapped?: (ingress: Ingress, error: ConnectError) => void,
  limits: ArrivalLimits = DEFAULT_ARRIVAL_LIMITS,
): void {
  const handlers = router.handlers;
  for (let i = 0; i < handlers.length; i++) {
    handlers[i] = withDecodeErrors(handlers[i] as UniversalHandler, onMapped, limits);
  }
}
