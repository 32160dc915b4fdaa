/**
 * The metrics service's client for emitting services: typed emitters over a
 * bounded buffer, batched, retried, and sent with gRPC or Connect.
 */
export { FlowStep } from "../../../gen/mcp/metrics/v1/events_pb.js";
export { IngestService } from "../../../gen/mcp/metrics/v1/ingest_pb.js";
export { newBatchId } from "./batch-id.js";
export type {
  AuthEvent,
  CommonEventFields,
  CustomEvent,
  DiscoveryEvent,
  EventKind,
  EventOf,
  HealthCheckEvent,
  ProtocolLatencyEvent,
  RegistryOperationEvent,
  ToolExecutionEvent,
} from "./event-init.js";
export type { FlowDetails, FlowTracker, FlowTrackerOptions } from "./flow-tracker.js";
export { createFlowTracker } from "./flow-tracker.js";
export type {
  AuthExchange,
  AuthMetricsOptions,
  FastifyReplyLike,
  FastifyRequestLike,
  NodeHandler,
} from "./http-middleware.js";
export {
  expressAuthMetrics,
  fastifyAuthMetrics,
  hashUser,
  trackAuthRequest,
  withAuthMetrics,
} from "./http-middleware.js";
export type {
  ClientLogger,
  MetricsClient,
  MetricsClientOptions,
  MetricsClientStats,
  MetricsEmitter,
} from "./metrics-client.js";
export { createMetricsClient, EMITTERS } from "./metrics-client.js";
export type { RetryOptions } from "./retry-policy.js";
export type { Protocol } from "./transport.js";
