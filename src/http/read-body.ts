import { createGunzip, createInflate } from "node:zlib";
import type { AnyRequest } from "./respond.js";

/** Why a body could not be read, with the HTTP status to answer. */
export class BodyError extends Error {
  override name = "BodyError";
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * Reads a request body of at most `maxBytes`, before any parsing (STACK.md
 * trap 4: the adapter's fallback has no limit of its own). `gzip` and
 * `deflate` bodies are decompressed, and the limit applies to both the bytes
 * received and the bytes they decompress to. Rejects with 413 beyond the
 * limit, 415 for another encoding, 400 for a corrupt compressed body.
 */
export async function readBody(req: AnyRequest, maxBytes: number): Promise<Buffer> {
  const tooLarge = () =>
    new BodyError(413, `Request body too large: the limit is ${maxBytes} bytes`);
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();

  const encoding = String(req.headers["content-encoding"] ?? "identity")
    .trim()
    .toLowerCase();
  const decoder =
    encoding === "gzip" || encoding === "x-gzip"
      ? createGunzip()
      : encoding === "deflate"
        ? createInflate()
        : undefined;
  if (decoder === undefined && encoding !== "identity" && encoding !== "") {
    throw new BodyError(415, `Unsupported Content-Encoding: ${encoding}`);
  }

  const chunks: Buffer[] = [];
  let decoded = 0;
  let received = 0;
  const collect = async (source: AsyncIterable<Buffer>, count: (n: number) => void) => {
    for await (const chunk of source) {
      count(chunk.length);
      chunks.push(chunk);
    }
  };
  if (decoder === undefined) {
    await collect(req as AsyncIterable<Buffer>, (n) => {
      received += n;
      if (received > maxBytes) throw tooLarge();
    });
    return Buffer.concat(chunks);
  }
  const feeding = (async () => {
    try {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        received += chunk.length;
        if (received > maxBytes) throw tooLarge();
        if (!decoder.write(chunk)) await new Promise((r) => decoder.once("drain", r));
      }
      decoder.end();
    } catch (error) {
      decoder.destroy(error as Error);
    }
  })();
  try {
    await collect(decoder, (n) => {
      decoded += n;
      if (decoded > maxBytes) throw tooLarge();
    });
  } catch (error) {
    decoder.destroy();
    if (error instanceof BodyError) throw error;
    throw new BodyError(400, `Invalid ${encoding} body`);
  } finally {
    await feeding;
  }
  return Buffer.concat(chunks);
}
