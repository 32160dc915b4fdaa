import { KIND_BY_TYPE } from "../../src/catalog/catalog.js";
import { type EventRow, specializedRowOf } from "../../src/storage/rows.js";
import { storedTimeOfMillis } from "../../src/storage/stored-time.js";

type Json = Record<string, unknown>;

const text = (v: unknown): string | null => (v === undefined || v === null ? null : String(v));
const num = (v: unknown): number | null => (typeof v === "number" ? v : null);

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
  const specialized = specializedRowOf(base.metricType, (field) => {
    const value = (field.origin === "metadata" ? m : d)[field.name];
    if (field.type === "bool") return value === true ? 1 : value === false ? 0 : null;
    if (field.type === "string") return text(value);
    return num(value);
  });
  const kind = KIND_BY_TYPE.get(base.metricType);
  const dimension = (name: string) =>
    typeof d[name] === "boolean" ? String(d[name]) : text(d[name]);
  const rollup = {
    dimensions: (kind?.labelFields ?? []).flatMap((f) => {
      const value = dimension(f.name);
      return value === null ? [] : [[f.name, value] as const];
    }),
    failed: kind?.outcome !== undefined && d[kind.outcome.name] === false,
    latencyMs: kind?.histogram?.source === "value_seconds" ? base.value * 1000 : base.durationMs,
  };
  return { ...base, specialized, rollup };
}
