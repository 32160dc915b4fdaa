/**
 * What the soak reads of the service each sample, besides its own calls: a
 * Prometheus scrape (its time, its series, and the service's own counters of
 * outcomes), and the database, read-only and only where an index or a
 * counter answers at once.
 */
import { statSync } from "node:fs";
import BetterSqlite3 from "better-sqlite3";

/** One scrape of the exposition. */
export interface Scrape {
  /** Milliseconds to the last byte. */
  readonly ms: number;
  readonly status: number;
  readonly bytes: number;
  /** Sample lines, as Prometheus counts series. */
  readonly series: number;
  /** `mcp_metrics_requests_total` summed by `code`. */
  readonly requestsByCode: Readonly<Record<string, number>>;
  /** `mcp_metrics_storage_errors_total`, all labels. */
  readonly storageErrors: number;
  /** `mcp_metrics_queue_rows`. */
  readonly queueRows: number;
  /** `mcp_metrics_commit_duration_seconds` `_sum` and `_count` (cumulative). */
  readonly commitSeconds: number;
  readonly commitCount: number;
}

/** Scrapes `url` once and reads the service's own counters from the text. */
export async function scrape(url: string): Promise<Scrape> {
  const started = performance.now();
  const res = await fetch(url);
  const text = await res.text();
  const ms = performance.now() - started;
  const requestsByCode: Record<string, number> = {};
  let series = 0;
  let storageErrors = 0;
  let queueRows = 0;
  let commitSeconds = 0;
  let commitCount = 0;
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    series++;
    if (!line.startsWith("mcp_metrics_")) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.startsWith("mcp_metrics_requests_total")) {
      const code = /code="([^"]*)"/.exec(line)?.[1] ?? "?";
      requestsByCode[code] = (requestsByCode[code] ?? 0) + value;
    } else if (line.startsWith("mcp_metrics_storage_errors_total")) {
      storageErrors += value;
    } else if (line.startsWith("mcp_metrics_queue_rows")) {
      queueRows += value;
    } else if (line.startsWith("mcp_metrics_commit_duration_seconds_sum")) {
      commitSeconds += value;
    } else if (line.startsWith("mcp_metrics_commit_duration_seconds_count")) {
      commitCount += value;
    }
  }
  return {
    ms,
    status: res.status,
    bytes: text.length,
    series,
    requestsByCode,
    storageErrors,
    queueRows,
    commitSeconds,
    commitCount,
  };
}

/** The database as seen each sample. */
export interface DatabaseGlance {
  /** Highest `metrics.id` handed out (AUTOINCREMENT: every row ever stored). */
  readonly metricsIdsIssued: number;
  /** Rows of the expired service still in `metrics` (its index answers). */
  readonly expiredRows: number;
  readonly dbMiB: number;
  readonly walMiB: number;
}

/** A read-only connection for {@link DatabaseGlance}s; close it before counting at the end. */
export function openGlance(dbPath: string, expiredService: string) {
  const db = new BetterSqlite3(dbPath, { readonly: true, fileMustExist: true });
  const issued = db.prepare("SELECT seq AS n FROM sqlite_sequence WHERE name = 'metrics'");
  const expired = db.prepare("SELECT count(*) AS n FROM metrics WHERE service = ?");
  const size = (path: string) => {
    try {
      return statSync(path).size / 2 ** 20;
    } catch {
      return 0;
    }
  };
  return {
    glance(): DatabaseGlance {
      return {
        metricsIdsIssued: (issued.get() as { n: number } | undefined)?.n ?? 0,
        expiredRows: (expired.get(expiredService) as { n: number }).n,
        dbMiB: size(dbPath),
        walMiB: size(`${dbPath}-wal`),
      };
    },
    close: () => db.close(),
  };
}

/** Batch ids the service remembers (`ingest_batches`), once it has stopped. */
export function countBatchIds(dbPath: string): number {
  const db = new BetterSqlite3(dbPath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT count(*) AS n FROM ingest_batches").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Rows per service in each event table (full scans: only once the service has stopped). */
export function countRows(dbPath: string): Record<string, Record<string, number>> {
  const db = new BetterSqlite3(dbPath, { readonly: true, fileMustExist: true });
  try {
    const counts: Record<string, Record<string, number>> = {};
    for (const table of ["metrics", "auth_metrics", "tool_metrics", "discovery_metrics"]) {
      const rows = db
        .prepare(`SELECT service, count(*) AS n FROM ${table} GROUP BY service`)
        .all() as { service: string; n: number }[];
      counts[table] = Object.fromEntries(rows.map((r) => [r.service, r.n]));
    }
    return counts;
  } finally {
    db.close();
  }
}
