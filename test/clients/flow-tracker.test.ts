import { describe, expect, it } from "vitest";
import {
  createFlowTracker,
  createMetricsClient,
  FlowStep,
  type MetricsEmitter,
  type ProtocolLatencyEvent,
} from "../../clients/typescript/src/index.js";
import { jsonField, startTestService } from "../support/service.js";

/** An emitter that keeps the latencies it is given (the tracker is what is under test). */
function recordingEmitter() {
  const latencies: ProtocolLatencyEvent[] = [];
  const ignore = () => {};
  const emitter: MetricsEmitter = {
    auth: ignore,
    toolExecution: ignore,
    discovery: ignore,
    protocolLatency: (event) => latencies.push(event),
    registryOperation: ignore,
    healthCheck: ignore,
    custom: ignore,
  };
  return { emitter, latencies };
}

describe("createFlowTracker", () => {
  it("should emit the three flow-step latencies in seconds, once per session", () => {
    const { emitter, latencies } = recordingEmitter();
    let clock = 1_000;
    const tracker = createFlowTracker(emitter, { serverName: "time", now: () => clock });
    tracker.record("s1", "initialize", { clientName: "claude-desktop" });
    clock += 250;
    tracker.record("s1", "notifications/initialized");
    tracker.record("s1", "tools/list");
    clock += 1_500;
    tracker.record("s1", "tools/list");
    clock += 500;
    tracker.record("s1", "tools/call");
    clock += 100;
    tracker.record("s1", "tools/call");
    expect(latencies).toEqual([
      {
        value: 0.25,
        flowStep: FlowStep.INITIALIZE_TO_TOOLS_LIST,
        sessionId: "s1",
        serverName: "time",
        clientName: "claude-desktop",
      },
      {
        value: 2,
        flowStep: FlowStep.TOOLS_LIST_TO_TOOLS_CALL,
        sessionId: "s1",
        serverName: "time",
        clientName: "claude-desktop",
      },
      {
        value: 2.25,
        flowStep: FlowStep.INITIALIZE_TO_TOOLS_CALL,
        sessionId: "s1",
        serverName: "time",
        clientName: "claude-desktop",
      },
    ]);
    expect(tracker.size).toBe(0);
  });

  it("should keep sessions apart and measure a session that starts at tools/list", () => {
    const { emitter, latencies } = recordingEmitter();
    let clock = 0;
    const tracker = createFlowTracker(emitter, { now: () => clock });
    tracker.record("a", "initialize");
    tracker.record("b", "tools/list");
    clock = 100;
    tracker.record("a", "tools/call");
    clock = 300;
    tracker.record("b", "tools/call");
    expect(latencies.map((l) => [l.sessionId, l.flowStep, l.value])).toEqual([
      ["a", FlowStep.INITIALIZE_TO_TOOLS_CALL, 0.1],
      ["b", FlowStep.TOOLS_LIST_TO_TOOLS_CALL, 0.3],
    ]);
  });

  it("should forget the oldest sessions beyond its cap and sessions past their time to live", () => {
    const { emitter, latencies } = recordingEmitter();
    let clock = 0;
    const tracker = createFlowTracker(emitter, {
      maxSessions: 100,
      sessionTtlMillis: 10_000,
      now: () => clock,
    });
    for (let i = 0; i < 1_000; i++) tracker.record(`s${i}`, "initialize");
    expect(tracker.size).toBe(100);
    tracker.record("s0", "tools/list"); // forgotten: starts afresh, no latency
    expect(latencies).toEqual([]);
    clock = 20_000;
    tracker.record("late", "initialize");
    expect(tracker.size).toBe(1);
    tracker.end("late");
    expect(tracker.size).toBe(0);
  });

  it("should have its latencies stored by the real service", async () => {
    const svc = await startTestService();
    const client = createMetricsClient({
      baseUrl: svc.url,
      apiKey: svc.key,
      service: "test-service",
    });
    const tracker = createFlowTracker(client, { serverName: "flow-e2e" });
    tracker.record("sess-9", "initialize", { clientName: "cursor" });
    tracker.record("sess-9", "tools/list");
    tracker.record("sess-9", "tools/call");
    expect(await client.close()).toBe(true);
    const rows = await svc.sql.all<{ step: string }>(
      `SELECT ${jsonField("dimensions", "flow_step")} AS step FROM metrics WHERE metric_type = 'protocol_latency' AND ${jsonField("dimensions", "server_name")} = 'flow-e2e' AND ${jsonField("dimensions", "client_name")} = 'cursor'`,
    );
    expect(rows.map((r) => r.step).sort()).toEqual([
      "initialize_to_tools_call",
      "initialize_to_tools_list",
      "tools_list_to_tools_call",
    ]);
    await svc.close();
  });
});
