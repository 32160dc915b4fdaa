import pg from "pg";

/** Options of {@link createPgPool}. */
export interface PgPoolOptions {
  /** `postgres://user@host:port/database`; `?options=-c search_path=...` selects a schema. */
  readonly url: string;
  /** Most connections this replica holds. */
  readonly max: number;
  /** How long a request for a connection waits before it fails as unavailable, in ms. */
  readonly connectionTimeoutMillis?: number;
  /** Name shown in `pg_stat_activity`. */
  readonly applicationName?: string;
}

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
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5000,
    idleTimeoutMillis: 30_000,
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

/** The URL with its password hidden, for logs. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
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
