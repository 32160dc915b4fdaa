import * as https from "node:https";
import * as net from "node:net";
import * as tls from "node:tls";
import { createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IngestService } from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { loadConfig } from "../../src/config.js";
import { authBatch } from "../support/events.js";
import { countIn, startTestService, type TestService, tempDir } from "../support/service.js";
import { selfSignedCertificate } from "../support/tls.js";

/** The protocol a TLS handshake with `protocols` offered settles on. */
function negotiated(port: number, ca: Buffer, protocols: string[]): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: "127.0.0.1", ca, ALPNProtocols: protocols }, () => {
      resolve(socket.alpnProtocol ?? false);
      socket.end();
    });
    socket.on("error", reject);
  });
}

describe("TLS on the one port (METRICS_TLS_CERT_FILE, METRICS_TLS_KEY_FILE)", () => {
  let svc: TestService;
  let ca: Buffer;
  let base: string;

  beforeAll(async () => {
    const cert = selfSignedCertificate(tempDir("mcp-metrics-tls-"));
    ca = cert.ca;
    svc = await startTestService({
      METRICS_TLS_CERT_FILE: cert.certFile,
      METRICS_TLS_KEY_FILE: cert.keyFile,
    });
    base = `https://127.0.0.1:${svc.port}`;
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should offer HTTP/2 and HTTP/1.1 through ALPN", async () => {
    expect(await negotiated(svc.port, ca, ["h2", "http/1.1"])).toBe("h2");
    expect(await negotiated(svc.port, ca, ["http/1.1"])).toBe("http/1.1");
  });

  const transports: [string, (baseUrl: string, ca: Buffer) => Transport][] = [
    ["gRPC over HTTP/2", (baseUrl, ca) => createGrpcTransport({ baseUrl, nodeOptions: { ca } })],
    [
      "Connect over HTTP/1.1",
      (baseUrl, ca) =>
        createConnectTransport({
          baseUrl,
          httpVersion: "1.1",
          useBinaryFormat: true,
          nodeOptions: { ca },
        }),
    ],
    [
      "Connect over HTTP/2",
      (baseUrl, ca) => createConnectTransport({ baseUrl, httpVersion: "2", nodeOptions: { ca } }),
    ],
    [
      "gRPC-Web over HTTP/1.1",
      (baseUrl, ca) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { ca } }),
    ],
  ];

  it.each(transports)("should store a batch sent with %s", async (name, transport) => {
    const service = `tls-${name.replace(/[^a-zA-Z0-9]/g, "-")}`;
    const client = createClient(IngestService, transport(base, ca));
    const key = await svc.keyFor(service);
    const res = await client.ingest(authBatch(2, service), { headers: { "x-api-key": key } });
    expect(res.accepted).toBe(2);
    expect(await countIn(svc.sql, "metrics", "service = ?", service)).toBe(2);
  });

  it("should serve the legacy JSON route over HTTPS", async () => {
    const key = await svc.keyFor("tls-json");
    const body = JSON.stringify({
      service: "tls-json",
      metrics: [{ type: "auth_request", value: 1, dimensions: { success: true } }],
    });
    const { status, json } = await new Promise<{ status: number; json: Record<string, unknown> }>(
      (resolve, reject) => {
        const req = https.request(
          `${base}/metrics`,
          {
            method: "POST",
            ca,
            headers: { "content-type": "application/json", "x-api-key": key },
          },
          (res) => {
            let text = "";
            res.on("data", (chunk: Buffer) => {
              text += chunk.toString();
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
          },
        );
        req.on("error", reject);
        req.end(body);
      },
    );
    expect(status).toBe(200);
    expect(json.accepted).toBe(1);
    expect(await countIn(svc.sql, "metrics", "service = 'tls-json'")).toBe(1);
  });

  it("should refuse a cleartext client without answering it, and keep serving TLS", async () => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = net.connect(svc.port, "127.0.0.1", () => {
        socket.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
      });
      let received = "";
      socket.on("data", (chunk: Buffer) => {
        received += chunk.toString("latin1");
      });
      socket.on("error", () => resolve(`error after ${received.length} bytes`));
      socket.on("close", () => resolve(received.includes("HTTP/1.1 200") ? "answered" : "closed"));
    });
    expect(outcome).not.toBe("answered");
    expect(await negotiated(svc.port, ca, ["h2"])).toBe("h2");
  });
});

describe("TLS settings", () => {
  it("should refuse a certificate without its key, naming both settings", () => {
    expect(() => loadConfig({ METRICS_TLS_CERT_FILE: "/etc/cert.pem" })).toThrow(
      "METRICS_TLS_CERT_FILE and METRICS_TLS_KEY_FILE: set both (TLS) or neither (cleartext)",
    );
  });

  it("should fail to start with a clear message when the certificate cannot be read", async () => {
    await expect(
      startTestService({
        METRICS_TLS_CERT_FILE: "/nonexistent/cert.pem",
        METRICS_TLS_KEY_FILE: "/nonexistent/key.pem",
      }),
    ).rejects.toThrow("METRICS_TLS_CERT_FILE: cannot read /nonexistent/cert.pem (ENOENT)");
  });
});
