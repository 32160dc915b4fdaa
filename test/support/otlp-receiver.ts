import { join } from "node:path";
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
