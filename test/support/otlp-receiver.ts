import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export interface KeyValue {
  key: string;
  value: { stringValue?: string };
}
export interface ExportRequest {
  resourceMetrics: {
    resource: { attributes: KeyValue[] };
    scopeMetrics: {
      metrics: {
        name: string;
        unit?: string;
        sum?: { dataPoints: { attributes: KeyValue[]; asDouble?: number; asInt?: string }[] };
        histogram?: { dataPoints: { attributes: KeyValue[]; count: string; sum: number }[] };
      }[];
    }[];
  }[];
}

/** A small OTLP/gRPC receiver standing in for an OpenTelemetry Collector. */
export async function startReceiver(): Promise<{
  port: number;
  exports: { request: ExportRequest; metadata: grpc.Metadata }[];
  server: grpc.Server;
}> {
  const definition = protoLoader.loadSync(
    join(import.meta.dirname, "..", "fixtures", "otlp-metrics.proto"),
    {
      longs: String,
      defaults: false,
      oneofs: true,
    },
  );
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    opentelemetry: {
      proto: {
        collector: { metrics: { v1: { MetricsService: { service: grpc.ServiceDefinition } } } };
      };
    };
  };
  const exports: { request: ExportRequest; metadata: grpc.Metadata }[] = [];
  const server = new grpc.Server();
  server.addService(loaded.opentelemetry.proto.collector.metrics.v1.MetricsService.service, {
    Export: (
      call: grpc.ServerUnaryCall<ExportRequest, object>,
      callback: grpc.sendUnaryData<object>,
    ) => {
      exports.push({ request: call.request, metadata: call.metadata });
      callback(null, {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, p) =>
      error ? reject(error) : resolve(p),
    ),
  );
  return { port, exports, server };
}

/** One export an OTLP/HTTP receiver took: its path, headers, content type and decoded request. */
export interface HttpExport {
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly contentType: string;
  readonly request: ExportRequest;
}

/**
 * A small OTLP/HTTP receiver standing in for a Collector's port 4318: it
 * takes `http/protobuf` (decoded with the official proto definitions) and
 * `http/json`, gzip-compressed or not, and answers 200 with an empty
 * ExportMetricsServiceResponse.
 */
export async function startHttpReceiver(): Promise<{
  port: number;
  exports: HttpExport[];
  close(): Promise<void>;
}> {
  const definition = protoLoader.loadSync(
    join(import.meta.dirname, "..", "fixtures", "otlp-metrics.proto"),
    { longs: String, defaults: false, oneofs: true },
  );
  const service = definition["opentelemetry.proto.collector.metrics.v1.MetricsService"] as Record<
    string,
    { requestDeserialize: (bytes: Buffer) => ExportRequest }
  >;
  const decodeProtobuf = service.Export?.requestDeserialize;
  if (decodeProtobuf === undefined) throw new Error("the OTLP proto has no MetricsService.Export");
  const exports: HttpExport[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      const contentType = String(req.headers["content-type"] ?? "");
      const request = contentType.startsWith("application/json")
        ? (JSON.parse(body.toString("utf8")) as ExportRequest)
        : decodeProtobuf(body);
      exports.push({ path: req.url ?? "", headers: req.headers, contentType, request });
      const json = contentType.startsWith("application/json");
      res.writeHead(200, { "content-type": json ? "application/json" : "application/x-protobuf" });
      res.end(json ? "{}" : Buffer.alloc(0));
    });
  });
  const port = await new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );
  return {
    port,
    exports,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
