import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const MAIN = join(import.meta.dirname, "..", "..", "dist", "src", "main.js");

/** The service running as its own process, as `npm start` runs it. */
export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
  /** Everything written to stdout and stderr so far. */
  output(): { stdout: string; stderr: string };
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
}

/** Starts `node dist/src/main.js` (built by `npm test`) and waits until it listens. */
export async function spawnService(env: Record<string, string>): Promise<ServiceProcess> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "npm run build" (npm test does)`);
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? "",
      METRICS_SERVICE_HOST: "127.0.0.1",
      METRICS_SERVICE_PORT: "0",
      OTEL_PROMETHEUS_ENABLED: "false",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`service did not start:\n${stdout}\n${stderr}`)),
      15_000,
    );
    const check = () => {
      for (const line of stdout.split("\n")) {
        if (!line.includes('"listening"')) continue;
        clearTimeout(timer);
        child.stdout?.off("data", check);
        resolve((JSON.parse(line) as { port: number }).port);
        return;
      }
    };
    child.stdout?.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`service exited with ${code} before listening:\n${stdout}\n${stderr}`));
    });
  });
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => ({ stdout, stderr }),
    exited,
  };
}
