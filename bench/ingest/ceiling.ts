/**
 * Arm A of the ingest benchmark, the ceiling: the workload's events inserted
 * in-process into the service's schema and indexes with the service's insert
 * statements, `rowsPerCommit` events per transaction, as fast as one core
 * can: no network, no parsing, no validation.
 *
 * Usage: node dist/bench/ingest/ceiling.js <database file> <events per commit> <seconds>
 * Prints `{"eventsPerSecond": N, "cpuSecondsPerMillion": N}`.
 */

import type { EventRow } from "../../src/storage/rows.js";
import { openDatabase } from "../../src/storage/sqlite/database.js";
import { createEventStore } from "../../src/storage/sqlite/event-store.js";
import { bareRow } from "./bare-rows.js";
import { BENCH_SERVICE, buildWorkload } from "./workload.js";

const [path, perCommitText, secondsText] = process.argv.slice(2);
if (path === undefined) throw new Error("usage: ceiling.js <db> <events per commit> <seconds>");
const perCommit = Number(perCommitText ?? 100);
const seconds = Number(secondsText ?? 5);
const db = openDatabase(path, { synchronous: "FULL", busyTimeoutMillis: 5000 });
const store = createEventStore(db, { maxBatchRows: 1_000_000, maxDelayMillis: 0 });
const workload = buildWorkload(64);
const envelope = { service: BENCH_SERVICE, version: "1.0.0", instance_id: "bench-1" };
const pool = workload.events.flat();

const cpuBefore = process.cpuUsage();
const start = performance.now();
let events = 0;
let next = 0;
while (performance.now() - start < seconds * 1000) {
  const now = Date.now();
  const rows: EventRow[] = [];
  for (let i = 0; i < perCommit; i++) {
    rows.push(bareRow(pool[next++ % pool.length] as Record<string, unknown>, envelope, now));
  }
  void store.append(`req_${events}`, rows);
  await store.flush();
  events += perCommit;
}
const elapsed = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuBefore);
await store.close();
db.close();
process.stdout.write(
  `${JSON.stringify({
    eventsPerSecond: events / elapsed,
    cpuSecondsPerMillion: ((cpu.user + cpu.system) / 1e6 / events) * 1e6,
  })}\n`,
);
