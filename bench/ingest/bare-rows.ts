import type { EventRow, SqlBool } from "../../src/storage/rows.js";
import { storedTimeOfMillis } from "../../src/storage/stored-time.js";

type Json = Record<string, unknown>;

const text = (v: unknown): string | null => (v === undefined || v === null ? null : String(v));
const num = (v: unknown): number | null => (typeof v === "number" ? v : null);
const bool = (v: unknown): SqlBool => (v === true ? 1 : v === false ? 0 : null);

/**
 * The least work that turns a legacy JSON event into the rows the service
 * stores (the same tables and columns), with no validation, no defaults beyond
 * the receive time and no instruments: what arms A and B insert.
 */
export function bareRow(
  event: Json,
  envelope: { service: string; version?: string; instance_id?: string },
  receivedAtMs: number,
): EventRow {
  const d = (event.dimensions ?? {}) as Json;
  const m = (event.metadata ?? {}) as Json;
  const base = {
    service: envelope.service,
    serviceVersion: envelope.version ?? null,
    instanceId: envelope.instance_id ?? null,
    metricType: String(event.type),
    timestamp: storedTimeOfMillis(receivedAtMs),
    value: Number(event.value),
    durationMs: num(event.duration_ms),
    dimensions: JSON.stringify(d),
    metadata: JSON.stringify(m),
    keyService: envelope.service,
  };
  switch (event.type) {
    case "auth_request":
      return {
        ...base,
        auth: {
          success: bool(d.success),
          method: text(d.method),
          server: text(d.server),
          userHash: text(d.user_hash),
          errorCode: text(m.error_code),
          targetKind: text(d.target_kind),
        },
      };
    case "tool_execution":
      return {
        ...base,
        tool: {
          toolName: text(d.tool_name),
          serverPath: text(d.server_path),
          serverName: text(d.server_name),
          success: bool(d.success),
          clientName: text(d.client_name),
          clientVersion: text(d.client_version),
          method: text(d.method),
          userHash: text(d.user_hash),
          errorCode: text(m.error_code),
          inputSizeBytes: num(m.input_size_bytes),
          outputSizeBytes: num(m.output_size_bytes),
        },
      };
    case "tool_discovery":
      return {
        ...base,
        discovery: {
          query: text(d.query),
          resultsCount: num(d.results_count),
          topKServices: num(d.top_k_services),
          topNTools: num(d.top_n_tools),
          embeddingTimeMs: num(m.embedding_time_ms),
          faissSearchTimeMs: num(m.faiss_search_time_ms),
        },
      };
    default:
      return base;
  }
}
