import pg from "pg";
import type { StorageError } from "../storage-error.js";
import { pgStorageError } from "./errors.js";

/** Options of {@link createPgPool}. */
export interface PgPoolOptions {
  /** `postgres://user@host:port/database`; `?options=-c search_path=...` selects a schema. */
  readonly url: string;
  /** Most connections this replica holds. */
  readonly max: number;
  /**
   * How long opening a connection, or waiting for one from a full pool, may
   * take before it fails as unavailable, in ms (default 5000, never above
   * `queryTimeoutMillis`).
   */
  readonly connectionTimeoutMillis?: number;
  /** Name shown in `pg_stat_activity`. */
  readonly applicationName?: string;
  /**
   * How long a query may go unanswered before it fails as unavailable, in ms,
   * its wait for a connection included when run by {@link query} (0: no
   * bound, for migrations); a half-open or silent connection never answers.
   * The service passes `METRICS_STORAGE_TIMEOUT_MS`, which start-up keeps
   * below the one port's request timeout, so that a request waiting for
   * PostgreSQL is answered UNAVAILABLE before its stream can be reset.
   */
  readonly queryTimeoutMillis: number;
}

/** The default bound on opening a connection or waiting for one. */
const CONNECTION_TIMEOUT_MILLIS = 5000;

/** OID of `bigint`: counts and ids, which stay well inside a double here. */
const INT8_OID = 20;

/**
 * A connection pool whose `bigint` values read as numbers (counts, ids,
 * millisecond times), set on this pool only, not on the driver globally.
 */
export function createPgPool(options: PgPoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max,
    connectionTimeoutMillis: Math.min(
      options.connectionTimeoutMillis ?? CONNECTION_TIMEOUT_MILLIS,
      options.queryTimeoutMillis || Number.POSITIVE_INFINITY,
    ),
    idleTimeoutMillis: 30_000,
    // A peer gone without a word (a partition, a firewall's drop) is noticed.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // Client-side: the server's statement_timeout would not end a wait for a
    // silent network (its cancellation is never heard), and as a startup
    // parameter it is refused by poolers such as PgBouncer.
    ...(options.queryTimeoutMillis === 0 ? {} : { query_timeout: options.queryTimeoutMillis }),
    application_name: options.applicationName ?? "mcp-metrics",
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8_OID && format !== "binary"
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection the server dropped is reported here; the pool replaces it.
  pool.on("error", () => {});
  return pool;
}

/**
 * SQLite's `datetime('now')` text on PostgreSQL (UTC, `YYYY-MM-DD HH:MM:SS`):
 * the contract's `*_at` columns keep that format on both backends.
 */
export const NOW_TEXT = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')";

/** Query parameters of a connection URL that hold secrets. */
const SECRET_PARAMETERS = ["password", "sslpassword"];

/** The URL with its passwords hidden (user info and query parameters), for logs. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    for (const name of SECRET_PARAMETERS) {
      if (parsed.searchParams.has(name)) parsed.searchParams.set(name, "***");
    }
    return parsed.toString();
  } catch {
    return "postgres://(unparsable)";
  }
}

/** Runs `work` in one transaction on one connection; rolls back and rethrows on failure. */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch((rollback: Error) => {
      broken = rollback; // the connection is gone: do not hand it out again
    });
    throw error;
  } finally {
    client.release(broken);
  }
}

/**
 * Runs a query; a failure comes as a {@link StorageError}, so that callers
 * answer it as storage trouble (503 with `Retry-After` when PostgreSQL is
 * unreachable), never as an internal error. It fails within the pool's query
 * timeout, its wait for a connection included: the pool bounds each of the
 * two alone, so a query that waited long for a connection could otherwise
 * take twice as long.
 */
export async function query<T extends pg.QueryResultRow = pg.QueryResultRow>(
  db: pg.Pool,
  text: string,
  values?: unknown[],
): Promise<pg.QueryResult<T>> {
  return bounded(db, db.query<T>(text, values));
}

/** {@link query}, each row an array of its columns in the statement's order. */
export async function queryArrays(
  db: pg.Pool,
  text: string,
  values: unknown[],
): Promise<unknown[][]> {
  const config: pg.QueryArrayConfig = { text, values, rowMode: "array" };
  return (await bounded(db, db.query(config))).rows;
}

/** A query's work within the pool's query timeout, its failure a {@link StorageError}. */
async function bounded<R>(db: pg.Pool, work: Promise<R>): Promise<R> {
  const bound = db.options.query_timeout ?? 0;
  try {
    return bound > 0 ? await withinMillis(work, bound, queryTimeout) : await work;
  } catch (error) {
    throw pgStorageError(error);
  }
}

/** A query past its bound, as the driver reports its own read timeout: a connection failure (class 08). */
function queryTimeout(millis: number): Error {
  return Object.assign(new Error(`PostgreSQL did not answer within ${millis} ms`), {
    code: "08006",
  });
}

/**
 * `work`, or the error `timedOut` makes once `millis` have passed. The work
 * goes on (bounded by the driver's own timeouts); its late failure is ignored.
 */
export async function withinMillis<T>(
  work: Promise<T>,
  millis: number,
  timedOut: (millis: number) => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  work.catch(() => {});
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timedOut(millis)), millis);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** `?` placeholders as PostgreSQL's `$1`, `$2`, … (outside quoted text): SQL written once for both backends. */
export function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/'(?:[^']|'')*'|\?/g, (token) => (token === "?" ? `$${++n}` : token));
}
