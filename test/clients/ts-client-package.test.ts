// backends: sqlite only: the client's packaging (npm pack, install, import by name); what its events store is ts-client-emitters', on both
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestService, type TestService, tempDir } from "../support/service.js";

const run = promisify(execFile);
const REPOSITORY = join(import.meta.dirname, "..", "..");
const PACKAGE_DIR = join(REPOSITORY, "clients", "typescript");
const TSC = join(REPOSITORY, "node_modules", "typescript", "bin", "tsc");

/**
 * The environment for npm: the caller's, without the variables an enclosing
 * `npm test` sets for its script (`npm_package_*`, `npm_lifecycle_*`,
 * `npm_config_local_prefix`...), which would point the inner npm at this
 * project. `npm_config_*` settings the caller chose (a cache, a registry) stay.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    const lower = name.toLowerCase();
    const script = lower.startsWith("npm_") && !lower.startsWith("npm_config_");
    if (!script && lower !== "npm_config_local_prefix") env[name] = value;
  }
  return { ...env, npm_config_update_notifier: "false" };
}

/**
 * Installs a tarball from the npm cache alone if it can, else lets npm ask the
 * registry for what the cache lacks; returns the mode that worked. npm 11
 * resolves a new dependency from its full packument, while `npm ci` caches
 * only the abbreviated one when the lockfile has no `resolved` URLs (as with
 * `omit-lockfile-registry-resolved`), so `--offline` can fail with ENOTCACHED
 * on a machine that has every tarball.
 */
async function installTarball(
  project: string,
  tarball: string,
  env: NodeJS.ProcessEnv,
): Promise<"--offline" | "--prefer-offline"> {
  const args = ["install", "--no-audit", "--no-fund", tarball];
  try {
    await run("npm", [...args, "--offline"], { cwd: project, env });
    return "--offline";
  } catch (error) {
    if (!String((error as { stderr?: unknown }).stderr).includes("ENOTCACHED")) throw error;
    await run("npm", [...args, "--prefer-offline"], { cwd: project, env });
    return "--prefer-offline";
  }
}

/** A consumer that only knows the package's public name, as a user of it would. */
const CONSUMER = `import { createMetricsClient } from "@mcp-metrics/client";

const tag = process.env.METRICS_TAG;
const client = createMetricsClient({
  baseUrl: process.env.METRICS_URL,
  apiKey: process.env.METRICS_API_KEY,
  service: "test-service",
  version: "0.1.0",
  instanceId: "package-consumer",
});
client.auth({ success: true, method: "jwt", server: tag, userHash: "3f79bb7b435b", durationMs: 4.5 });
client.toolExecution({
  toolName: "current_time",
  serverName: tag,
  serverPath: "/currenttime",
  method: "tools/call",
  success: true,
  inputSizeBytes: 120,
  outputSizeBytes: 2048,
  durationMs: 12,
});
const drained = await client.close();
console.log(
  JSON.stringify({ drained, stats: client.stats(), resolved: import.meta.resolve("@mcp-metrics/client") }),
);
`;

/**
 * A consumer's TypeScript, type-checked against the installed package: were
 * the package's types not found, or found as `any` (its own, or those of the
 * generated code it re-exports, which come from @bufbuild/protobuf), the
 * import would fail or a `@ts-expect-error` line would be an unused
 * directive, itself an error.
 */
const TYPED_CONSUMER = `import { createMetricsClient, IngestService, type MetricsClient } from "@mcp-metrics/client";

const client: MetricsClient = createMetricsClient({
  baseUrl: "http://127.0.0.1:8890",
  apiKey: "key",
  service: "consumer",
});
client.auth({ success: true, method: "jwt", durationMs: 4.5 });
// @ts-expect-error: success is a boolean
client.auth({ success: "yes", method: "jwt" });
export const emitted: number = client.stats().emitted;
// @ts-expect-error: the service descriptor's methods are typed
IngestService.method.nope;
`;

/**
 * The resolution modes a consumer may compile with, each with the `module`
 * it goes with: node10 (`moduleResolution: node`, which ignores `exports`
 * and reads `types`), node16 and nodenext (`exports` with its `types`
 * condition, from an ES module), and bundler.
 */
const RESOLUTIONS = [
  ["node10", "commonjs"],
  ["node16", "node16"],
  ["nodenext", "nodenext"],
  ["bundler", "esnext"],
] as const;

describe("the TypeScript client as an npm package", () => {
  let svc: TestService;
  const dir = tempDir("mcp-metrics-package-");
  const consumer = join(dir, "consumer");
  const installed = join(consumer, "node_modules", "@mcp-metrics", "client");
  beforeAll(async () => {
    svc = await startTestService();
    const env = npmEnv();
    // prepack builds the package; the tarball holds what a registry would serve.
    const packs = join(dir, "packs");
    mkdirSync(packs);
    await run("npm", ["pack", "--pack-destination", packs], { cwd: PACKAGE_DIR, env });
    const tarballs = readdirSync(packs).filter((name) => name.endsWith(".tgz"));
    expect(tarballs).toEqual([expect.stringMatching(/^mcp-metrics-client-.+\.tgz$/)]);

    // A project of its own, outside this repository: only the tarball and its
    // declared dependencies (from the npm cache) can satisfy the import.
    mkdirSync(consumer);
    writeFileSync(
      join(consumer, "package.json"),
      JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }),
    );
    const mode = await installTarball(consumer, join(packs, tarballs[0] as string), env);
    if (mode !== "--offline") console.warn(`npm install ${mode}: the npm cache lacked metadata`);
  }, 120_000);
  afterAll(async () => {
    await svc?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("should install from its packed tarball and send events when imported by name", async () => {
    expect(existsSync(join(installed, "dist", "clients", "typescript", "src", "index.d.ts"))).toBe(
      true,
    );
    expect(existsSync(join(installed, "LICENSE"))).toBe(true);
    writeFileSync(join(consumer, "consumer.mjs"), CONSUMER);

    // Asynchronously: the service answering it runs in this process.
    const tag = `package-${process.pid}`;
    const { stdout } = await run(process.execPath, ["consumer.mjs"], {
      cwd: consumer,
      env: {
        PATH: process.env.PATH ?? "",
        METRICS_URL: svc.url,
        METRICS_API_KEY: svc.key,
        METRICS_TAG: tag,
      },
    });
    const report = JSON.parse(stdout) as {
      drained: boolean;
      stats: Record<string, number>;
      resolved: string;
    };
    expect(report.resolved.startsWith(`file://${installed}/`)).toBe(true);
    expect(report.drained).toBe(true);
    expect(report.stats).toMatchObject({
      emitted: 2,
      sent: 2,
      dropped: 0,
      rejected: 0,
      unauthenticated: 0,
      failed: 0,
      buffered: 0,
      inFlight: 0,
    });
    expect(svc.db.prepare("SELECT * FROM auth_metrics WHERE server = ?").all(tag)).toEqual([
      expect.objectContaining({
        service: "test-service",
        success: 1,
        method: "jwt",
        user_hash: "3f79bb7b435b",
        duration_ms: 4.5,
      }),
    ]);
    expect(svc.db.prepare("SELECT * FROM tool_metrics WHERE server_name = ?").all(tag)).toEqual([
      expect.objectContaining({
        service: "test-service",
        tool_name: "current_time",
        server_path: "/currenttime",
        method: "tools/call",
        success: 1,
        input_size_bytes: 120,
        output_size_bytes: 2048,
        duration_ms: 12,
      }),
    ]);
  }, 60_000);

  it.each(RESOLUTIONS)(
    "should type-check a consumer compiled with moduleResolution %s",
    async (resolution, module) => {
      const file = `typed-${resolution}.ts`;
      writeFileSync(join(consumer, file), TYPED_CONSUMER);
      // The consumer's own @types/node, as an emitting service has. Declaration
      // files are not type-checked (skipLibCheck, 2 s instead of 10 s a mode:
      // the package's build already compiles them); the directives above
      // catch types that do not resolve.
      const args = [
        ...["--noEmit", "--strict", "--exactOptionalPropertyTypes", "--skipLibCheck"],
        ...["--moduleResolution", resolution, "--module", module, "--target", "es2022"],
        ...["--types", "node", "--typeRoots", join(REPOSITORY, "node_modules", "@types"), file],
      ];
      const result = await run(process.execPath, [TSC, ...args], { cwd: consumer }).catch(
        (error: { stdout?: string }) => ({ stdout: `failed: ${error.stdout}` }),
      );
      expect(result.stdout).toBe("");
    },
    60_000,
  );
});
