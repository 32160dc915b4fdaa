/**
 * The ingest benchmark: the service against the physical limit, in one run.
 *
 * Arms, each on a fresh database with the service's schema and indexes:
 * - A, the ceiling: in-process inserts of the same events, no network;
 * - B, a bare `node:http` server: `JSON.parse` and one transaction per request;
 * - the service over JSON `POST /metrics`, Connect binary over HTTP/1.1, gRPC
 *   over h2c, and the client-streaming RPC.
 *
 * Servers run on core 0 and the load generator on core 1 (`taskset`). The
 * rates are stepped up, open loop, and every arm still passing is measured at
 * each rate before the next rate, so machine noise falls on all arms alike.
 * An arm's sustained rate is the highest step with p99 under 50 ms and no
 * error. Results go to a JSON file and a Markdown table; the ratios of the
 * service to A and to B are printed last.
 *
 * Usage: npm run bench [-- --quick] [-- --out DIR]
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import BetterSqlite3 from "better-sqlite3";
import { LIMIT_MS, runAnalytics } from "./ingest/analytics.js";
import type { LoadResult, LoadSpec } from "./ingest/load.js";
import { EVENTS_PER_BATCH } from "./ingest/workload.js";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    out: { type: "string" },
  },
});
const QUICK = args.quick === true;
const OUT = resolve(args.out ?? (QUICK ? "bench/results/quick" : "bench/results"));
const STEP_SECONDS = QUICK ? 3 : 10;
const RATES = QUICK
  ? [5_000, 10_000, 20_000, 30_000, 45_000, 60_000, 80_000, 100_000, 130_000]
  : [
      5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000, 90_000,
      100_000, 115_000, 130_000, 150_000,
    ];
const P99_LIMIT_MS = 50;
const KEY = "bench-key-0123456789abcdef0123";
const DIST = resolve(import.meta.dirname);
const SERVER_CORE = "0";
const LOAD_CORE = "1";
const pinnable = cpus().length >= 2 && canRun("taskset", ["-c", "0", "true"]);

function canRun(command: string, argv: string[]): boolean {
  try {
    execFileSync(command, argv, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** `node args` pinned to a core when the machine allows it. */
function nodeOn(core: string, argv: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const command = pinnable ? "taskset" : process.execPath;
  const full = pinnable ? ["-c", core, process.execPath, ...argv] : argv;
  return spawn(command, full, {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** The first stdout line of a child that matches, parsed as JSON. */
function firstJsonLine<T>(child: ChildProcess, match: (line: string) => boolean): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    let buffered = "";
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const onData = (d: Buffer) => {
      buffered += d.toString();
      for (const line of buffered.split("\n")) {
        if (line.trim() !== "" && match(line)) {
          child.stdout?.off("data", onData);
          resolvePromise(JSON.parse(line) as T);
          return;
        }
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => reject(new Error(`exited with ${code}: ${stderr.slice(-2000)}`)));
  });
}

/** CPU seconds a process has used (user + system), from /proc. */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100;
}

/** Peak resident set (VmHWM) of a process, in MiB. */
function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]) / 1024;
}

interface Server {
  readonly arm: string;
  readonly url: string;
  readonly dbPath: string;
  readonly child: ChildProcess;
  readonly probeFile: string;
  /** Event-loop delay since the previous call. */
  window(): Promise<{ loopDelayP99Ms: number }>;
  stop(): Promise<void>;
}

async function startServer(
  arm: string,
  ingress: LoadSpec["ingress"],
  dir: string,
): Promise<Server> {
  const dbPath = join(dir, `${arm.replace(/[^a-z0-9]+/gi, "-")}.db`);
  const probeFile = `${dbPath}.probe.json`;
  const probe = ["--import", join(DIST, "ingest", "loop-probe.js")];
  let child: ChildProcess;
  let url: string;
  if (ingress === "bare") {
    child = nodeOn(SERVER_CORE, [...probe, join(DIST, "ingest", "bare-server.js"), dbPath], {
      BENCH_PROBE_FILE: probeFile,
    });
    const { port } = await firstJsonLine<{ port: number }>(child, (l) => l.includes('"port"'));
    url = `http://127.0.0.1:${port}`;
  } else {
    child = nodeOn(SERVER_CORE, [...probe, join(DIST, "..", "src", "main.js")], {
      BENCH_PROBE_FILE: probeFile,
      METRICS_SERVICE_HOST: "127.0.0.1",
      METRICS_SERVICE_PORT: "0",
      SQLITE_DB_PATH: dbPath,
      OTEL_PROMETHEUS_ENABLED: "false",
      METRICS_RETENTION_ENABLED: "false",
      METRICS_RATE_LIMIT: "100000000",
      METRICS_API_KEY_BENCH_GATEWAY: KEY,
      LOG_LEVEL: "info",
    });
    const { port } = await firstJsonLine<{ port: number }>(child, (l) => l.includes('"listening"'));
    url = `http://127.0.0.1:${port}`;
  }
  let window = 0;
  return {
    arm,
    url,
    dbPath,
    child,
    probeFile,
    async window() {
      window++;
      child.kill("SIGUSR2");
      for (let i = 0; i < 200; i++) {
        try {
          const read = JSON.parse(readFileSync(probeFile, "utf8")) as {
            window: number;
            loopDelayP99Ms: number;
          };
          if (read.window === window) return read;
        } catch {
          // not written yet
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      return { loopDelayP99Ms: Number.NaN };
    },
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const child = nodeOn(LOAD_CORE, [join(DIST, "ingest", "load.js"), JSON.stringify(spec)]);
  return await firstJsonLine<LoadResult>(child, (l) => l.startsWith("{"));
}

/** Rows stored in `metrics` and bytes of the database file with its WAL. */
function storedOf(dbPath: string): { rows: number; bytes: number } {
  const size = (p: string) => {
    try {
      return statSync(p).size;
    } catch {
      return 0;
    }
  };
  const db = new BetterSqlite3(dbPath, { readonly: true });
  const { n } = db.prepare("SELECT count(*) AS n FROM metrics").get() as { n: number };
  db.close();
  return { rows: n, bytes: size(dbPath) + size(`${dbPath}-wal`) };
}

interface Step {
  readonly offeredEventsPerSecond: number;
  readonly load: LoadResult;
  readonly cpuSecondsPerMillion: number;
  readonly loopDelayP99Ms: number;
  readonly passed: boolean;
}

interface ArmResult {
  readonly arm: string;
  readonly ingress: LoadSpec["ingress"];
  readonly steps: Step[];
  sustainedEventsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  cpuSecondsPerMillion: number;
  loopDelayP99Ms: number;
  bytesPerEvent: number;
  peakRssMiB: number;
}

const ARMS: { arm: string; ingress: LoadSpec["ingress"] }[] = [
  { arm: "B: bare node:http", ingress: "bare" },
  { arm: "service: JSON POST /metrics", ingress: "json" },
  { arm: "service: Connect binary, HTTP/1.1", ingress: "connect" },
  { arm: "service: gRPC, h2c", ingress: "grpc" },
  { arm: "service: gRPC client stream", ingress: "stream" },
];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mcp-metrics-bench-"));
  const started = new Date();
  console.log(
    `ingest benchmark (${QUICK ? "quick" : "full"}): ${cpus().length} cores (${cpus()[0]?.model}), ` +
      `servers on core ${SERVER_CORE}, load on core ${LOAD_CORE}${pinnable ? "" : " (not pinned: taskset unavailable)"}`,
  );

  // A, the ceiling, at the request size and at a group-commit size.
  const ceiling: Record<string, { eventsPerSecond: number; cpuSecondsPerMillion: number }> = {};
  for (const perCommit of [EVENTS_PER_BATCH, 1000]) {
    const child = nodeOn(SERVER_CORE, [
      join(DIST, "ingest", "ceiling.js"),
      join(dir, `ceiling-${perCommit}.db`),
      String(perCommit),
      String(QUICK ? 3 : 10),
    ]);
    ceiling[perCommit] = await firstJsonLine(child, (l) => l.startsWith("{"));
    console.log(
      `A ceiling, ${perCommit} events per commit: ${Math.round(ceiling[perCommit]?.eventsPerSecond ?? 0)} events/s`,
    );
  }

  const servers = new Map<string, Server>();
  const results = new Map<string, ArmResult>();
  for (const { arm, ingress } of ARMS) {
    servers.set(arm, await startServer(arm, ingress, dir));
    results.set(arm, {
      arm,
      ingress,
      steps: [],
      sustainedEventsPerSecond: 0,
      p50Ms: Number.NaN,
      p99Ms: Number.NaN,
      cpuSecondsPerMillion: Number.NaN,
      loopDelayP99Ms: Number.NaN,
      bytesPerEvent: Number.NaN,
      peakRssMiB: Number.NaN,
    });
  }
  // Warm-up: JIT, page cache, connections.
  for (const { arm, ingress } of ARMS) {
    const server = servers.get(arm) as Server;
    await runLoad({ ingress, url: server.url, key: KEY, eventsPerSecond: 5000, seconds: 2 });
  }

  const alive = new Set(ARMS.map((a) => a.arm));
  for (const rate of RATES) {
    if (alive.size === 0) break;
    for (const { arm, ingress } of ARMS) {
      if (!alive.has(arm)) continue;
      const server = servers.get(arm) as Server;
      const result = results.get(arm) as ArmResult;
      const pid = server.child.pid ?? 0;
      await server.window();
      const cpuBefore = cpuSecondsOf(pid);
      const load = await runLoad({
        ingress,
        url: server.url,
        key: KEY,
        eventsPerSecond: rate,
        seconds: STEP_SECONDS,
      });
      const cpu = cpuSecondsOf(pid) - cpuBefore;
      const { loopDelayP99Ms } = await server.window();
      const passed = load.errors === 0 && load.p99Ms < P99_LIMIT_MS;
      const step: Step = {
        offeredEventsPerSecond: rate,
        load,
        cpuSecondsPerMillion: (cpu / Math.max(1, load.ok * EVENTS_PER_BATCH)) * 1e6,
        loopDelayP99Ms,
        passed,
      };
      result.steps.push(step);
      console.log(
        `${arm.padEnd(36)} ${String(rate).padStart(7)}/s offered: ${Math.round(load.eventsPerSecond)}/s acked, ` +
          `p50 ${load.p50Ms.toFixed(1)} ms, p99 ${load.p99Ms.toFixed(1)} ms, errors ${load.errors}, ` +
          `CPU ${step.cpuSecondsPerMillion.toFixed(1)} s/M, loop p99 ${loopDelayP99Ms.toFixed(1)} ms` +
          (load.errorSamples.length > 0 ? ` [${load.errorSamples[0]}]` : ""),
      );
      if (passed) {
        result.sustainedEventsPerSecond = rate;
        result.p50Ms = load.p50Ms;
        result.p99Ms = load.p99Ms;
        result.cpuSecondsPerMillion = step.cpuSecondsPerMillion;
        result.loopDelayP99Ms = loopDelayP99Ms;
      } else {
        alive.delete(arm);
      }
    }
  }

  for (const { arm } of ARMS) {
    const server = servers.get(arm) as Server;
    const result = results.get(arm) as ArmResult;
    result.peakRssMiB = peakRssMiB(server.child.pid ?? 0);
    await server.stop();
    const stored = storedOf(server.dbPath);
    result.bytesPerEvent = stored.bytes / Math.max(1, stored.rows);
  }

  // The operators' questions on a history of 10 million events (1 million in quick mode).
  const analytics = await runAnalytics({
    events: QUICK ? 1_000_000 : 10_000_000,
    dir,
    log: (line) => console.log(`analytics: ${line}`),
  });
  rmSync(dir, { recursive: true, force: true });

  const arms = [...results.values()];
  const bare = results.get("B: bare node:http") as ArmResult;
  const ceilingBest = Math.max(...Object.values(ceiling).map((c) => c.eventsPerSecond));
  const report = {
    benchmark: "ingest",
    mode: QUICK ? "quick" : "full",
    started: started.toISOString(),
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? "unknown",
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      pinned: pinnable,
    },
    settings: {
      stepSeconds: STEP_SECONDS,
      rates: RATES,
      p99LimitMs: P99_LIMIT_MS,
      eventsPerBatch: EVENTS_PER_BATCH,
    },
    ceiling,
    arms,
    analytics,
  };
  mkdirSync(OUT, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  writeFileSync(join(OUT, `ingest-${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
  const table = [
    "| Arm | Sustained events/s | p50 ms | p99 ms | CPU s per M events | Loop delay p99 ms | Bytes per event | Peak RSS MiB |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
    `| A: in-process inserts, ${EVENTS_PER_BATCH} per commit | ${Math.round(ceiling[EVENTS_PER_BATCH]?.eventsPerSecond ?? 0)} (max) | – | – | ${ceiling[EVENTS_PER_BATCH]?.cpuSecondsPerMillion.toFixed(1)} | – | – | – |`,
    `| A: in-process inserts, 1000 per commit | ${Math.round(ceiling[1000]?.eventsPerSecond ?? 0)} (max) | – | – | ${ceiling[1000]?.cpuSecondsPerMillion.toFixed(1)} | – | – | – |`,
    ...arms.map(
      (a) =>
        `| ${a.arm} | ${a.sustainedEventsPerSecond} | ${a.p50Ms.toFixed(1)} | ${a.p99Ms.toFixed(1)} | ${a.cpuSecondsPerMillion.toFixed(1)} | ${a.loopDelayP99Ms.toFixed(1)} | ${Math.round(a.bytesPerEvent)} | ${Math.round(a.peakRssMiB)} |`,
    ),
  ].join("\n");
  const questions = [
    `Analytics on ${analytics.events.toLocaleString("en-US")} events over 90 days (limit ${LIMIT_MS} ms):`,
    "",
    "| Question | Median ms | Rows | Through an index |",
    "|---|---:|---:|---|",
    ...analytics.queries.map(
      (q) =>
        `| ${q.name} | ${q.medianMs.toFixed(2)}${q.underLimit ? "" : " (over)"} | ${q.value ?? q.rows} | ${q.usesIndex ? "yes" : "**no**"} |`,
    ),
  ].join("\n");
  writeFileSync(join(OUT, `ingest-${stamp}.md`), `${table}\n\n${questions}\n`);
  console.log(`\n${table}\n\n${questions}\n`);
  console.log(`results: ${join(OUT, `ingest-${stamp}.json`)}`);
  console.log("\nratios (sustained events/s):");
  for (const a of arms.filter((x) => x.ingress !== "bare")) {
    console.log(
      `  ${a.arm.padEnd(36)} service/A ${(a.sustainedEventsPerSecond / ceilingBest).toFixed(2)}  service/B ${(a.sustainedEventsPerSecond / Math.max(1, bare.sustainedEventsPerSecond)).toFixed(2)}`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
