// backends: sqlite only: abuse of the HTTP/2 and admission layers, before storage (npm run test:abuse)
import { rmSync } from "node:fs";
import http2 from "node:http2";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import BetterSqlite3 from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createH2,
  envelope,
  h1Call,
  INGEST,
  INGEST_STREAM,
  ingestBytes,
} from "../reliability/rpc-wire.js";
import { spawnService } from "../support/process.js";
import { countIn, startTestService, type TestService, tempDir } from "../support/service.js";
import {
  type GrpcAnswer,
  grpcAnswer,
  keyWithRateLimit,
  P99_LIMIT_MS,
  scaled,
  servedMeanwhile,
  sleep,
} from "./support.js";

/*
 * The hostile clients of issue 21's probe table that no other test plays
 * (see docs/security.md, "Hostile-client tests", for the whole map): each runs against
 * a real service on a loopback port, asserts what the abusive client sees and
 * that another client is still served. `npm run test:abuse` runs them larger.
 */

describe("probe 1: one key dripping IngestStream messages byte by byte", () => {
  const pool = scaled(64, 256);
  // The defaults: a key's share is a quarter of the pool, and a key alone may use the rest.
  const share = Math.ceil(pool / 4);
  const admitted = pool - share;
  // Short, so that the deadline ends each call: not the key's bucket (a token
  // per 10 s a stream waits) nor a minimum data rate (past its grace period).
  const deadlineMillis = 4000;
  // The probe dripped a byte every 10 s; this is faster, to show the deadline
  // is not reset by bytes, yet slow enough that the drippers' own writes (in
  // this process, beside the service) do not weigh on the victim's latency.
  const dripMillis = scaled(100, 500);
  // Little more than the calls it may open: what they cost shows in the bucket.
  const abuserRateLimit = admitted + 12;
  let svc: TestService;
  let abuser: string;
  let victim: string;
  beforeAll(async () => {
    svc = await startTestService({
      METRICS_MAX_CONCURRENT_REQUESTS: String(pool),
      METRICS_MESSAGE_DEADLINE_MS: String(deadlineMillis),
    });
    abuser = await keyWithRateLimit(svc, "abuser", abuserRateLimit);
    victim = await svc.keyFor("victim");
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should refuse the calls past the key's share 429, end the others at the message deadline, charge the key for its slots, and serve another key meanwhile", async () => {
    const session = http2.connect(svc.url);
    session.on("error", () => {});
    const drips: NodeJS.Timeout[] = [];
    try {
      const opened = performance.now();
      const answers = Array.from({ length: pool }, () => {
        const stream = session.request({
          ":method": "POST",
          ":path": INGEST_STREAM,
          "content-type": "application/grpc",
          "x-api-key": abuser,
        });
        stream.on("error", () => {});
        const answer = grpcAnswer(stream);
        // Three bytes of a message header, then one byte per drip: a message
        // announcing 200 bytes, which never arrives whole.
        stream.write(Buffer.from([0, 0, 0]));
        const rest = [0, 200, ...Array<number>(200).fill(0)];
        drips.push(
          setInterval(() => {
            const byte = rest.shift();
            if (byte !== undefined && !stream.closed && stream.writable) {
              stream.write(Buffer.from([byte]));
            }
          }, dripMillis),
        );
        return answer;
      });

      // Past its share, at once, with the reason, a retry delay and the body unread.
      const early = await Promise.race([
        sleep(1000).then(() => "timeout" as const),
        Promise.all(answers.slice(admitted)),
      ]);
      expect(early, "the calls past the share were not refused within 1 s").not.toBe("timeout");
      for (const answer of early as GrpcAnswer[]) {
        expect(answer.status).toBe(Code.ResourceExhausted);
        expect(answer.reason).toBe("KEY_SHARE_EXCEEDED");
        expect(answer.message).toMatch(new RegExp(`already has ${share} requests in flight`));
        expect(answer.retryAfter).toBe("1");
      }

      // Another key is served while the drip goes on.
      const served = await servedMeanwhile(svc.url, victim, scaled(100, 200));
      console.log(
        `drip: victim served ${(served.endedAt - opened).toFixed(0)} ms after the drip began, ` +
          `p50 ${served.p50.toFixed(1)} ms, p99 ${served.p99.toFixed(1)} ms while ${admitted} calls dripped`,
      );
      expect(served.statuses.filter((s) => s !== 200)).toEqual([]);
      expect(served.p99).toBeLessThan(P99_LIMIT_MS);

      // Each dripping call ends at the message deadline, whatever its bytes
      // reset: RESOURCE_EXHAUSTED naming the deadline.
      const ended = await Promise.all(answers.slice(0, admitted));
      expect(served.endedAt, "the victim was not served while the drip went on").toBeLessThan(
        Math.min(...ended.map((a) => a.at)),
      );
      for (const answer of ended) {
        expect(answer.status).toBe(Code.ResourceExhausted);
        expect(answer.reason).toBe("MESSAGE_TOO_SLOW");
        expect(answer.message).toContain(`took more than ${deadlineMillis / 1000} s to arrive`);
        expect(answer.at - opened).toBeGreaterThanOrEqual(deadlineMillis - 100);
        expect(answer.at - opened).toBeLessThan(deadlineMillis + 2000);
      }

      // The key paid a token for each call it held (the probe found it paid
      // none), less what its bucket refilled since; the refused ones cost nothing.
      const res = await fetch(`${svc.url}/rate-limit`, { headers: { "x-api-key": abuser } });
      expect(res.status).toBe(200);
      const left = ((await res.json()) as { available_tokens: number }).available_tokens;
      const refilled = Math.ceil(((performance.now() - opened) / 60_000) * abuserRateLimit);
      expect(left).toBeLessThanOrEqual(abuserRateLimit - admitted + refilled + 1);

      // Its slots are free again: the key itself is served; nothing of the drip was stored.
      const after = await servedMeanwhile(svc.url, abuser, 1, "abuser");
      expect(after.statuses).toEqual([200]);
      expect(await countIn(svc.sql, "metrics", "service = 'abuser'")).toBe(1);
    } finally {
      for (const drip of drips) clearInterval(drip);
      session.destroy();
    }
  }, 60_000);
});

describe("probe 7: reserved flag bits where the regression test does not look", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  const rpcHeaders = (contentType: string) => ({
    "content-type": contentType,
    "x-api-key": svc.key,
  });

  it.each([
    ["0x02", 0x02],
    ["0x80", 0x80],
    ["0xfe", 0xfe],
  ])(
    "should answer flags %s INVALID_ARGUMENT over gRPC-Web and Connect streams on HTTP/2, and over JSON codecs, and keep the connection serving",
    async (_hex, flags) => {
      const service = `h2-flags-${flags}`;
      const json = Buffer.from(
        JSON.stringify({ service, events: [{ authRequest: { success: true } }] }),
      );
      const h2 = createH2(svc.url);
      try {
        const outcomes = {
          "gRPC-Web over HTTP/2": await h2.call(
            INGEST,
            envelope(ingestBytes(service), flags),
            rpcHeaders("application/grpc-web+proto"),
          ),
          "Connect stream over HTTP/2": await h2.call(
            INGEST_STREAM,
            envelope(ingestBytes(service), flags),
            rpcHeaders("application/connect+proto"),
          ),
          "gRPC, JSON codec": await h2.call(
            INGEST,
            envelope(json, flags),
            rpcHeaders("application/grpc+json"),
          ),
          "gRPC-Web, JSON codec, HTTP/1.1": await h1Call(
            svc.url,
            INGEST,
            envelope(json, flags),
            rpcHeaders("application/grpc-web+json"),
          ),
          "Connect stream, JSON codec, HTTP/1.1": await h1Call(
            svc.url,
            INGEST_STREAM,
            envelope(json, flags),
            rpcHeaders("application/connect+json"),
          ),
        };
        for (const [name, outcome] of Object.entries(outcomes)) {
          expect(outcome.kind, `${name}: ${JSON.stringify(outcome)}`).toBe("error");
          if (outcome.kind !== "error") continue;
          expect(outcome.error.code, `${name}: ${outcome.error.rawMessage}`).toBe(
            Code.InvalidArgument,
          );
          expect(outcome.error.rawMessage).toContain(
            `sets reserved flag bits (0x${flags.toString(16).padStart(2, "0")})`,
          );
        }
        // The same HTTP/2 connection still serves a well-formed call.
        const ok = await h2.call(INGEST, envelope(ingestBytes("after-flags")), {
          ...rpcHeaders("application/grpc"),
        });
        expect(ok).toMatchObject({ kind: "ok", accepted: 1 });
      } finally {
        h2.close();
      }
      expect(await countIn(svc.sql, "metrics", "service = ?", service)).toBe(0);
    },
  );

  it.each([
    ["gRPC over HTTP/2", "application/grpc", "h2"],
    ["gRPC-Web over HTTP/2", "application/grpc-web+proto", "h2"],
    ["gRPC-Web over HTTP/1.1", "application/grpc-web+proto", "h1"],
    ["Connect over HTTP/1.1", "application/connect+proto", "h1"],
  ] as const)(
    "should refuse a stream's second message with reserved flag bits over %s, storing nothing of it",
    async (_name, contentType, version) => {
      const service = `second-flagged-${contentType.replace(/\W/g, "-")}-${version}`;
      const body = Buffer.concat([
        envelope(ingestBytes("first-message")),
        envelope(ingestBytes(service), 0x80),
      ]);
      const h2 = createH2(svc.url);
      try {
        const outcome =
          version === "h2"
            ? await h2.call(INGEST_STREAM, body, rpcHeaders(contentType))
            : await h1Call(svc.url, INGEST_STREAM, body, rpcHeaders(contentType));
        expect(outcome.kind, JSON.stringify(outcome)).toBe("error");
        if (outcome.kind === "error") {
          expect(outcome.error.code, outcome.error.rawMessage).toBe(Code.InvalidArgument);
          expect(outcome.error.rawMessage).toContain("sets reserved flag bits (0x80)");
        }
        // A well-formed stream is served next, on the same kind of connection.
        const valid = envelope(ingestBytes("after-second-flagged"));
        const next =
          version === "h2"
            ? await h2.call(INGEST_STREAM, valid, rpcHeaders(contentType))
            : await h1Call(svc.url, INGEST_STREAM, valid, rpcHeaders(contentType));
        expect(next).toMatchObject({ kind: "ok", accepted: 1 });
      } finally {
        h2.close();
      }
      expect(await countIn(svc.sql, "metrics", "service = ?", service)).toBe(0);
    },
  );
});

describe("probe 8: many idle streams on a service process", () => {
  const streams = scaled(64, 600);
  it("should write no MaxListenersExceededWarning (nor any other warning) to stderr, while idle and at shutdown", async () => {
    const dir = tempDir();
    const dbPath = join(dir, "metrics.db");
    const key = "idle-streams-key-0123456789abcdef";
    const victim = "idle-victim-key-0123456789abcdef";
    const svc = await spawnService({
      SQLITE_DB_PATH: dbPath,
      METRICS_API_KEY_IDLE: key,
      METRICS_API_KEY_VICTIM: victim,
      // Room for every idle stream and the victim: this is about listeners, not the bounds.
      METRICS_MAX_CONCURRENT_REQUESTS: String(streams + 16),
      METRICS_MAX_CONCURRENT_REQUESTS_PER_KEY: String(streams),
      METRICS_RATE_LIMIT: "100000",
    });
    // nghttp2 allows 256 concurrent streams per connection here.
    const sessions = Array.from({ length: Math.ceil(streams / 200) }, () => {
      const session = http2.connect(svc.url);
      session.on("error", () => {});
      return session;
    });
    try {
      const open = Array.from({ length: streams }, (_, i) => {
        const stream = (sessions[i % sessions.length] as http2.ClientHttp2Session).request({
          ":method": "POST",
          ":path": INGEST_STREAM,
          "content-type": "application/grpc",
          "x-api-key": key,
        });
        stream.on("error", () => {});
        const answer = grpcAnswer(stream);
        // One message each, then silence: idle streams.
        stream.write(envelope(ingestBytes("idle")));
        return answer;
      });
      const db = new BetterSqlite3(dbPath, { readonly: true });
      try {
        await expect
          .poll(
            () =>
              (
                db.prepare("SELECT count(*) AS n FROM metrics WHERE service = 'idle'").get() as {
                  n: number;
                }
              ).n,
            { timeout: 20_000, interval: 100 },
          )
          .toBe(streams);
      } finally {
        db.close();
      }
      const served = await servedMeanwhile(svc.url, victim, 20);
      expect(served.statuses.filter((s) => s !== 200)).toEqual([]);
      await sleep(scaled(300, 3000));
      expect(svc.output().stderr).toBe("");

      // A shutdown with every stream still open ends each with UNAVAILABLE.
      svc.child.kill("SIGTERM");
      const answers = await Promise.all(open);
      expect(new Set(answers.map((a) => a.status))).toEqual(new Set([Code.Unavailable]));
      expect(await svc.exited).toBe(0);
      expect(svc.output().stderr).toBe("");
    } finally {
      for (const session of sessions) session.destroy();
      if (svc.child.exitCode === null) svc.child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
