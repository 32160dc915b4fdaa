/**
 * Where the service's own time goes, in process: the per-event cost of each
 * stage of the JSON and binary ingest paths, with no HTTP and no SQLite, next
 * to arm B's per-event work (`JSON.parse` and the bare row mapping). Stages
 * run cumulatively on fresh copies of the same batches, interleaved in rounds
 * so that noise falls on all alike; each figure is the median over rounds.
 *
 * Usage: npm run bench:breakdown [-- --rounds N]
 */
import { parseArgs } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { IngestRequestSchema } from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { decodeLegacyBatch } from "../../src/http/legacy-batch.js";
import { liftLegacyKeys, renderEvent } from "../../src/ingest/normalize.js";
import { LEGACY_PATHS, validateBatch } from "../../src/ingest/validate.js";
import { createEventInstruments } from "../../src/telemetry/instruments.js";
import { bareRow } from "./bare-rows.js";
import { quantile } from "./quantile.js";
import { buildWorkload, EVENTS_PER_BATCH } from "./workload.js";

const { values: args } = parseArgs({ options: { rounds: { type: "string", default: "15" } } });
const ROUNDS = Number(args.rounds);
const BATCHES = 200;
const workload = buildWorkload(BATCHES, 7);
const texts = workload.json.map((b) => b.toString("utf8"));

const resource = resourceFromAttributes({ "service.name": "breakdown" });
const instruments = createEventInstruments({
  maxValuesPerLabel: 100,
  maxLabelLength: 96,
  semconv: false,
  seriesLimit: 10_000,
  resource,
  scopeName: "breakdown",
});
// A reader, as in the service: its exposition is what the instruments feed.
const exporter = new PrometheusExporter({
  preventServerStart: true,
  metricProducers: [instruments.producer],
});
new MeterProvider({ resource, readers: [exporter] });

type Stage = (text: string, proto: Uint8Array) => void;

function json(text: string) {
  const decoded = decodeLegacyBatch(JSON.parse(text));
  if (!decoded.ok) throw new Error("batch does not decode");
  return decoded.value;
}

function render(batch: ReturnType<typeof json>["batch"], now: number) {
  for (const event of batch.events) liftLegacyKeys(event);
  const { violations } = validateBatch(batch, { nowMs: now, paths: LEGACY_PATHS });
  if (violations.length > 0) throw new Error("batch does not validate");
  return batch.events.map((event) => renderEvent(event, batch, now));
}

function record(rendered: ReturnType<typeof render>): void {
  instruments.record(
    rendered.map(({ row, dimensions, metadata }) => ({
      metricType: row.metricType,
      service: row.service,
      value: row.value,
      durationMs: row.durationMs,
      dimensions,
      metadata,
    })),
  );
}

const BASELINE = "B: JSON.parse + bare rows";
const STAGES: Record<string, Stage> = {
  [BASELINE]: (text) => {
    const body = JSON.parse(text) as { service: string; metrics: Record<string, unknown>[] };
    const now = Date.now();
    for (const e of body.metrics) bareRow(e, body, now);
  },
  "JSON.parse": (text) => JSON.parse(text),
  "+ legacy decode": (text) => json(text),
  "+ lift, validate": (text) => {
    const { batch } = json(text);
    const now = Date.now();
    for (const event of batch.events) liftLegacyKeys(event);
    validateBatch(batch, { nowMs: now, paths: LEGACY_PATHS });
  },
  "+ render rows": (text) => render(json(text).batch, Date.now()),
  "+ instruments (JSON path, all)": (text) => record(render(json(text).batch, Date.now())),
  fromBinary: (_text, proto) => fromBinary(IngestRequestSchema, proto),
  "binary path, all": (_text, proto) => {
    const request = fromBinary(IngestRequestSchema, proto);
    record(render({ service: request.service, events: request.events }, Date.now()));
  },
};

const samples = new Map<string, number[]>(Object.keys(STAGES).map((name) => [name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, stage] of Object.entries(STAGES)) {
    const started = performance.now();
    for (let i = 0; i < BATCHES; i++) stage(texts[i] ?? "", workload.proto[i] ?? new Uint8Array());
    const micros = ((performance.now() - started) * 1000) / (BATCHES * EVENTS_PER_BATCH);
    if (round > 0) samples.get(name)?.push(micros); // round 0 warms the JIT up
  }
}
const median = (values: readonly number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
const baseline = samples.get(BASELINE) ?? [];
console.log("| Stage (cumulative) | µs per event | against B's per-event work |\n|---|---:|---:|");
for (const [name, values] of samples) {
  // Ratios are taken round by round: a slow round slows B too.
  const ratio = median(values.map((v, i) => v / (baseline[i] ?? v)));
  console.log(`| ${name} | ${median(values).toFixed(2)} | ${ratio.toFixed(2)}x |`);
}
