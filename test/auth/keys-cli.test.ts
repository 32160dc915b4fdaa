import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postMetrics } from "../support/legacy.js";
import { startTestService, type TestService } from "../support/service.js";

const run = promisify(execFile);
const CLI = join(import.meta.dirname, "..", "..", "dist", "src", "cli.js");
const REGISTRY_KEY = "upstream-registry-key-for-rotation-0123";
const READ_ONLY = "this API key has the read scope: it may only query (QueryService, GET /export)";

describe("the keys CLI against a running service", () => {
  let svc: TestService;
  /** Runs `mcp-metrics keys ...` on the service's database; returns its parsed --json output. */
  const keys = async (...args: string[]) => {
    const { stdout } = await run(process.execPath, [CLI, "keys", ...args, "--json"], {
      env: { ...process.env, ...svc.storageEnv },
    });
    return JSON.parse(stdout) as Record<string, unknown> & Record<string, unknown>[];
  };
  /** The status of a legacy POST as `service` with `key`. */
  const post = async (key: string, service = "cli-svc") =>
    (await postMetrics(svc.url, { service, metrics: [{ type: "custom", value: 1 }] }, { key }))
      .status;
  const admin = async (key: string) =>
    (await fetch(`${svc.url}/admin/database/size`, { headers: { "x-api-key": key } })).status;

  beforeAll(async () => {
    // The service's own database, SQLite or PostgreSQL: the CLI reaches it by the same settings.
    svc = await startTestService({
      METRICS_KEY_RELOAD_MS: "100",
      METRICS_API_KEY_REGISTRY: REGISTRY_KEY,
    });
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should create a key, print it once, and have the running service honour it", async () => {
    const created = await keys("create", "--service", "cli-svc", "--rate-limit", "50");
    expect(created.key).toMatch(/^mcpm_[A-Za-z0-9_-]{43}[0-9a-f]{8}$/);
    expect(created.id).toMatch(/^key_[0-9a-f]{12}$/);
    await expect.poll(() => post(created.key as string), { timeout: 5_000 }).toBe(200);
    const listed = (await keys("list")) as unknown as Record<string, unknown>[];
    const row = listed.find((k) => k.id === created.id);
    expect(row).toMatchObject({ service: "cli-svc", scope: "ingest", active: true, rateLimit: 50 });
    const text = JSON.stringify(listed);
    expect(text).not.toContain(created.key as string);
    expect(text).not.toMatch(/[0-9a-f]{64}/); // nor any hash
    // A mistyped key (checksum off by one character) is refused like any unknown key.
    const typo = `${(created.key as string).slice(0, -1)}${(created.key as string).endsWith("0") ? "1" : "0"}`;
    expect(await post(typo)).toBe(401);
  });

  it("should refuse a revoked key with 401", async () => {
    const created = await keys("create", "--service", "cli-svc");
    await expect.poll(() => post(created.key as string), { timeout: 5_000 }).toBe(200);
    await keys("revoke", created.id as string);
    await expect.poll(() => post(created.key as string), { timeout: 5_000 }).toBe(401);
  });

  it("should refuse an expired key with 401", async () => {
    // Expiry is stored to the second: "3s" ends between 2 and 3 s from now.
    const created = await keys("create", "--service", "cli-svc", "--expires", "3s");
    await expect.poll(() => post(created.key as string), { timeout: 1_900 }).toBe(200);
    await expect.poll(() => post(created.key as string), { timeout: 6_000 }).toBe(401);
    const res = await postMetrics(
      svc.url,
      { service: "cli-svc", metrics: [] },
      { key: created.key as string },
    );
    expect(res.json).toEqual({ detail: "API key has expired" });
  });

  it("should keep the old key working for the rotation's grace, then only the new one", async () => {
    const old = await keys("create", "--service", "cli-svc");
    const rotated = await keys("rotate", old.id as string, "--grace", "3s");
    await expect.poll(() => post(rotated.key as string), { timeout: 5_000 }).toBe(200);
    expect(await post(old.key as string)).toBe(200);
    await expect.poll(() => post(old.key as string), { timeout: 8_000 }).toBe(401);
    expect(await post(rotated.key as string)).toBe(200);
    const now = await keys("rotate", rotated.id as string, "--grace", "0s");
    await expect.poll(() => post(rotated.key as string), { timeout: 5_000 }).toBe(401);
    await expect.poll(() => post(now.key as string), { timeout: 5_000 }).toBe(200);
  });

  it("should hold a key it creates to its service in audit mode, and let a rotated environment key keep reporting as another", async () => {
    // Audit, the default: the registry's key may report as nginx (the
    // upstream compose layout); a key made here for a service may not.
    const made = await keys("create", "--service", "cli-bound");
    await expect.poll(() => post(made.key as string, "cli-bound"), { timeout: 5_000 }).toBe(200);
    expect(await post(made.key as string, "nginx")).toBe(403);
    expect(await post(REGISTRY_KEY, "nginx")).toBe(200);
    const listed = (await keys("list")) as unknown as { id: string; source: string }[];
    const env = listed.find((k) => k.source === "env:METRICS_API_KEY_REGISTRY");
    const rotated = await keys("rotate", env?.id as string, "--grace", "0s");
    await expect.poll(() => post(rotated.key as string, "nginx"), { timeout: 5_000 }).toBe(200);
    const after = (await keys("list")) as unknown as { id: string; source: string }[];
    expect(after.find((k) => k.id === rotated.id)?.source).toBe(
      "rotated:env:METRICS_API_KEY_REGISTRY",
    );
    const again = await keys("rotate", made.id as string, "--grace", "0s");
    await expect.poll(() => post(again.key as string, "cli-bound"), { timeout: 5_000 }).toBe(200);
    expect(await post(again.key as string, "nginx")).toBe(403);
  });

  it("should create admin-scoped keys that the admin API accepts, and ingest keys it refuses", async () => {
    const adminKey = await keys("create", "--service", "ops", "--scope", "admin");
    const ingestKey = await keys("create", "--service", "cli-svc");
    await expect.poll(() => admin(adminKey.key as string), { timeout: 5_000 }).toBe(200);
    await expect.poll(() => admin(ingestKey.key as string), { timeout: 5_000 }).toBe(403);
  });

  it("should create a read key that keys list shows with scope read, that may only query, and that keeps its scope when rotated", async () => {
    const reader = await keys("create", "--service", "cli-reader", "--scope", "read");
    expect(reader).toMatchObject({ service: "cli-reader", scope: "read" });
    const listed = (await keys("list")) as unknown as Record<string, unknown>[];
    expect(listed.find((k) => k.id === reader.id)).toMatchObject({
      service: "cli-reader",
      scope: "read",
      active: true,
    });
    // The text listing names the scope in its third column.
    const { stdout } = await run(process.execPath, [CLI, "keys", "list"], {
      env: { ...process.env, ...svc.storageEnv },
    });
    expect(stdout).toMatch(
      new RegExp(`^${String(reader.id)} {2}cli-reader {2}read {2}active `, "m"),
    );
    // The running service takes it as a read key: refused events (403 naming
    // the scope), let through the door to GET /export.
    await expect.poll(() => post(reader.key as string, "cli-reader"), { timeout: 5_000 }).toBe(403);
    const refused = await postMetrics(
      svc.url,
      { service: "cli-reader", metrics: [{ type: "custom", value: 1 }] },
      { key: reader.key as string },
    );
    expect(refused.json).toEqual({ detail: READ_ONLY });
    const exported = await fetch(`${svc.url}/export`, {
      headers: { "x-api-key": reader.key as string },
    });
    expect([401, 403]).not.toContain(exported.status);
    expect(await admin(reader.key as string)).toBe(403);

    const rotated = await keys("rotate", reader.id as string, "--grace", "0s");
    expect(rotated).toMatchObject({ service: "cli-reader", scope: "read" });
    const after = (await keys("list")) as unknown as Record<string, unknown>[];
    expect(after.find((k) => k.id === rotated.id)).toMatchObject({ scope: "read", active: true });
    await expect
      .poll(() => post(rotated.key as string, "cli-reader"), { timeout: 5_000 })
      .toBe(403);
  });

  it("should refuse bad arguments with a message and a non-zero exit", async () => {
    const failure = (args: string[]) =>
      run(process.execPath, [CLI, "keys", ...args], {
        env: { ...process.env, ...svc.storageEnv },
      }).then(
        () => ({ code: 0, stderr: "" }),
        (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
      );
    // A command line it cannot read is 2, with the usage; a refusal is 1.
    expect(await failure(["create"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--service is required[\s\S]*usage:/),
    });
    expect(await failure(["rotate"])).toMatchObject({ code: 2 });
    expect(await failure(["frobnicate"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/unknown command: keys frobnicate/),
    });
    expect(await failure(["list", "--colour"])).toMatchObject({ code: 2 });
    expect(await failure(["create", "--service", "bad name"])).toMatchObject({ code: 1 });
    expect(await failure(["create", "--service", "x", "--scope", "write"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(
        /--scope must be ingest, read or admin, got write[\s\S]*usage:/,
      ),
    });
    expect(await failure(["create", "--service", "x", "--expires", "soon"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--expires: .*not a duration/),
    });
    expect(await failure(["revoke", "key_000000000000"])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/no key with id/),
    });
  });

  it("should answer --help and --version on stdout with 0", async () => {
    const help = await run(process.execPath, [CLI, "--help"]);
    expect(help.stdout).toMatch(/^usage:\n {2}mcp-metrics keys create/);
    expect(help.stderr).toBe("");
    const version = await run(process.execPath, [CLI, "--version"]);
    const { version: expected } = JSON.parse(readFileSync("package.json", "utf8")) as {
      version: string;
    };
    expect(version.stdout).toBe(`mcp-metrics ${expected}\n`);
  });

  it("should refuse a mistyped --db, creating nothing there, instead of listing an empty new database", async () => {
    if (svc.dbPath === "") return; // PostgreSQL: --db is SQLite's
    const typo = join(dirname(svc.dbPath), "nope", "metrics.db");
    const outcome = await run(process.execPath, [CLI, "keys", "list", "--db", typo]).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    expect(outcome).toEqual({
      code: 1,
      stderr: `mcp-metrics: no database at ${typo} (check --db or SQLITE_DB_PATH)\n`,
    });
    expect(existsSync(dirname(typo))).toBe(false);
  });

  it("should give a rotated key the lifetime its predecessor was issued for", async () => {
    const old = await keys("create", "--service", "cli-lifetime", "--expires", "30d");
    const rotated = await keys("rotate", old.id as string, "--grace", "1h");
    const listed = (await keys("list")) as unknown as { id: string; expiresAt: string | null }[];
    const expiresOf = (id: unknown) => listed.find((k) => k.id === id)?.expiresAt;
    const days = (at: string | null | undefined) =>
      (Date.parse(`${String(at).replace(" ", "T")}Z`) - Date.now()) / 86_400_000;
    expect(days(expiresOf(rotated.id))).toBeGreaterThan(29.9);
    expect(days(expiresOf(rotated.id))).toBeLessThanOrEqual(30);
    // The old one keeps working for its grace only, and is not rotated twice
    // (its expiry is now its grace's, no lifetime to hand on).
    expect(days(expiresOf(old.id))).toBeLessThan(0.05);
    const again = await run(process.execPath, [CLI, "keys", "rotate", old.id as string], {
      env: { ...process.env, ...svc.storageEnv },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    expect(again).toEqual({
      code: 1,
      stderr: `mcp-metrics: key ${String(old.id)} was already rotated (to ${String(rotated.id)}); rotate that one\n`,
    });
  });
});
