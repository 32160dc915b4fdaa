import { FlowStep } from "../../../gen/mcp/metrics/v1/events_pb.js";
import type { MetricsEmitter } from "./metrics-client.js";

/** Options of `createFlowTracker`. */
export interface FlowTrackerOptions {
  /** The MCP server's name, sent with every latency (`server_name`). */
  serverName?: string | undefined;
  /** Sessions tracked at once; beyond it the oldest is forgotten. Default 10,000. */
  maxSessions?: number | undefined;
  /** A session with no tools/call after this long is forgotten. Default 1 hour. */
  sessionTtlMillis?: number | undefined;
  /** A monotonic clock in milliseconds. Default `performance.now`. */
  now?: (() => number) | undefined;
}

/** Per-request details a tracker may attach to a session's latencies. */
export interface FlowDetails {
  /** The MCP client's name (from `initialize`'s clientInfo). */
  clientName?: string | undefined;
  /** The MCP server's name, when one tracker serves several. */
  serverName?: string | undefined;
}

/**
 * Measures an MCP session's protocol flow: record each JSON-RPC method as it
 * arrives, and the tracker emits the three flow-step latencies (in seconds)
 * as soon as they are known: initialize → first tools/list, first tools/list
 * → first tools/call, initialize → first tools/call.
 */
export interface FlowTracker {
  /** Records that `method` arrived on `sessionId` now. Methods other than the three are ignored. */
  record(sessionId: string, method: string, details?: FlowDetails): void;
  /** Forgets a session (e.g. when its transport closes). */
  end(sessionId: string): void;
  /** Sessions currently tracked. */
  readonly size: number;
}

interface SessionFlow {
  readonly startedAt: number;
  initializedAt: number | undefined;
  listedAt: number | undefined;
  clientName: string | undefined;
  serverName: string | undefined;
}

/** Creates a flow tracker that emits through `emitter` (a `MetricsClient`). */
export function createFlowTracker(
  emitter: MetricsEmitter,
  options: FlowTrackerOptions = {},
): FlowTracker {
  const maxSessions = options.maxSessions ?? 10_000;
  const ttl = options.sessionTtlMillis ?? 3_600_000;
  const now = options.now ?? (() => performance.now());
  // A Map iterates in insertion order, and a session is (re)inserted when it
  // starts: the first entries are the oldest, so expiry and the size cap
  // only ever look at the front.
  const sessions = new Map<string, SessionFlow>();

  const emit = (flow: SessionFlow, sessionId: string, flowStep: FlowStep, millis: number) => {
    emitter.protocolLatency({
      value: millis / 1000,
      flowStep,
      sessionId,
      serverName: flow.serverName ?? options.serverName,
      clientName: flow.clientName,
    });
  };

  const evict = (at: number) => {
    for (const [id, flow] of sessions) {
      if (sessions.size <= maxSessions && at - flow.startedAt <= ttl) break;
      sessions.delete(id);
    }
  };

  const start = (sessionId: string, at: number, details: FlowDetails | undefined) => {
    const flow: SessionFlow = {
      startedAt: at,
      initializedAt: undefined,
      listedAt: undefined,
      clientName: details?.clientName,
      serverName: details?.serverName,
    };
    sessions.delete(sessionId);
    sessions.set(sessionId, flow);
    evict(at);
    return flow;
  };

  return {
    record(sessionId, method, details) {
      if (method !== "initialize" && method !== "tools/list" && method !== "tools/call") return;
      const at = now();
      if (method === "initialize") {
        start(sessionId, at, details).initializedAt = at;
        return;
      }
      // A session first seen at tools/list (a client that skipped or resumed
      // past initialize) still yields its tools/list → tools/call latency.
      const known = sessions.get(sessionId);
      // An expired session is not measured against: its latency would exceed the TTL.
      const flow =
        known !== undefined && at - known.startedAt <= ttl ? known : start(sessionId, at, details);
      if (details?.clientName !== undefined) flow.clientName = details.clientName;
      if (method === "tools/list") {
        if (flow.listedAt !== undefined) return;
        flow.listedAt = at;
        if (flow.initializedAt !== undefined) {
          emit(flow, sessionId, FlowStep.INITIALIZE_TO_TOOLS_LIST, at - flow.initializedAt);
        }
        return;
      }
      // The first tools/call completes the flow: nothing more to measure.
      sessions.delete(sessionId);
      if (flow.listedAt !== undefined) {
        emit(flow, sessionId, FlowStep.TOOLS_LIST_TO_TOOLS_CALL, at - flow.listedAt);
      }
      if (flow.initializedAt !== undefined) {
        emit(flow, sessionId, FlowStep.INITIALIZE_TO_TOOLS_CALL, at - flow.initializedAt);
      }
    },
    end(sessionId) {
      sessions.delete(sessionId);
    },
    get size() {
      return sessions.size;
    },
  };
}
