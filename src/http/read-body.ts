import { isUtf8 } from "node:buffer";
import { createGunzip, createInflate } from "node:zlib";
import { type ArrivalLimits, ArrivalWatch, latenessText } from "./arrival.js";
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
 * Reads a request body of at most `maxBytes`, before any parsing (docs/dependencies.md
 * trap 4: the adapter's fallback has no limit of its own). `gzip` and
 * `deflate` bodies are decompressed, and the limit applies to both the bytes
 * received and the bytes they decompress to. Rejects with 413 beyond the
 * limit, 415 for another encoding, 400 for a corrupt or aborted body, and 408
 * for a body that arrives too slowly for `limits` (timed from now: whole
 * within the deadline, and at the minimum rate after 5 s). On failure the
 * rest of the body is discarded unread.
 */
export function readBody(
  req: AnyRequest,
  maxBytes: number,
  limits?: ArrivalLimits,
): Promise<Buffer> {
  const tooLarge = () =>
    new BodyError(413, `Request body too large: the limit is ${maxBytes} bytes`);
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) return Promise.reject(tooLarge());

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
    return Promise.reject(new BodyError(415, `Unsupported Content-Encoding: ${encoding}`));
  }

  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let decoded = 0;
    let settled = false;

    const watch =
      limits &&
      new ArrivalWatch(limits, (lateness) =>
        fail(new BodyError(408, `${latenessText("The request body", lateness)}; send it whole`)),
      );
    watch?.begin();
    const stop = (): void => {
      watch?.end();
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onAbort);
      req.off("close", onClose);
      decoder?.removeAllListeners();
      decoder?.on("error", () => {}); // a late zlib error must not go unhandled
      decoder?.destroy();
      req.resume(); // discard whatever is still coming
    };
    const fail = (error: BodyError): void => {
      if (settled) return;
      settled = true;
      stop();
      reject(error);
    };
    const succeed = (): void => {
      if (settled) return;
      settled = true;
      stop();
      resolve(Buffer.concat(chunks));
    };

    function onData(chunk: Buffer): void {
      received += chunk.length;
      watch?.add(chunk.length);
      if (received > maxBytes) {
        fail(tooLarge());
      } else if (decoder === undefined) {
        chunks.push(chunk);
      } else if (!decoder.write(chunk)) {
        // Back-pressure from the decompressor; "drain" cannot be missed: stop()
        // removes this listener and resumes the request on any failure.
        req.pause();
        decoder.once("drain", () => req.resume());
      }
    }
    function onEnd(): void {
      if (decoder === undefined) succeed();
      else decoder.end();
    }
    function onAbort(): void {
      fail(new BodyError(400, "The request body could not be read"));
    }
    function onClose(): void {
      if (!req.complete) onAbort();
    }

    decoder?.on("data", (chunk: Buffer) => {
      decoded += chunk.length;
      if (decoded > maxBytes) fail(tooLarge());
      else chunks.push(chunk);
    });
    decoder?.once("end", succeed);
    decoder?.once("error", () => fail(new BodyError(400, `Invalid ${encoding} body`)));
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onAbort);
    req.once("close", onClose);
  });
}

/**
 * Reads a JSON body as text, as Python's `json.loads(bytes)` reads it: UTF-8,
 * with an optional byte order mark. Bytes that are not UTF-8 are refused with
 * 400, as FastAPI refused them ("There was an error parsing the body"), instead
 * of being replaced by U+FFFD and stored as what the client never sent (binary
 * protobuf refuses them too). Fails like {@link readBody} otherwise.
 */
export async function readTextBody(
  req: AnyRequest,
  maxBytes: number,
  limits?: ArrivalLimits,
): Promise<string> {
  const bytes = await readBody(req, maxBytes, limits);
  if (!isUtf8(bytes)) {
    throw new BodyError(400, "There was an error parsing the body: it is not valid UTF-8");
  }
  const text = bytes.toString("utf8");
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
