import { create, toBinary } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { IngestRequestSchema } from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { decodeLegacyBatch } from "../../src/http/legacy-batch.js";
import { liftLegacyKeys } from "../../src/ingest/normalize.js";

/** Events per request, as the generated clients batch them (the contract's maximum). */
export const EVENTS_PER_BATCH = 100;

/** The service every benchmark batch reports as (its key is bound to it). */
export const BENCH_SERVICE = "bench-gateway";

const TOOLS = Array.from({ length: 20 }, (_, i) => `tool_${i}`);
const SERVERS = ["currenttime", "github", "slack", "jira", "search"];
const CLIENTS = ["claude-desktop", "cursor", "vscode"];
const METHODS = ["initialize", "tools/list", "tools/call"];

/** A small deterministic generator, so every run sends the same events. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * One event in the legacy JSON shape, the mix a gateway emits: 40% tool calls,
 * 25% authentications, 15% tool searches, 10% protocol latencies, 10% custom.
 * No timestamp: the server stamps each event as received.
 */
function legacyEvent(next: () => number): Record<string, unknown> {
  const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)] as T;
  const user = `u${Math.floor(next() * 1000)
    .toString(16)
    .padStart(11, "0")}`;
  const roll = next();
  if (roll < 0.4) {
    return {
      type: "tool_execution",
      value: 1,
      duration_ms: Math.round(next() * 2000) / 10,
      dimensions: {
        tool_name: pick(TOOLS),
        server_name: pick(SERVERS),
        server_path: `/${pick(SERVERS)}`,
        success: next() > 0.05,
        client_name: pick(CLIENTS),
        client_version: "1.4.2",
        method: pick(METHODS),
        user_hash: user,
      },
      metadata: {
        input_size_bytes: Math.floor(next() * 4000),
        output_size_bytes: Math.floor(next() * 20000),
      },
    };
  }
  if (roll < 0.65) {
    const success = next() > 0.1;
    return {
      type: "auth_request",
      value: 1,
      duration_ms: Math.round(next() * 500) / 10,
      dimensions: {
        success,
        method: pick(["jwt", "oauth", "noauth"]),
        server: pick(SERVERS),
        user_hash: user,
      },
      ...(success ? {} : { metadata: { error_code: "invalid_token" } }),
    };
  }
  if (roll < 0.8) {
    return {
      type: "tool_discovery",
      value: 1,
      duration_ms: Math.round(next() * 1500) / 10,
      dimensions: {
        query: `find a tool for task ${Math.floor(next() * 500)}`,
        results_count: Math.floor(next() * 6),
        top_k_services: 5,
        top_n_tools: 10,
      },
      metadata: {
        embedding_time_ms: Math.round(next() * 300) / 10,
        faiss_search_time_ms: Math.round(next() * 50) / 10,
      },
    };
  }
  if (roll < 0.9) {
    return {
      type: "protocol_latency",
      value: Math.round(next() * 1000) / 1000,
      dimensions: {
        flow_step: pick([
          "initialize_to_tools_list",
          "tools_list_to_tools_call",
          "initialize_to_tools_call",
        ]),
        server_name: pick(SERVERS),
      },
    };
  }
  return {
    type: "custom",
    value: next() * 100,
    dimensions: { metric_name: "queue_depth", server_name: pick(SERVERS) },
  };
}

/** The service the gateway's nginx reports its tool calls as. */
export const NGINX_SERVICE = "nginx";

/**
 * One tool call as the gateway's nginx flushes it: always `tool_execution`,
 * the five dimensions it sets, `success` as the string it writes
 * (not a JSON boolean) and an empty metadata object. No timestamp. `value`
 * goes out as `1` (Lua's cjson writes 1.0 so too; JSON reads both the same).
 */
function nginxEvent(next: () => number): Record<string, unknown> {
  const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)] as T;
  return {
    type: "tool_execution",
    value: 1,
    duration_ms: Math.round(next() * 2000) / 10,
    dimensions: {
      method: pick(METHODS),
      server_name: pick(SERVERS),
      tool_name: pick(TOOLS),
      client_name: pick(CLIENTS),
      success: "true",
    },
    metadata: {},
  };
}

/** The same batches in every wire format the arms send. */
export interface Workload {
  /** Legacy `POST /metrics` bodies. */
  readonly json: readonly Buffer[];
  /** Binary `IngestRequest` messages (Connect, gRPC, the stream). */
  readonly proto: readonly Uint8Array[];
  /** The events of each batch, in the legacy JSON shape (arm A and arm B map them to rows). */
  readonly events: readonly (readonly Record<string, unknown>[])[];
}

/** What a workload's batches report (the bench's defaults when absent). */
export interface WorkloadOptions {
  /** The service every batch reports as (its key is bound to it); default {@link BENCH_SERVICE}. */
  readonly service?: string;
  /**
   * Unix seconds: each event is stamped up to a day before this. Without it the
   * events carry no timestamp and the server stamps them as received.
   */
  readonly timestampSeconds?: number;
  /** Events per batch; default {@link EVENTS_PER_BATCH}. */
  readonly eventsPerBatch?: number;
  /**
   * `mixed` (default): the gateway's mix of event types, with an instance id.
   * `nginx`: the gateway's nginx flush, tool calls only under
   * `{"service":"nginx","version":"1.0.0","metrics":[...]}` (its key must be
   * allowed to report as `nginx`; the service defaults to it).
   */
  readonly shape?: "mixed" | "nginx";
}

/** Builds `count` distinct batches of `options.eventsPerBatch` ({@link EVENTS_PER_BATCH}) events. */
export function buildWorkload(count: number, seed = 42, options: WorkloadOptions = {}): Workload {
  const next = random(seed);
  const nginx = options.shape === "nginx";
  const service = options.service ?? (nginx ? NGINX_SERVICE : BENCH_SERVICE);
  const stamp = options.timestampSeconds;
  const json: Buffer[] = [];
  const proto: Uint8Array[] = [];
  const events: Record<string, unknown>[][] = [];
  const eventOf = nginx ? nginxEvent : legacyEvent;
  for (let i = 0; i < count; i++) {
    const metrics = Array.from({ length: options.eventsPerBatch ?? EVENTS_PER_BATCH }, () =>
      stamp === undefined
        ? eventOf(next)
        : { ...eventOf(next), timestamp: stamp - Math.floor(next() * 86_400) },
    );
    // nginx sends no instance id.
    const body = nginx
      ? { service, version: "1.0.0", metrics }
      : { service, version: "1.0.0", instance_id: "bench-1", metrics };
    const decoded = decodeLegacyBatch(body);
    if (!decoded.ok)
      throw new Error(`benchmark batch does not decode: ${JSON.stringify(decoded.errors)}`);
    const { batch } = decoded.value;
    // Serialized and copied first: lifting below moves typed keys out of the
    // dimension objects the body shares (arms A and B, and the analytics, read
    // the copies: they stored typed columns as null before).
    const text = JSON.stringify(body);
    json.push(Buffer.from(text));
    events.push((JSON.parse(text) as { metrics: Record<string, unknown>[] }).metrics);
    // The binary batches carry typed fields, as the generated clients send them;
    // only keys no typed field models stay in the dimensions and metadata.
    for (const event of batch.events) {
      liftLegacyKeys(event);
      // The legacy decoder's timestamps are plain objects, which serializing refuses.
      if (event.timestamp !== undefined) event.timestamp = create(TimestampSchema, event.timestamp);
    }
    proto.push(
      toBinary(
        IngestRequestSchema,
        create(IngestRequestSchema, {
          service: batch.service,
          version: batch.version ?? "",
          instanceId: batch.instanceId ?? "",
          events: [...batch.events],
        }),
      ),
    );
  }
  return { json, proto, events };
}
