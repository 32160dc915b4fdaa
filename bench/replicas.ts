/**
 * The scale-out benchmark (issue 11): events/s one SQLite process sustains,
 * one replica on PostgreSQL, and two replicas on one PostgreSQL and one Redis,
 * measured in the same run, rate by rate, so machine noise falls on all arms
 * alike.
 *
 * Every arm runs the real service (`dist/src/main.js`) as deployed: the
 * exposition on, a batch id on every request (as the generated clients send),
 * JSON `POST /metrics` with batches of the ingest benchmark's workload, one
 * load generator spreading them over the replicas round robin, as a load
 * balancer would. The service processes run on core 0 and the load generator
 * on core 1; the two
 * replicas share core 0, so the third arm measures what sharing one store
 * costs, not what a second machine adds. PostgreSQL runs unpinned, and its
 * CPU per event is reported beside the service's. An arm's sustained rate is
 * the highest step with p99 under 50 ms and no error; a failed step is
 * measured once more before the arm is dropped.
 *
 * Verdict (bench/verdict.ts), printed last and written into the JSON and
 * Markdown results; the run exits 1 when it is FAIL. Judged in every run:
 * every acknowledged event stored, on each arm. Reported: the throughput
 * ratios (no target: the bench measures what sharing one store costs on one
 * machine, and a quick run's 1.5 s steps are noise).
 *
 * Usage: npm run bench:replicas [-- --quick] [-- --out DIR]
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import type { LoadResult } from "./ingest/load.js";
import {
  cpuSecondsOf,
  KEY,
  pinnable,
  runLoad,
  type Server,
  startServer,
} from "./ingest/processes.js";
import { EVENTS_PER_BATCH } from "./ingest/workload.js";
import {
  commitOf,
  judged,
  reportedOnly,
  verdictLines,
  verdictMarkdown,
  verdictOf,
} from "./verdict.js";

const { values: args } = parseArgs({
  options: { quick: { type: "boolean", default: false }, out: { type: "string" } },
});
const QUICK = args.quick === true;
const OUT = resolve(args.out ?? (QUICK ? "bench/results/quick" : "bench/results"));
const STEP_SECONDS = QUICK ? 1.5 : 8;
const RATES = QUICK
  ? [5_000, 10_000, 20_000, 30_000]
  : [5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 35_000, 40_000, 50_000, 60_000];
const P99_LIMIT_MS = 50;
const PG_URL = process.env.METRICS_BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/**
 * CPU seconds of the PostgreSQL server on this machine, from /proc: every
 * live postgres process's own, plus, for the postmaster, its ended children's
 * (a backend whose connection the pool closed took its CPU with it).
 */
function postgresCpuSeconds(): number {
  const processes = new Map<number, { ppid: number; own: number; children: number }>();
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "postgres") continue;
      // Fields after the command: state, ppid, ..., utime (12th), stime, cutime, cstime.
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      processes.set(Number(pid), {
        ppid: Number(f[1]),
        own: Number(f[11]) + Number(f[12]),
        children: Number(f[13]) + Number(f[14]),
      });
    } catch {
      // the process ended meanwhile
    }
  }
  let ticks = 0;
  for (const p of processes.values()) {
    ticks += p.own;
    if (!processes.has(p.ppid)) ticks += p.children; // the postmaster
  }
  return ticks / 100;
}

/** A schema of its own in the bench's PostgreSQL, and the URL whose connections use it. */
async function schemaUrl(admin: pg.Client, name: string): Promise<string> {
  await admin.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
  await admin.query(`CREATE SCHEMA ${name}`);
  const url = new URL(PG_URL);
  url.searchParams.set("options", `-c search_path=${name}`);
  return url.toString();
}

interface Arm {
  readonly name: string;
  readonly servers: Server[];
  /** The PostgreSQL schema, for the stored rows; undefined on SQLite. */
  readonly schema?: string;
  readonly steps: { rate: number; load: LoadResult; serviceCpu: number; databaseCpu: number }[];
  /** Events acknowledged in every load offered to the arm, its warm-up included. */
  acked: number;
  sustained: number;
  p99Ms: number;
  serviceMicrosPerEvent: number;
  databaseMicrosPerEvent: number;
}

/** Offers `rate` to the arm, spread over its replicas round robin by one load generator. */
function offer(arm: Arm, rate: number): Promise<LoadResult> {
  const [first, ...others] = arm.servers.map((s) => s.url);
  return runLoad({
    ingress: "json",
    url: first as string,
    alsoUrls: others,
    key: KEY,
    eventsPerSecond: rate,
    seconds: STEP_SECONDS,
    batchIds: true,
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mcp-metrics-replicas-"));
  const started = new Date();
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  const one = await schemaUrl(admin, "bench_one_replica");
  const two = await schemaUrl(admin, "bench_two_replicas");
  const serving = (name: string, env: Record<string, string> = {}) =>
    startServer(name, "json", dir, env);
  const arms: Arm[] = [
    { name: "1 SQLite process", servers: [await serving("sqlite")] },
    {
      name: "1 PostgreSQL replica",
      schema: "bench_one_replica",
      servers: [await serving("pg-one", { DATABASE_URL: one })],
    },
    {
      name: "2 PostgreSQL replicas",
      schema: "bench_two_replicas",
      servers: [
        await serving("pg-two-a", { DATABASE_URL: two, REDIS_URL }),
        await serving("pg-two-b", { DATABASE_URL: two, REDIS_URL }),
      ],
    },
  ].map((a) => ({
    ...a,
    steps: [],
    acked: 0,
    sustained: 0,
    p99Ms: Number.NaN,
    serviceMicrosPerEvent: Number.NaN,
    databaseMicrosPerEvent: Number.NaN,
  }));
  console.log(
    `scale-out benchmark (${QUICK ? "quick" : "full"}): ${cpus().length} cores, service on core 0, ` +
      `load on core 1${pinnable ? "" : " (not pinned)"}, PostgreSQL unpinned`,
  );
  // Warm-up: JIT, connections, caches.
  for (const arm of arms) arm.acked += (await offer(arm, 5000)).ok * EVENTS_PER_BATCH;

  const alive = new Set(arms);
  for (const rate of RATES) {
    for (const arm of arms) {
      if (!alive.has(arm)) continue;
      const pids = arm.servers.map((s) => s.child.pid ?? 0);
      // A failed step is measured once more before the arm is dropped: on a shared
      // machine one stall elsewhere can spoil a step's p99 (not in quick mode).
      let passed = false;
      let serviceCpu = 0;
      let databaseCpu = 0;
      let events = 1;
      let load: LoadResult | undefined;
      for (let attempt = 1; attempt <= (QUICK ? 1 : 2) && !passed; attempt++) {
        const serviceBefore = pids.reduce((n, p) => n + cpuSecondsOf(p), 0);
        const databaseBefore = postgresCpuSeconds();
        load = await offer(arm, rate);
        arm.acked += load.ok * EVENTS_PER_BATCH;
        serviceCpu = pids.reduce((n, p) => n + cpuSecondsOf(p), 0) - serviceBefore;
        databaseCpu = arm.schema ? postgresCpuSeconds() - databaseBefore : 0;
        arm.steps.push({ rate, load, serviceCpu, databaseCpu });
        events = Math.max(1, load.ok * EVENTS_PER_BATCH);
        passed = load.errors === 0 && load.p99Ms < P99_LIMIT_MS;
        console.log(
          `${arm.name.padEnd(24)} ${String(rate).padStart(6)}/s offered${attempt > 1 ? " (again)" : ""}: ${Math.round(load.eventsPerSecond)}/s acked, ` +
            `p99 ${load.p99Ms.toFixed(1)} ms, errors ${load.errors}, service ${((serviceCpu / events) * 1e6).toFixed(1)} µs/event` +
            (arm.schema
              ? `, PostgreSQL ${((databaseCpu / events) * 1e6).toFixed(1)} µs/event`
              : "") +
            (load.errorSamples.length > 0 ? ` [${load.errorSamples[0]}]` : ""),
        );
      }
      if (!passed || load === undefined) {
        alive.delete(arm);
        continue;
      }
      arm.sustained = rate;
      arm.p99Ms = load.p99Ms;
      arm.serviceMicrosPerEvent = (serviceCpu / events) * 1e6;
      arm.databaseMicrosPerEvent = arm.schema ? (databaseCpu / events) * 1e6 : 0;
    }
  }

  const stored: Record<string, number> = {};
  for (const arm of arms) {
    for (const server of arm.servers) await server.stop();
    if (arm.schema) {
      const result = await admin.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${arm.schema}.metrics`,
      );
      stored[arm.name] = Number(result.rows[0]?.n ?? 0);
      await admin.query(`DROP SCHEMA ${arm.schema} CASCADE`);
    } else {
      const db = new BetterSqlite3(arm.servers[0]?.dbPath ?? "", { readonly: true });
      stored[arm.name] = (db.prepare("SELECT count(*) AS n FROM metrics").get() as { n: number }).n;
      db.close();
    }
  }
  await admin.end();
  rmSync(dir, { recursive: true, force: true });

  const sqlite = arms[0] as Arm;
  const table = [
    "| Arm | Sustained events/s | Ratio to 1 SQLite process | p99 there, ms | Service CPU µs per event | PostgreSQL CPU µs per event | Rows stored |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...arms.map(
      (a) =>
        `| ${a.name} | ${a.sustained} | ${(a.sustained / Math.max(1, sqlite.sustained)).toFixed(2)} | ${a.p99Ms.toFixed(1)} | ${a.serviceMicrosPerEvent.toFixed(1)} | ${a.schema ? a.databaseMicrosPerEvent.toFixed(1) : "–"} | ${stored[a.name]} |`,
    ),
  ].join("\n");
  console.log(`\n${table}`);
  // A failed request may still have been committed (its answer lost, or past
  // its wait), so stored may exceed acknowledged; never the other way.
  const short = arms.filter((a) => !((stored[a.name] ?? 0) >= a.acked));
  const verdict = verdictOf("replicas", QUICK, [
    judged(
      "every acknowledged event stored, on each arm",
      "rows stored ≥ events acknowledged",
      arms.map((a) => `${a.name}: ${stored[a.name]} stored, ${a.acked} acknowledged`).join("; "),
      short.length === 0,
    ),
    reportedOnly(
      "throughput against 1 SQLite process",
      "none stated (README: what sharing one store costs on one machine)",
      arms
        .map(
          (a) =>
            `${a.name} ${a.sustained} events/s (${(a.sustained / Math.max(1, sqlite.sustained)).toFixed(2)})`,
        )
        .join("; "),
      QUICK
        ? "not judged in quick mode: 1.5 s steps on a shared machine, and no target"
        : "not judged: no target; the replicas share one machine's cores here",
    ),
  ]);
  mkdirSync(OUT, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  const report = {
    benchmark: "replicas",
    commit: commitOf(),
    mode: QUICK ? "quick" : "full",
    started: started.toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "unknown", pinned: pinnable },
    settings: {
      stepSeconds: STEP_SECONDS,
      rates: RATES,
      p99LimitMs: P99_LIMIT_MS,
      ingress: "json",
    },
    arms: arms.map(({ servers: _servers, ...a }) => ({ ...a, stored: stored[a.name] })),
    verdict,
  };
  writeFileSync(join(OUT, `replicas-${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(
    join(OUT, `replicas-${stamp}.md`),
    `# Scale-out benchmark, ${report.mode}, ${report.started}\n\n` +
      `JSON \`POST /metrics\`, ${EVENTS_PER_BATCH} events per request, a batch id on each; ` +
      `${STEP_SECONDS} s per step; sustained = highest step with p99 under ${P99_LIMIT_MS} ms and no error.\n\n${table}\n\n${verdictMarkdown(verdict)}\n`,
  );
  console.log("");
  for (const line of verdictLines(verdict)) console.log(line);
  if (verdict.status === "FAIL") process.exitCode = 1;
}

await main();
