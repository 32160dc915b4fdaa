import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3, { type Database } from "better-sqlite3";
import { type RunningService, startService } from "../../src/app.js";
import { createKeyAdmin } from "../../src/auth/key-admin.js";
import type { KeyScope } from "../../src/auth/principal.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { openStorage } from "../../src/storage/drivers.js";
import { freshPgSchema, onPostgres, pgTestDb, sqliteTestDb, type TestDb } from "./database.js";

export { countIn, holdWriteLock, jsonField, onPostgres, type TestDb } from "./database.js";

/**
 * A real service on 127.0.0.1 and a free port, with its own temporary SQLite
 * file, or (in the PostgreSQL project) its own schema in the tests' PostgreSQL.
 */
export interface TestService {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** The SQLite file (empty on PostgreSQL). */
  readonly dbPath: string;
  /** The environment that points another service at this one's database (a second replica). */
  readonly storageEnv: Readonly<Record<string, string>>;
  /** The service's database, on either backend, for reading and writing rows. */
  readonly sql: TestDb;
  /** The API key configured for service `test-service`. */
  readonly key: string;
  /**
   * A key of `scope` (default `ingest`) for `service` (an ingest key may only
   * report as its own service), made once per service and scope through the
   * key CLI's code path and loaded into the running service at once.
   */
  keyFor(service: string, scope?: KeyScope): Promise<string>;
  readonly running: RunningService;
  /** A read-only connection to the service's SQLite file, for checking rows (SQLite only). */
  readonly db: Database;
  close(): Promise<void>;
}

/** Makes a temporary directory that {@link TestService.close} or the caller removes. */
export function tempDir(prefix = "mcp-metrics-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts the service in this process with the given environment on top of test defaults. */
export async function startTestService(env: Record<string, string> = {}): Promise<TestService> {
  const dir = tempDir();
  const key = `test-${randomBytes(12).toString("hex")}`;
  const dbPath = join(dir, "metrics.db");
  // On PostgreSQL, a schema of its own unless the test points it at another service's.
  const schema =
    onPostgres && env.DATABASE_URL === undefined && env.SQLITE_DB_PATH === undefined
      ? await freshPgSchema()
      : undefined;
  const config = loadConfig({
    METRICS_SERVICE_HOST: "127.0.0.1",
    METRICS_SERVICE_PORT: "0",
    SQLITE_DB_PATH: dbPath,
    ...(schema ? { DATABASE_URL: schema.url } : {}),
    LOG_LEVEL: "silent",
    // Tests that read the exposition enable it on a free port of their own.
    OTEL_PROMETHEUS_ENABLED: "false",
    METRICS_API_KEY_TEST_SERVICE: key,
    ...env,
  });
  let running: RunningService;
  try {
    running = await startService(config, createLogger(config.logLevel));
  } catch (error) {
    await schema?.drop();
    throw error;
  }
  const databaseUrl = config.databaseUrl;
  // The database the service opened: SQLITE_DB_PATH may point at another test's.
  const db =
    databaseUrl === undefined
      ? new BetterSqlite3(config.sqlitePath, { readonly: true })
      : sqliteOnlyHandle();
  const sql = databaseUrl === undefined ? sqliteTestDb(config.sqlitePath) : pgTestDb(databaseUrl);
  const port = running.address.port;
  const serviceKeys = new Map<string, string>([["test-service", key]]);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    dbPath: databaseUrl === undefined ? config.sqlitePath : "",
    storageEnv:
      databaseUrl === undefined
        ? { SQLITE_DB_PATH: config.sqlitePath }
        : { DATABASE_URL: databaseUrl },
    sql,
    key,
    async keyFor(service, scope = "ingest") {
      const name = scope === "ingest" ? service : `${service} (${scope})`;
      let made = serviceKeys.get(name);
      if (made === undefined) {
        const storage = await openStorage(config);
        try {
          made = (
            await createKeyAdmin(storage.keys).create({
              service,
              scope,
              rateLimit: config.rateLimitPerMinute,
            })
          ).key;
        } finally {
          await storage.close();
        }
        await running.registry.reload();
        serviceKeys.set(name, made);
      }
      return made;
    },
    running,
    db,
    async close() {
      await running.close();
      if (databaseUrl === undefined) db.close();
      await sql.close();
      await schema?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What `svc.db` is on PostgreSQL: a handle whose every use says to use `svc.sql` instead. */
function sqliteOnlyHandle(): Database {
  return new Proxy({} as Database, {
    get(_target, property) {
      if (property === "close") return () => {};
      throw new Error(`svc.db.${String(property)}: svc.db is SQLite's; use svc.sql on PostgreSQL`);
    },
  });
}

/**
 * The database of a service run as its own process (`spawnService`), on the
 * suite's backend: a SQLite file in `dir`, or a schema of its own in the
 * tests' PostgreSQL. Pass `env` to `spawnService` (again for a restart).
 */
export interface ProcessStorage {
  readonly env: Readonly<Record<string, string>>;
  /** A connection to it, opened at first use (once the service has made its tables). */
  sql(): TestDb;
  /** Closes the connection and drops the schema (the caller removes `dir`). */
  close(): Promise<void>;
}

export async function processStorage(dir: string, file = "metrics.db"): Promise<ProcessStorage> {
  const schema = onPostgres ? await freshPgSchema() : undefined;
  const path = join(dir, file);
  let sql: TestDb | undefined;
  return {
    env: schema ? { DATABASE_URL: schema.url } : { SQLITE_DB_PATH: path },
    sql() {
      sql ??= schema ? pgTestDb(schema.url) : sqliteTestDb(path);
      return sql;
    },
    async close() {
      await sql?.close();
      await schema?.drop();
    },
  };
}

/** Counts rows of a table of a SQLite database, optionally filtered by a WHERE clause. */
export function countRows(
  db: Database,
  table: string,
  where = "1 = 1",
  ...params: unknown[]
): number {
  const row = db.prepare(`SELECT count(*) AS n FROM ${table} WHERE ${where}`).get(...params) as {
    n: number;
  };
  return row.n;
}

/** A TCP port that was free a moment ago, for listeners the service cannot report (the Prometheus exporter). */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A free port for a test service's Prometheus exposition, and the environment
 * that serves it there, on 127.0.0.1.
 */
export async function exposition(): Promise<{ port: number; env: Record<string, string> }> {
  const port = await freePort();
  return {
    port,
    env: {
      OTEL_PROMETHEUS_ENABLED: "true",
      OTEL_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_PROMETHEUS_PORT: String(port),
    },
  };
}

/** Prometheus exposition text of a running service, as a scrape would read it. */
export async function scrape(port: number): Promise<string> {
  return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** The sample lines of one metric family in an exposition. */
export function samples(exposition: string, name: string): string[] {
  return exposition
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

/** One sample of an exposition: its labels, unescaped, and its value. */
export interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of one metric family in an exposition, parsed. */
export function seriesOf(exposition: string, name: string): Sample[] {
  return samples(exposition, name).map((line) => {
    const labels: Record<string, string> = {};
    const close = line.lastIndexOf("}");
    for (const match of line.slice(0, close + 1).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[match[1] as string] = (match[2] as string).replace(/\\(.)/g, (_m, c: string) =>
        c === "n" ? "\n" : c,
      );
    }
    return {
      labels,
      value: Number(
        line
          .slice(close + 1)
          .trim()
          .split(/\s+/)[0],
      ),
    };
  });
}
