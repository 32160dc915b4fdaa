import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, tempDir } from "../support/service.js";

/** One series of an instant query's answer. */
export interface Sample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/** A Prometheus server (Debian's package, .ci/test-deps) scraping one target every second. */
export interface RealPrometheus {
  readonly url: string;
  /** An instant query's series; throws with Prometheus's error when the query is refused. */
  query(promql: string): Promise<Sample[]>;
  /** The first series' value, NaN when there is none. */
  scalar(promql: string): Promise<number>;
  /** Waits until `promql` has a result (at most 15 s); whether it came. */
  eventually(promql: string): Promise<boolean>;
  close(): void;
}

/** Options of {@link startPrometheus}. */
export interface PrometheusOptions {
  /** The port of the exposition to scrape, on 127.0.0.1. */
  readonly targetPort: number;
  /** The scrape job's name: the `job` label of every series. */
  readonly job: string;
  /** Rule files to load. */
  readonly ruleFiles?: readonly string[];
}

/** Starts Prometheus on a free port of 127.0.0.1 and waits until it is ready. */
export async function startPrometheus(options: PrometheusOptions): Promise<RealPrometheus> {
  const dir = tempDir("prometheus-");
  const port = await freePort();
  writeFileSync(
    join(dir, "prometheus.yml"),
    [
      "global:",
      "  scrape_interval: 1s",
      "  evaluation_interval: 1s",
      "rule_files:",
      ...(options.ruleFiles ?? []).map((file) => `  - ${file}`),
      "scrape_configs:",
      `  - job_name: ${options.job}`,
      "    static_configs:",
      `      - targets: ["127.0.0.1:${options.targetPort}"]`,
      "",
    ].join("\n"),
  );
  const child = spawn(
    "prometheus",
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const url = `http://127.0.0.1:${port}`;
  const query = async (promql: string): Promise<Sample[]> => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data: { result: Sample[] };
    };
    if (body.status !== "success") throw new Error(`${promql}: ${body.error}`);
    return body.data.result;
  };
  const prometheus: RealPrometheus = {
    url,
    query,
    scalar: async (promql) => Number((await query(promql))[0]?.value[1]),
    async eventually(promql) {
      for (let i = 0; i < 150; i++) {
        if ((await query(promql)).length > 0) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    },
    close: () => child.kill(),
  };
  for (let i = 0; i < 300; i++) {
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return prometheus;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error("prometheus did not become ready");
}
