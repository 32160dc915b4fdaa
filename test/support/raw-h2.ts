import * as net from "node:net";

/*
 * Raw HTTP/2 frames (RFC 9113 §4.1), for what node:http2's client refuses to
 * send (a WINDOW_UPDATE that overflows a flow-control window) or cannot send
 * safely: a rapid-reset flood through it now and then aborts the client's own
 * process on an nghttp2 assertion (`session_ob_data_remove: stream->queued
 * == 1`), or leaves a stream it reset itself without its "close" event.
 */

/** Frame types used here. */
export const FRAME = {
  headers: 0x1,
  rstStream: 0x3,
  settings: 0x4,
  goaway: 0x7,
  windowUpdate: 0x8,
} as const;

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const END_HEADERS = 0x4;
const ACK = 0x1;

/** One frame: a 9-byte header (length, type, flags, stream id) and its payload. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** A WINDOW_UPDATE frame adding `increment` to a stream's window (0: the connection's). */
export function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment >>> 0);
  return frame(FRAME.windowUpdate, 0, streamId, payload);
}

/**
 * A HEADERS frame opening `streamId` with `fields`, HPACK-encoded as literals
 * without indexing and without Huffman coding (RFC 7541 §6.2.2); the stream
 * stays open (no END_STREAM), as a request whose body is still to come.
 */
export function headers(streamId: number, fields: Readonly<Record<string, string>>): Buffer {
  const block = Buffer.concat(
    Object.entries(fields).map(([name, value]) => {
      if (name.length > 126 || value.length > 126) throw new Error("literal too long");
      return Buffer.concat([
        Buffer.from([0x00, name.length]),
        Buffer.from(name),
        Buffer.from([value.length]),
        Buffer.from(value),
      ]);
    }),
  );
  return frame(FRAME.headers, END_HEADERS, streamId, block);
}

/** An RST_STREAM frame ending `streamId` with the error `code` (CANCEL, 0x8, by default). */
export function rstStream(streamId: number, code = 0x8): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FRAME.rstStream, 0, streamId, payload);
}

/** A frame the server sent. */
export interface ReceivedFrame {
  readonly type: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** The error code of a GOAWAY or RST_STREAM frame. */
export function errorCodeOf(received: ReceivedFrame): number {
  return received.type === FRAME.goaway
    ? received.payload.readUInt32BE(4)
    : received.payload.readUInt32BE(0);
}

/** What the server sent on a raw connection, and whether it closed it. */
export interface RawExchange {
  readonly frames: readonly ReceivedFrame[];
  readonly closed: boolean;
}

function parseFrames(bytes: Buffer): ReceivedFrame[] {
  const frames: ReceivedFrame[] = [];
  let at = 0;
  while (at + 9 <= bytes.length) {
    const length = bytes.readUIntBE(at, 3);
    if (at + 9 + length > bytes.length) break;
    frames.push({
      type: bytes.readUInt8(at + 3),
      streamId: bytes.readUInt32BE(at + 5) & 0x7fffffff,
      payload: bytes.subarray(at + 9, at + 9 + length),
    });
    at += 9 + length;
  }
  return frames;
}

/**
 * Connects to 127.0.0.1:`port` as an HTTP/2 client (preface, SETTINGS, and
 * the ACK of the server's unless `acknowledgeSettings` is false: `then` is
 * then sent at once), sends `then`, and reports every frame the server sent
 * until it closed the connection, `withinMillis` passed or, when given,
 * `until` holds for the frames received so far.
 */
export async function rawExchange(
  port: number,
  then: Buffer,
  withinMillis = 2000,
  acknowledgeSettings = true,
  until?: (frames: readonly ReceivedFrame[]) => boolean,
): Promise<RawExchange> {
  const socket = net.connect(port, "127.0.0.1");
  let received = Buffer.alloc(0);
  let enough: (() => void) | undefined;
  socket.on("data", (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    if (until?.(parseFrames(received))) enough?.();
  });
  socket.on("error", () => {});
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), withinMillis);
    enough = () => {
      clearTimeout(timer);
      resolve(false);
    };
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.write(Buffer.concat([PREFACE, frame(FRAME.settings, 0, 0, Buffer.alloc(0))]));
  if (acknowledgeSettings) {
    // The server's SETTINGS, then our ACK of them, as a well-behaved client would.
    while (!parseFrames(received).some((f) => f.type === FRAME.settings)) {
      await new Promise((resolve) => socket.once("data", resolve));
    }
    socket.write(frame(FRAME.settings, ACK, 0, Buffer.alloc(0)));
  }
  socket.write(then);
  const wasClosed = await closed;
  socket.destroy();
  return { frames: parseFrames(received), closed: wasClosed };
}
