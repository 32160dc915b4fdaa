// backends: sqlite only: the process reads and locks its SQLite file directly (a reader connection, BEGIN IMMEDIATE); to port with svc.sql and a PostgreSQL lock
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import BetterSqlite3 from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { CONNECT_HTTP1, GRPC, ingestClient } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { spawnService } from "../support/process.js";
import { tempDir } from "../support/service.js";

describe("the service process", () => {
  it("should create and print one key on a first start with none configured, and not again", async () => {
    const dbPath = join(tempDir(), "metrics.db");
    const first = await spawnService({ SQLITE_DB_PATH: dbPath });
    const key = /(mcpm_[A-Za-z0-9_-]{51})/.exec(first.output().stderr)?.[1];
    expect(key).toBeDefined();
    expect(first.output().stderr).toContain("METRICS_API_KEY_");
    // The key works at once, and is never written to the log.
    const res = await ingestClient(GRPC, first.url, key).ingest(authBatch(3, "default"));
    expect(res.accepted).toBe(3);
    expect(first.output().stdout).not.toContain(key);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);

    const second = await spawnService({ SQLITE_DB_PATH: dbPath });
    expect(second.output().stderr).not.toContain("mcpm_");
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });

  it("should exit 0 on SIGTERM after committing every acknowledged event, with requests in flight", async () => {
    const dbPath = join(tempDir(), "metrics.db");
    const key = "sigterm-key-0123456789";
    // A 20 ms commit window keeps requests waiting in the group-commit queue when the signal lands.
    const svc = await spawnService({
      SQLITE_DB_PATH: dbPath,
      METRICS_API_KEY_LOADER: key,
      METRICS_RATE_LIMIT: "1000000",
      METRICS_COMMIT_MAX_DELAY_MS: "20",
    });
    const acked = new Map<string, number>();
    // "Committing every acknowledged event": each answer's rows are read from
    // another connection (this process's, synchronously) the moment it arrives,
    // so an answer sent before its commit is caught even if the commit follows.
    const reader = new BetterSqlite3(dbPath, { readonly: true });
    const storedNow = reader.prepare("SELECT count(*) AS n FROM metrics WHERE request_id = ?");
    const uncommittedOnArrival: string[] = [];
    let signalled = false;
    let ackedAfterSignal = 0;
    const refusals: ConnectError[] = [];
    let stop = false;
    // Workers on gRPC (h2c) and Connect (HTTP/1.1), each keeping one request in flight.
    const workers = Array.from({ length: 12 }, async (_, w) => {
      const client = ingestClient(w % 2 === 0 ? GRPC : CONNECT_HTTP1, svc.url, key);
      while (!stop) {
        try {
          const res = await client.ingest(authBatch(50, "loader"));
          const found = (storedNow.get(res.requestId) as { n: number }).n;
          if (found !== res.accepted) {
            uncommittedOnArrival.push(`${res.requestId}: ${found} of ${res.accepted} rows`);
          }
          acked.set(res.requestId, res.accepted);
          if (signalled) ackedAfterSignal++;
        } catch (error) {
          refusals.push(ConnectError.from(error));
          return;
        }
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    const ackedBeforeSignal = acked.size;
    signalled = true;
    svc.child.kill("SIGTERM");
    const code = await svc.exited;
    stop = true;
    await Promise.all(workers);

    reader.close();

    expect(code).toBe(0);
    expect(ackedBeforeSignal).toBeGreaterThan(10);
    // Every answer, before and after the signal, came once its rows were committed.
    expect(uncommittedOnArrival).toEqual([]);
    // Requests queued for commit when the signal came were committed and answered, not dropped.
    expect(ackedAfterSignal).toBeGreaterThan(0);
    // Requests that came too late were refused with a retryable code, never dropped mid-way.
    expect(refusals.length).toBeGreaterThan(0);
    // UNAVAILABLE, or an HTTP/2 stream the server refused (REFUSED_STREAM: not processed,
    // safe to retry) that connect-node reports as INTERNAL when it races the GOAWAY.
    const retryable = (e: ConnectError) =>
      e.code === Code.Unavailable || e.rawMessage.includes("REFUSED_STREAM");
    expect(
      refusals.filter((e) => !retryable(e)).map((e) => `${Code[e.code]}: ${e.rawMessage}`),
    ).toEqual([]);
    const db = new BetterSqlite3(dbPath, { readonly: true });
    const stored = new Map(
      (
        db.prepare("SELECT request_id, count(*) AS n FROM metrics GROUP BY request_id").all() as {
          request_id: string;
          n: number;
        }[]
      ).map((r) => [r.request_id, r.n]),
    );
    for (const [requestId, accepted] of acked) expect(stored.get(requestId)).toBe(accepted);
    const authRows = (db.prepare("SELECT count(*) AS n FROM auth_metrics").get() as { n: number })
      .n;
    expect(authRows).toBe([...stored.values()].reduce((a, b) => a + b, 0));
    db.close();
    expect(svc.output().stdout).toContain('"msg":"stopped"');
  });

  it("should have committed every acknowledged event when SIGKILLed the moment an answer arrives", async () => {
    const dbPath = join(tempDir(), "metrics.db");
    const key = "sigkill-key-0123456789";
    const svc = await spawnService({
      SQLITE_DB_PATH: dbPath,
      METRICS_API_KEY_LOADER: key,
      METRICS_RATE_LIMIT: "1000000",
    });
    const acked = new Map<string, number>();
    let armed = false;
    let killed = false;
    let stop = false;
    const workers = Array.from({ length: 12 }, async (_, w) => {
      const client = ingestClient(w % 2 === 0 ? GRPC : CONNECT_HTTP1, svc.url, key);
      while (!stop) {
        try {
          const res = await client.ingest(authBatch(50, "loader"));
          acked.set(res.requestId, res.accepted);
          // No graceful stop to commit what is queued: SIGKILL, synchronously, as
          // this answer arrives, with the other workers' requests in flight.
          if (armed && !killed) killed = svc.child.kill("SIGKILL");
        } catch {
          // Refused or cut off by the kill: not acknowledged, nothing promised.
          if (killed) return;
        }
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    // Another connection takes the write lock: from now on nothing commits, so
    // an answer that arrives now was sent before its rows were committed, and
    // the kill it triggers loses them. Armed once the answers already on their
    // way (committed before the lock) have arrived.
    const other = new BetterSqlite3(dbPath);
    other.exec("BEGIN IMMEDIATE");
    await new Promise((r) => setTimeout(r, 50));
    armed = true;
    await new Promise((r) => setTimeout(r, 300));
    other.exec("ROLLBACK");
    other.close();
    // Released: the requests waiting commit, are answered, and the first answer kills.
    const code = await svc.exited;
    stop = true;
    await Promise.all(workers);

    expect(killed).toBe(true);
    expect(code).toBeNull();
    expect(acked.size).toBeGreaterThan(10);
    // Read-write: the WAL of a killed process is recovered on open.
    const db = new BetterSqlite3(dbPath);
    const stored = new Map(
      (
        db.prepare("SELECT request_id, count(*) AS n FROM metrics GROUP BY request_id").all() as {
          request_id: string;
          n: number;
        }[]
      ).map((r) => [r.request_id, r.n]),
    );
    db.close();
    const lost = [...acked]
      .filter(([requestId, accepted]) => stored.get(requestId) !== accepted)
      .map(([requestId, accepted]) => `${requestId}: ${stored.get(requestId) ?? 0} of ${accepted}`);
    expect(lost).toEqual([]);
  });
});
