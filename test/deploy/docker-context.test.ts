// backends: sqlite only: the Docker build context and Dockerfile
import { execFile, execFileSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..", "..");

/**
 * @balena/dockerignore: Docker's own matching rules. It is CommonJS
 * (`module.exports = factory`) while its types declare an ES default export,
 * so it is required rather than imported.
 */
const ignore: typeof import("@balena/dockerignore").default = createRequire(import.meta.url)(
  "@balena/dockerignore",
);

/** The build context's filter. */
const context = ignore().add(readFileSync(join(ROOT, ".dockerignore"), "utf8"));

/** The sources of the Dockerfile's `COPY` from the context (not `--from` another stage). */
function copiedFromContext(): string[] {
  const dockerfile = readFileSync(join(ROOT, "deploy", "Dockerfile"), "utf8");
  const sources = dockerfile
    .split("\n")
    .filter((line) => /^COPY\s/.test(line) && !line.includes("--from="))
    .flatMap((line) => line.trim().split(/\s+/).slice(1, -1));
  return [...new Set(sources)];
}

/** The repository's files, tracked and not yet tracked (git's ignored ones left out). */
function repositoryFiles(): string[] {
  const out = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  return out.split("\n").filter((f) => f !== "");
}

describe(".dockerignore", () => {
  const sources = copiedFromContext();

  it("should keep every file the Dockerfile copies from the context", () => {
    expect(sources).toEqual([
      "package.json",
      "package-lock.json",
      ".npmrc",
      "tsconfig.json",
      "gen",
      "src",
      "clients",
      "ui",
    ]);
    const files = repositoryFiles();
    for (const source of sources) {
      const under = files.filter((f) => f === source || f.startsWith(`${source}/`));
      expect(under.length, source).toBeGreaterThan(0);
      expect(under.filter((f) => context.ignores(f))).toEqual([]);
    }
  });

  it("should keep the Dockerfile, which older builders look for in the context", () => {
    expect(context.ignores("deploy/Dockerfile")).toBe(false);
    expect(context.ignores("deploy/compose.yml")).toBe(true);
  });

  it("should leave out what is built, installed or stored locally, and the history", () => {
    for (const path of [
      ".git/HEAD",
      "node_modules/vitest/package.json",
      "clients/typescript/node_modules/x/package.json",
      "dist/src/main.js",
      "clients/typescript/dist/clients/typescript/src/index.js",
      "data/metrics.db",
      "data/metrics.db-wal",
      "metrics.db",
      "src/metrics.db-shm",
      "coverage/index.html",
      "bench/results/ingest.md",
      "clients/python/mcp_metrics_client/__pycache__/client.cpython-311.pyc",
      ".env",
    ]) {
      expect(context.ignores(path), path).toBe(true);
    }
  });

  it("should compile what the image compiles from the context alone", async () => {
    // The build stage's `npx tsc -p tsconfig.json`, on a copy of what passes
    // the filter (node_modules stands for the stage's `npm ci`).
    const dir = mkdtempSync(join(tmpdir(), "mcp-metrics-docker-context-"));
    try {
      const files = repositoryFiles().filter(
        (f) => sources.some((s) => f === s || f.startsWith(`${s}/`)) && !context.ignores(f),
      );
      for (const file of files) {
        mkdirSync(dirname(join(dir, file)), { recursive: true });
        cpSync(join(ROOT, file), join(dir, file));
      }
      symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
      const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
      await run(process.execPath, [tsc, "-p", "tsconfig.json", "--noEmit"], { cwd: dir });
      // The history page's `npm run build:ui`: its type check, and its bundle from the context alone.
      await run(process.execPath, [tsc, "-p", "ui/tsconfig.json"], { cwd: dir });
      await build({
        absWorkingDir: dir,
        entryPoints: ["ui/app.ts"],
        bundle: true,
        format: "esm",
        outdir: "dist/ui",
        logLevel: "silent",
      });
      expect(existsSync(join(dir, "dist", "ui", "app.js"))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
