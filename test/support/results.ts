import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { onPostgres } from "./database.js";

/*
 * Result files of the long runs whose figures README quotes (`npm run
 * test:crash`, `npm run test:fuzz`, `npm run bench:retention`). When
 * RESULTS_DIR is set (those npm scripts set it to bench/results), a run
 * writes `<name>-<backend>-<timestamp>.json` there: small, with the date, the
 * commit and the numbers, to be committed beside the figure it backs. Plain
 * `npm test` sets nothing and writes nothing.
 */

/** The checkout's commit, and whether the working tree had changes (the run measured those too). */
function checkout(): { commit: string; dirty: boolean } {
  const git = (...args: string[]) =>
    execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  try {
    return {
      commit: git("rev-parse", "--short", "HEAD"),
      dirty: git("status", "--porcelain") !== "",
    };
  } catch {
    return { commit: "unknown", dirty: false };
  }
}

/** Writes a run's result when RESULTS_DIR is set; returns the file written, if any. */
export function writeResult(name: string, numbers: Record<string, unknown>): string | undefined {
  const dir = process.env.RESULTS_DIR;
  if (!dir) return undefined;
  const date = new Date();
  const backend = onPostgres ? "postgres" : "sqlite";
  const file = join(
    resolve(dir),
    `${name}-${backend}-${date.toISOString().replace(/[:.]/g, "-")}.json`,
  );
  mkdirSync(resolve(dir), { recursive: true });
  const result = {
    name,
    date: date.toISOString(),
    ...checkout(),
    backend,
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "unknown", node: process.version },
    ...numbers,
  };
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.info(`result written: ${file}`);
  return file;
}
