/**
 * The benchmark's processes: servers and load generators started as their own
 * processes, pinned to a core each when the machine allows it, and what
 * /proc says about them.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import type { LoadResult, LoadSpec } from "./load.js";
import type { ProbeWindow } from "./loop-probe.js";

export const KEY = "bench-key-0123456789abcdef0123";
export const DIST = resolve(import.meta.dirname, "..");
export const SERVER_CORE = "0";
export const LOAD_CORE = "1";
export const pinnable = cpus().length >= 2 && canRun("taskset", ["-c", "0", "true"]);

function canRun(command: string, argv: string[]): boolean {
  try {
    execFileSync(command, argv, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** `node args` pinned to a core when the machine allows it. */
export function nodeOn(core: string, argv: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const command = pinnable ? "taskset" : process.execPath;
  const full = pinnable ? ["-c", core, process.execPath, ...argv] : argv;
  return spawn(command, full, {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** The first stdout line of a child that matches, parsed as JSON. */
export function firstJsonLine<T>(
  child: ChildProcess,
  match: (line: string) => boolean,
): Promise<T> {
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
export function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100;
}

/** Peak resident set (VmHWM) of a process, in MiB. */
export function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]) / 1024;
}

/** Resident set (VmRSS) of a process right now, in MiB. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) / 1024;
}

/** A port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export interface Server {
  readonly arm: string;
  readonly url: string;
  readonly dbPath: string;
  readonly child: ChildProcess;
  readonly probeFile: string;
  /** Event-loop delay since the previous call (NaN fields when the probe did not answer). */
  window(): Promise<ProbeWindow>;
  stop(): Promise<void>;
}

export async function startServer(
  arm: string,
  ingress: LoadSpec["ingress"],
  dir: string,
  /** More service settings (the service arms only). */
  env: Record<string, string> = {},
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
      // As deployed: the exposition on, so the instruments do their work.
      OTEL_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_PROMETHEUS_PORT: String(await freePort()),
      METRICS_RETENTION_ENABLED: "false",
      METRICS_RATE_LIMIT: "100000000",
      METRICS_API_KEY_BENCH_GATEWAY: KEY,
      // One load generator on one address stands for many clients (as a load
      // balancer would): the per-address connection cap is not what is measured.
      METRICS_MAX_CONNECTIONS_PER_ADDRESS: "4096",
      LOG_LEVEL: "info",
      ...env,
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
          const read = JSON.parse(readFileSync(probeFile, "utf8")) as ProbeWindow;
          if (read.window === window) return read;
        } catch {
          // not written yet
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      return {
        window,
        loopDelayP50Ms: Number.NaN,
        loopDelayP99Ms: Number.NaN,
        loopDelayMaxMs: Number.NaN,
        cpu: { user: Number.NaN, system: Number.NaN },
        heapUsedMiB: Number.NaN,
        heapTotalMiB: Number.NaN,
        externalMiB: Number.NaN,
        majorGcs: [],
      };
    },
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const child = nodeOn(LOAD_CORE, [join(DIST, "ingest", "load.js"), JSON.stringify(spec)]);
  return await firstJsonLine<LoadResult>(child, (l) => l.startsWith("{"));
}
