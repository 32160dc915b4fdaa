import { rmSync } from "node:fs";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import BetterSqlite3 from "better-sqlite3";
import { newBatchId } from "../../clients/typescript/src/index.js";
import type { EventSchema } from "../../gen/mcp/metrics/v1/events_pb.js";
import { GRAINS } from "../../src/storage/rollups.js";
import { CONNECT_HTTP1, GRPC, ingestClient, type Protocol } from "../support/clients.js";
import { spawnService } from "../support/process.js";
import { tempDir } from "../support/service.js";

/*
 * Crash harness (issue 10): client workers ingest as fast as they can and
 * record every event the service acknowledged; the service is killed with
 * SIGKILL at a random moment, restarted on the same database, and the workers
 * resend what was not acknowledged, with the same batch ids. At the end every
 * acknowledged event must be stored exactly once, and no event twice.
 */

/** What a run did and found. */
export interface CrashReport {
  readonly seed: number;
  readonly rounds: number;
  /** SIGKILLs sent, each while requests were in flight. */
  readonly kills: number;
  /** Batches resent after a failure (the same batch id). */
  readonly resends: number;
  /** Batches answered from an earlier commit (committed, but the answer was lost to the kill). */
  readonly replayed: number;
  readonly eventsAcknowledged: number;
  /** Distinct acknowledged events found in `metrics`. */
  readonly eventsFound: number;
  /** Acknowledged events missing from the database. */
  readonly missing: number;
  /** Events stored more than once. */
  readonly duplicates: number;
  /** Rows whose event was never sent (would mean corruption). */
  readonly unknownRows: number;
  /** Events sent that were never acknowledged (none: the last life resends all). */
  readonly unacknowledged: number;
  /**
   * Rollup tables whose counts differ from the raw rows' (per type; every
   * grain's totals and each dimension's values): none, since they are
   * written in the raw rows' transaction (docs/history.md).
   */
  readonly rollupMismatches: readonly string[];
  /** Failures before a kill was sent: none are expected. */
  readonly unexpectedErrors: readonly string[];
  readonly integrity: string;
  readonly millis: number;
}

/** Options of {@link runCrashRounds}. */
export interface CrashOptions {
  readonly rounds: number;
  readonly seed: number;
  /** Concurrent client workers. */
  readonly workers?: number;
  /** The kill comes this long after a restart, at random within the range, in ms. */
  readonly killAfterMillis?: readonly [number, number];
  /** More environment for the service (`{"METRICS_IDEMPOTENCY_WINDOW_SECONDS":"0"}` shows the harness failing). */
  readonly serviceEnv?: Readonly<Record<string, string>>;
}

/** The rollup tables whose counts per type disagree with `metrics` (and per auth method with `auth_metrics`). */
function rollupMismatches(db: BetterSqlite3.Database): string[] {
  const byType = (sql: string) => JSON.stringify(db.prepare(sql).all());
  const raw = byType("SELECT metric_type, count(*) AS n FROM metrics GROUP BY 1 ORDER BY 1");
  const rawMethods = byType(
    "SELECT method AS v, count(*) AS n FROM auth_metrics WHERE method IS NOT NULL GROUP BY 1 ORDER BY 1",
  );
  return GRAINS.flatMap((g) => [
    ...(byType(`SELECT metric_type, sum(count) AS n FROM ${g.totals} GROUP BY 1 ORDER BY 1`) === raw
      ? []
      : [g.totals]),
    ...[g.dimensions, g.acrossServices].flatMap((table) =>
      table === undefined ||
      byType(
        `SELECT dimension_value AS v, sum(count) AS n FROM ${table} WHERE metric_type = 'auth_request' AND dimension = 'method' GROUP BY 1 ORDER BY 1`,
      ) === rawMethods
        ? []
        : [table],
    ),
  ]);
}

/** mulberry32: a small seeded PRNG, so a failing seed can be run again. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Batch {
  readonly batchId: string;
  readonly eventIds: readonly string[];
  /** Sent at least once already. */
  sent: boolean;
}

const SERVICE = "crash-test";
const KEY = "crash-harness-key-0123456789";

function events(batch: Batch): MessageInitShape<typeof EventSchema>[] {
  return batch.eventIds.map((eid) => ({
    value: 1,
    durationMs: 5,
    metadata: { eid },
    kind: { case: "authRequest" as const, value: { success: true, method: "jwt" } },
  }));
}

/** Sends one batch over one of the three ingresses; resolves with the answer's replayed flag. */
async function send(protocol: Protocol | "json", url: string, batch: Batch): Promise<boolean> {
  if (protocol === "json") {
    const body = {
      service: SERVICE,
      batch_id: batch.batchId,
      metrics: batch.eventIds.map((eid) => ({
        type: "auth_request",
        value: 1,
        duration_ms: 5,
        dimensions: { success: true, method: "jwt" },
        metadata: { eid },
      })),
    };
    const res = await fetch(`${url}/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": KEY },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const json = (await res.json()) as { accepted?: number };
    if (res.status !== 200 || json.accepted !== batch.eventIds.length) {
      throw new Error(`POST /metrics: ${res.status} ${JSON.stringify(json)}`);
    }
    return res.headers.get("idempotent-replayed") === "true";
  }
  let replayed = false;
  const answer = await ingestClient(protocol, url, KEY).ingest(
    { service: SERVICE, batchId: batch.batchId, events: events(batch) },
    {
      timeoutMs: 5000,
      onHeader: (headers) => {
        replayed = headers.get("idempotent-replayed") === "true";
      },
    },
  );
  if (answer.accepted !== batch.eventIds.length) {
    throw new Error(`accepted ${answer.accepted} of ${batch.eventIds.length}`);
  }
  return replayed;
}

/** Runs `rounds` kill-and-restart rounds on one database, then checks it. */
export async function runCrashRounds(options: CrashOptions): Promise<CrashReport> {
  const started = performance.now();
  const rand = random(options.seed);
  const [killMin, killMax] = options.killAfterMillis ?? [200, 1500];
  const workerCount = options.workers ?? 6;
  const dir = tempDir("mcp-crash-");
  const dbPath = join(dir, "metrics.db");
  const acknowledged = new Set<string>();
  const sent = new Set<string>();
  /** Batches not acknowledged yet: sent again, with their ids, after the restart. */
  let unacknowledged: Batch[] = [];
  let nextEvent = 0;
  let kills = 0;
  let resends = 0;
  let replayed = 0;
  const unexpectedErrors: string[] = [];

  const newBatch = (): Batch => {
    const size = 1 + Math.floor(rand() * 100);
    const eventIds = Array.from({ length: size }, () => `e${nextEvent++}`);
    for (const eid of eventIds) sent.add(eid);
    return { batchId: newBatchId(), eventIds, sent: false };
  };

  /** One life of the service: workers send until it dies (or, last, until all is acknowledged). */
  const life = async (kill: boolean): Promise<void> => {
    const svc = await spawnService({
      SQLITE_DB_PATH: dbPath,
      METRICS_API_KEY_CRASH_TEST: KEY,
      METRICS_RATE_LIMIT: "100000000",
      ...options.serviceEnv,
    });
    let dead = false;
    let killing = false;
    void svc.exited.then(() => {
      dead = true;
    });
    const queue = unacknowledged;
    unacknowledged = [];
    const protocols: (Protocol | "json")[] = [GRPC, CONNECT_HTTP1, "json"];
    const worker = async (w: number): Promise<void> => {
      const protocol = protocols[w % protocols.length] ?? GRPC;
      for (;;) {
        const batch = queue.shift() ?? (kill && !dead ? newBatch() : undefined);
        if (batch === undefined) return;
        if (batch.sent) resends++;
        batch.sent = true;
        try {
          if (await send(protocol, svc.url, batch)) replayed++;
          for (const eid of batch.eventIds) acknowledged.add(eid);
        } catch (error) {
          unacknowledged.push(batch);
          if (!killing) unexpectedErrors.push(String(error));
          if (dead || kill) {
            // The process is dying or dead: this worker's life ends here.
            if (!dead) await svc.exited;
            return;
          }
          throw error;
        }
      }
    };
    const workers = Array.from({ length: workerCount }, (_, w) => worker(w));
    if (kill) {
      await new Promise((resolve) => setTimeout(resolve, killMin + rand() * (killMax - killMin)));
      killing = true;
      svc.child.kill("SIGKILL");
      kills++;
      await svc.exited;
      await Promise.all(workers);
    } else {
      await Promise.all(workers);
      svc.child.kill("SIGTERM");
      const code = await svc.exited;
      if (code !== 0) throw new Error(`the service exited with ${code} on SIGTERM`);
    }
  };

  try {
    for (let round = 0; round < options.rounds; round++) await life(true);
    // A last life without a kill: everything still unacknowledged goes through.
    await life(false);

    const db = new BetterSqlite3(dbPath, { readonly: true });
    try {
      const integrity = String(db.pragma("integrity_check", { simple: true }));
      const rows = db
        .prepare(
          "SELECT json_extract(metadata, '$.eid') AS eid, count(*) AS n FROM metrics GROUP BY eid",
        )
        .all() as { eid: string | null; n: number }[];
      const counts = new Map(rows.map((r) => [r.eid ?? "", r.n]));
      let missing = 0;
      let found = 0;
      for (const eid of acknowledged) {
        if (counts.has(eid)) found++;
        else missing++;
      }
      return {
        seed: options.seed,
        rounds: options.rounds,
        kills,
        resends,
        replayed,
        eventsAcknowledged: acknowledged.size,
        eventsFound: found,
        missing,
        duplicates: rows.filter((r) => r.n > 1).length,
        unknownRows: rows.filter((r) => r.eid === null || !sent.has(r.eid)).length,
        unacknowledged: sent.size - acknowledged.size,
        rollupMismatches: rollupMismatches(db),
        unexpectedErrors,
        integrity,
        millis: Math.round(performance.now() - started),
      };
    } finally {
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
