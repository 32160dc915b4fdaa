import { randomBytes } from "node:crypto";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import { numbered } from "../../src/storage/postgres/pool.js";

/**
 * The storage backend the suites run on: SQLite unless the vitest project
 * sets `METRICS_TEST_BACKEND=postgres` (see vitest.config.ts), which runs
 * every suite again on PostgreSQL but those whose header says
 * `// backends: sqlite only: <reason>` (docs/testing.md).
 */
export const onPostgres = process.env.METRICS_TEST_BACKEND === "postgres";

/** The tests' PostgreSQL (`.ci/test-deps` starts it): trust auth, database `test`. */
export const PG_TEST_URL =
  process.env.METRICS_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/**
 * A database as the tests read and write it, whichever the backend. SQL is
 * written with `?` placeholders; PostgreSQL's booleans read as 1 and 0, as
 * SQLite's do, and counts as numbers, so assertions hold on both.
 */
export interface TestDb {
  all<T = Record<string, unknown>>(sql: string, ...params: unknown[]): Promise<T[]>;
  get<T = Record<string, unknown>>(sql: string, ...params: unknown[]): Promise<T | undefined>;
  /** Runs a write; returns how many rows it changed. */
  run(sql: string, ...params: unknown[]): Promise<number>;
  close(): Promise<void>;
}

/** `?` placeholders as PostgreSQL's `$1`, `$2`, …: the service's own helper. */
export const numberedPlaceholders = numbered;

/** A connection to the SQLite file. */
export function sqliteTestDb(path: string): TestDb {
  const db = new BetterSqlite3(path);
  return {
    all: async <T>(sql: string, ...params: unknown[]) => db.prepare(sql).all(...params) as T[],
    get: async <T>(sql: string, ...params: unknown[]) =>
      db.prepare(sql).get(...params) as T | undefined,
    run: async (sql, ...params) => db.prepare(sql).run(...params).changes,
    close: async () => {
      db.close();
    },
  };
}

const normalized = (row: Record<string, unknown>): Record<string, unknown> => {
  for (const [key, value] of Object.entries(row)) {
    if (typeof value === "boolean") row[key] = value ? 1 : 0;
  }
  return row;
};

/** A client of one PostgreSQL database URL (its schema selected by the URL's `options`). */
export function pgTestDb(url: string): TestDb {
  const pool = new pg.Pool({
    connectionString: url,
    max: 2,
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === 20 ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  const query = (sql: string, params: unknown[]) => pool.query(numberedPlaceholders(sql), params);
  return {
    all: async <T>(sql: string, ...params: unknown[]) =>
      (await query(sql, params)).rows.map(normalized) as T[],
    get: async <T>(sql: string, ...params: unknown[]) => {
      const row = (await query(sql, params)).rows[0];
      return (row && normalized(row)) as T | undefined;
    },
    run: async (sql, ...params) => (await query(sql, params)).rowCount ?? 0,
    close: () => pool.end(),
  };
}

/** A new, empty schema in the tests' PostgreSQL, and the `DATABASE_URL` whose connections use it. */
export async function freshPgSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_TEST_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_TEST_URL);
  url.searchParams.set("options", `-c search_path=${schema}`);
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: PG_TEST_URL });
      await client.connect();
      try {
        // A service killed mid-commit leaves its server-side session running
        // until PostgreSQL notices the closed socket; the DROP may deadlock
        // with that session's locks once: try again after it is gone.
        for (let attempt = 1; ; attempt++) {
          try {
            await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
            return;
          } catch (error) {
            if ((error as { code?: string }).code !== "40P01" || attempt === 5) throw error;
            await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
          }
        }
      } finally {
        await client.end();
      }
    },
  };
}

/** Counts rows of a table, optionally filtered by a WHERE clause. */
export async function countIn(
  db: TestDb,
  table: string,
  where = "1 = 1",
  ...params: unknown[]
): Promise<number> {
  const row = await db.get<{ n: number }>(
    `SELECT count(*) AS n FROM ${table} WHERE ${where}`,
    ...params,
  );
  return Number(row?.n ?? 0);
}

/**
 * Makes every `INSERT` or `UPDATE` of a table fail, as a failing disk would,
 * with a trigger on either backend; returns the undo.
 */
export async function refuseWrites(
  db: TestDb,
  table: string,
  operation: "INSERT" | "UPDATE",
): Promise<() => Promise<void>> {
  const name = `refuse_${table}_${operation.toLowerCase()}`;
  if (onPostgres) {
    await db.run(
      `CREATE FUNCTION ${name}() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql`,
    );
    await db.run(
      `CREATE TRIGGER ${name} BEFORE ${operation} ON ${table} FOR EACH ROW EXECUTE FUNCTION ${name}()`,
    );
    return async () => {
      await db.run(`DROP TRIGGER IF EXISTS ${name} ON ${table}`);
      await db.run(`DROP FUNCTION IF EXISTS ${name}()`);
    };
  }
  await db.run(
    `CREATE TRIGGER ${name} BEFORE ${operation} ON ${table} BEGIN SELECT RAISE(ABORT, 'refused'); END`,
  );
  return async () => {
    await db.run(`DROP TRIGGER IF EXISTS ${name}`);
  };
}

/**
 * A text field of a JSON column (`dimensions`, `metadata`) as an SQL
 * expression, on either backend: `json_extract` on SQLite, `->>` on PostgreSQL
 * (where the columns are text holding JSON, as on SQLite).
 */
export function jsonField(column: string, key: string): string {
  if (!/^\w+$/.test(column) || !/^\w+$/.test(key)) throw new Error(`jsonField: ${column}.${key}`);
  return onPostgres ? `(${column}::jsonb ->> '${key}')` : `json_extract(${column}, '$.${key}')`;
}

/**
 * Holds the database's write lock from another connection, as another process
 * would, until the returned function is called: `BEGIN IMMEDIATE` on the
 * SQLite file, a `SHARE` lock on `metrics` on PostgreSQL (every commit of
 * events inserts there, so each waits for the release). `storage` is a test
 * service's `storageEnv`. Releasing twice is harmless.
 */
export async function holdWriteLock(
  storage: Readonly<Record<string, string>>,
): Promise<() => Promise<void>> {
  const url = storage.DATABASE_URL;
  if (url !== undefined) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query("BEGIN");
    await client.query("LOCK TABLE metrics IN SHARE MODE");
    return once(async () => {
      try {
        await client.query("ROLLBACK");
      } finally {
        await client.end();
      }
    });
  }
  const path = storage.SQLITE_DB_PATH;
  if (path === undefined) throw new Error("holdWriteLock: no SQLITE_DB_PATH nor DATABASE_URL");
  const db = new BetterSqlite3(path);
  db.exec("BEGIN IMMEDIATE");
  return once(async () => {
    try {
      db.exec("ROLLBACK");
    } finally {
      db.close();
    }
  });
}

/** `release` that does its work on the first call only (a test's `finally` may call it again). */
function once(release: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => {
    done ??= release();
    return done;
  };
}
