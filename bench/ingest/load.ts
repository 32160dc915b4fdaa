/**
 * The load generator of the ingest benchmark, run as its own process (pinned
 * to its own core). It sends the workload's batches at a fixed rate, open
 * loop: request i is due at start + i / rate whether or not earlier ones have
 * been answered, and its latency is measured from when it was due, so a slow
 * server shows as latency instead of as a slower sender (no coordinated
 * omission). The clients are minimal conforming ones (HTTP/1.1 POSTs, raw
 * HTTP/2 streams with gRPC framing), so the generator costs little.
 *
 * Usage: node dist/bench/ingest/load.js '<LoadSpec as JSON>'
 * Prints one LoadResult as JSON on stdout.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { quantile } from "./quantile.js";
import { buildWorkload, EVENTS_PER_BATCH } from "./workload.js";

/** What to send. */
export interface LoadSpec {
  readonly ingress: "json" | "connect" | "grpc" | "stream" | "bare";
  readonly url: string;
  readonly key: string;
  /** Events per second (batches of {@link EVENTS_PER_BATCH}). */
  readonly eventsPerSecond: number;
  readonly seconds: number;
  /** Messages per client stream (ingress `stream`). */
  readonly messagesPerStream?: number;
}

/** What came back. */
export interface LoadResult {
  readonly requests: number;
  readonly ok: number;
  readonly errors: number;
  /** A few of the error answers, for the report. */
  readonly errorSamples: string[];
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Events acknowledged per second over the step. */
  readonly eventsPerSecond: number;
}

/** Requests outstanding beyond which the generator counts a request failed instead of queuing it. */
const MAX_OUTSTANDING = 4096;

/**
 * Sends one batch; `done` is called once it is answered. `timed` is false for
 * the messages of a client stream before its last, whose answer is the
 * stream's: only the last message's latency is the server's.
 */
type Send = (batch: number, done: (error: string | undefined, timed: boolean) => void) => void;

/** Sends batches; `finish` once the last is sent (ends a client stream that is not yet full). */
interface Sender {
  readonly send: Send;
  finish(): void;
  close(): void;
}

function sender(spec: LoadSpec): Sender {
  const workload = buildWorkload(64);
  if (spec.ingress === "json" || spec.ingress === "connect" || spec.ingress === "bare") {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
    const target = new URL(
      spec.ingress === "connect" ? "/mcp.metrics.v1.IngestService/Ingest" : "/metrics",
      spec.url,
    );
    const contentType = spec.ingress === "connect" ? "application/proto" : "application/json";
    return {
      send(batch, done) {
        const body =
          spec.ingress === "connect" ? workload.proto[batch % 64] : workload.json[batch % 64];
        const req = http.request(
          target,
          {
            method: "POST",
            agent,
            headers: {
              "content-type": contentType,
              "x-api-key": spec.key,
              "content-length": body?.length ?? 0,
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              if (res.statusCode === 200) return done(undefined, true);
              done(
                `HTTP ${res.statusCode} ${Buffer.concat(chunks).toString("utf8").slice(0, 200)}`,
                true,
              );
            });
          },
        );
        req.on("error", (e) => done(e.message, true));
        req.end(body);
      },
      finish() {},
      close: () => agent.destroy(),
    };
  }
  // gRPC over h2c: a few sessions, each request a stream with a 5-byte length prefix per message.
  const sessions = Array.from({ length: 4 }, () => {
    const s = http2.connect(spec.url, { maxSessionMemory: 1024 });
    s.on("error", () => {});
    return s;
  });
  const frames = workload.proto.map((m) => {
    const f = Buffer.alloc(5 + m.length);
    f.writeUInt32BE(m.length, 1);
    Buffer.from(m.buffer, m.byteOffset, m.byteLength).copy(f, 5);
    return f;
  });
  const perStream = spec.ingress === "stream" ? (spec.messagesPerStream ?? 10) : 1;
  const path =
    spec.ingress === "stream"
      ? "/mcp.metrics.v1.IngestService/IngestStream"
      : "/mcp.metrics.v1.IngestService/Ingest";
  let open:
    | {
        stream: http2.ClientHttp2Stream;
        sent: number;
        waiters: ((e: string | undefined, timed: boolean) => void)[];
      }
    | undefined;
  let next = 0;
  return {
    send(batch, done) {
      const frame = frames[batch % frames.length] as Buffer;
      if (open === undefined) {
        const session = sessions[next++ % sessions.length] as http2.ClientHttp2Session;
        const stream = session.request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
          "x-api-key": spec.key,
        });
        const current = {
          stream,
          sent: 0,
          waiters: [] as ((e: string | undefined, timed: boolean) => void)[],
        };
        let status = "";
        let message = "";
        stream.on("response", (h) => {
          status = String(h["grpc-status"] ?? status);
          message = String(h["grpc-message"] ?? message);
        });
        stream.on("trailers", (h) => {
          status = String(h["grpc-status"] ?? status);
          message = String(h["grpc-message"] ?? message);
        });
        stream.on("data", () => {});
        stream.on("error", (e) => {
          status = status || `stream error ${e.message}`;
        });
        stream.on("close", () => {
          const error =
            status === "0" ? undefined : `grpc-status ${status} ${decodeURIComponent(message)}`;
          current.waiters.forEach((w, i) => {
            w(error, i === current.waiters.length - 1);
          });
        });
        open = current;
      }
      const current = open;
      current.stream.write(frame);
      current.sent++;
      current.waiters.push(done);
      if (current.sent >= perStream) {
        current.stream.end();
        open = undefined;
      }
    },
    finish() {
      // A run whose batches are not a multiple of the stream length: the last
      // stream would otherwise wait for messages that never come.
      open?.stream.end();
      open = undefined;
    },
    close() {
      for (const s of sessions) s.close();
    },
  };
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const { send, finish, close } = sender(spec);
  const batchesPerSecond = spec.eventsPerSecond / EVENTS_PER_BATCH;
  const total = Math.max(1, Math.round(batchesPerSecond * spec.seconds));
  const latencies: number[] = [];
  const errorSamples: string[] = [];
  let ok = 0;
  let errors = 0;
  let outstanding = 0;
  let issued = 0;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    let finished = 0;
    const complete = () => {
      if (++finished === total) resolve();
    };
    const tick = () => {
      const now = performance.now();
      while (issued < total && start + (issued / batchesPerSecond) * 1000 <= now) {
        const due = start + (issued / batchesPerSecond) * 1000;
        const batch = issued++;
        if (outstanding >= MAX_OUTSTANDING) {
          errors++;
          if (errorSamples.length < 5) errorSamples.push("generator: too many outstanding");
          complete();
          continue;
        }
        outstanding++;
        send(batch, (error, timed) => {
          outstanding--;
          if (timed) latencies.push(performance.now() - due);
          if (error === undefined) ok++;
          else {
            errors++;
            if (errorSamples.length < 5) errorSamples.push(error);
          }
          complete();
        });
      }
      if (issued < total) setTimeout(tick, 1);
      else finish();
    };
    tick();
  });
  const elapsed = (performance.now() - start) / 1000;
  close();
  latencies.sort((a, b) => a - b);
  return {
    requests: total,
    ok,
    errors,
    errorSamples,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    maxMs: latencies.at(-1) ?? 0,
    eventsPerSecond: (ok * EVENTS_PER_BATCH) / elapsed,
  };
}

const spec = JSON.parse(process.argv[2] ?? "{}") as LoadSpec;
run(spec).then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  },
);
