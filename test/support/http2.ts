import http2 from "node:http2";

/** One request over cleartext HTTP/2 with prior knowledge, as a gRPC client's connection makes it. */
export function h2Request(
  url: string,
  path: string,
  method = "GET",
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const req = session.request({ ":path": path, ":method": method });
    let status = 0;
    let body = "";
    req.on("response", (headers) => {
      status = Number(headers[":status"]);
    });
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
    });
    req.on("end", () => {
      session.close();
      resolve({ status, body });
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * Starts a unary gRPC `Ingest` call whose body never completes: its headers
 * and a message prefix announcing 50 bytes, then nothing. The server can
 * judge it by its headers only.
 */
export function unfinishedIngestCall(
  session: http2.ClientHttp2Session,
  key: string,
): http2.ClientHttp2Stream {
  const stream = session.request({
    ":method": "POST",
    ":path": "/mcp.metrics.v1.IngestService/Ingest",
    "content-type": "application/grpc",
    "x-api-key": key,
  });
  stream.on("error", () => {});
  stream.write(Buffer.from([0, 0, 0, 0, 50]));
  return stream;
}
