/**
 * The traffic the real-Prometheus dashboard test sends in each of its two
 * phases, as legacy JSON metrics: auth 40 (34 succeed), tool calls 60
 * (initialize 10, tools/list 20, tools/call 30; 6 fail), 3 protocol
 * latencies, 10 discovery searches (3 find nothing), 8 health checks (2
 * unhealthy), 6 registry operations (1 fails) and 4 custom events: an event
 * of every type, so that every panel of the dashboard has data.
 */
export function dashboardTraffic(): Record<string, unknown>[] {
  const auth = Array.from({ length: 40 }, (_, i) => ({
    type: "auth_request",
    value: 1,
    duration_ms: 20 + i,
    dimensions: {
      success: i >= 6,
      method: ["jwt", "oauth", "noauth"][i % 3],
      server: i % 2 ? "github" : "currenttime",
      user_hash: `u${i}`,
    },
  }));
  const methods = [
    ...Array(10).fill("initialize"),
    ...Array(20).fill("tools/list"),
    ...Array(30).fill("tools/call"),
  ] as string[];
  const tools = methods.map((method, i) => ({
    type: "tool_execution",
    value: 1,
    duration_ms: 120 + i, // 0.12 to 0.18 s: the P95 lies in the (0.1, 0.25] bucket
    dimensions: {
      method,
      success: i % 10 !== 0,
      tool_name: method === "tools/call" ? ["now", "convert", "zones"][i % 3] : "",
      server_name: i % 2 ? "currenttime" : "weather",
      client_name: i % 3 ? "claude-desktop" : "cursor",
    },
  }));
  const flows = [
    "initialize_to_tools_list",
    "tools_list_to_tools_call",
    "initialize_to_tools_call",
  ].map((step, i) => ({
    type: "protocol_latency",
    value: 0.2 * (i + 1),
    dimensions: { flow_step: step, server_name: "currenttime" },
  }));
  const discovery = Array.from({ length: 10 }, (_, i) => ({
    type: "tool_discovery",
    value: 1,
    duration_ms: 60 + i,
    dimensions: { query: `find tool ${i}`, results_count: i < 3 ? 0 : 5, top_k_services: 3 },
    metadata: { embedding_time_ms: 20 + i, faiss_search_time_ms: 2 + i / 10 },
  }));
  const health = Array.from({ length: 8 }, (_, i) => ({
    type: "health_check",
    value: 1,
    duration_ms: 5 + i,
    dimensions: {
      endpoint: i % 2 ? "http://currenttime:8000/health" : "http://weather:8000/health",
      status_code: i < 2 ? 503 : 200,
      healthy: i >= 2,
    },
  }));
  const registry = ["create", "list", "list", "search", "update", "delete"].map((operation, i) => ({
    type: "registry_operation",
    value: 1,
    duration_ms: 10 + 5 * i,
    dimensions: { operation, resource_type: "server", success: operation !== "delete" },
  }));
  const custom = Array.from({ length: 4 }, (_, i) => ({
    type: "custom",
    value: 10 * i,
    dimensions: { metric_name: i % 2 ? "cache_hits" : "queue_depth" },
  }));
  return [...auth, ...tools, ...flows, ...discovery, ...health, ...registry, ...custom];
}

/** The `Event.kind` case of each legacy type. */
const KINDS: Record<string, string> = {
  auth_request: "authRequest",
  tool_execution: "toolExecution",
  tool_discovery: "toolDiscovery",
  protocol_latency: "protocolLatency",
  health_check: "healthCheck",
  registry_operation: "registryOperation",
  custom: "custom",
};

/**
 * The same metrics as typed events: the kind from `type`, the typed fields
 * carried over from the legacy keys of `dimensions` and `metadata`.
 */
export function typedEvents(metrics: readonly Record<string, unknown>[]) {
  return metrics.map((m) => ({
    value: m.value as number,
    ...(m.duration_ms === undefined ? {} : { durationMs: m.duration_ms as number }),
    dimensions: m.dimensions as Record<string, never>,
    ...(m.metadata === undefined ? {} : { metadata: m.metadata as Record<string, never> }),
    kind: { case: KINDS[m.type as string] as "authRequest", value: {} },
  }));
}
