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
import { newBatchId } from "../../clients/typescript/src/index.js";
import { quantile } from "./quantile.js";
import { buildWorkload, EVENTS_PER_BATCH, type WorkloadOptions } from "./workload.js";

/** What to send. */
export interface LoadSpec {
  readonly ingress: "json" | "connect" | "grpc" | "stream" | "bare";
  readonly url: string;
  /**
   * More servers to spread the batches over, round robin, as a load balancer
   * would (replicas; JSON and Connect only).
   */
  readonly alsoUrls?: readonly string[];
  readonly key: string;
  /** Events per second (batches of `workload.eventsPerBatch`, default {@link EVENTS_PER_BATCH}). */
  readonly eventsPerSecond: number;
  readonly seconds: number;
  /** Messages per client stream (ingress `stream`). */
  readonly messagesPerStream?: number;
  /**
   * The batches' service, timestamps, size and shape (default: the bench's
   * service, stamped by the server, {@link EVENTS_PER_BATCH} mixed events).
   */
  readonly workload?: WorkloadOptions;
  /**
   * Give every request a batch id of its own, as the generated clients do: an
   * `Idempotency-Key` header on JSON, field `batch_id` on the protobuf messages.
   */
  readonly batchIds?: boolean;
  /**
   * Print a {@link LoadProgress} line, `progress {...}`, on stdout this often
   * (the soak reads them while the run goes on); none when absent.
   */
  readonly progressMillis?: number;
}

/** What was answered so far, printed every `progressMillis` as `progress <JSON>`. */
export interface LoadProgress {
  /** Seconds since the first request was due. */
  readonly seconds: number;
  /** Requests answered successfully so far. */
  readonly ok: number;
  /** Requests failed so far. */
  readonly errors: number;
  /** HTTP/2 sessions ended by a GOAWAY or an error so far (each replaced by a new one). */
  readonly sessionsLost: number;
  /** Requests sent and not yet answered. */
  readonly outstanding: number;
  /** Latencies (from when each was due) of the requests answered since the previous line. */
  readonly latenciesMs: number[];
  /** A few of the errors since the previous line. */
  readonly errorSamples: string[];
}

/** What came back. */
export interface LoadResult {
  readonly requests: number;
  readonly ok: number;
  readonly errors: number;
  /** HTTP/2 sessions ended by a GOAWAY or an error (each replaced by a new one). */
  readonly sessionsLost: number;
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

/** The `accepted` count of a legacy JSON answer, undefined when it has none. */
function acceptedOf(text: string): unknown {
  try {
    return (JSON.parse(text) as { accepted?: unknown }).accepted;
  } catch {
    return undefined;
  }
}

/** A gRPC message frame: a 5-byte prefix (no compression, length) and the message. */
function grpcFrame(m: Uint8Array): Buffer {
  const f = Buffer.alloc(5 + m.length);
  f.writeUInt32BE(m.length, 1);
  Buffer.from(m.buffer, m.byteOffset, m.byteLength).copy(f, 5);
  return f;
}

/**
 * An encoded IngestRequest (or IngestStreamRequest) with a new batch id: a
 * field appended to a protobuf message is part of it, so field 5 (`batch_id`,
 * wire type 2, a 36-byte UUID) is added without encoding the batch again.
 */
function withBatchId(message: Uint8Array): Buffer {
  const id = Buffer.from(newBatchId());
  return Buffer.concat([message, Buffer.from([(5 << 3) | 2, id.length]), id]);
}

/**
 * Builds the sender of `spec`; `lost` is told of each HTTP/2 session a GOAWAY
 * or an error ended (the sender opens another, as a client would).
 */
function sender(spec: LoadSpec, lost: (why: string) => void): Sender {
  const perBatch = eventsPerBatchOf(spec);
  // 64 distinct batches of the default size; as many events over fewer batches
  // when they are bigger (building 64 of 1,024 events took a second per run).
  const distinct = Math.max(1, Math.ceil((64 * EVENTS_PER_BATCH) / perBatch));
  const workload = buildWorkload(distinct, 42, spec.workload);
  if (spec.ingress === "json" || spec.ingress === "connect" || spec.ingress === "bare") {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
    const path = spec.ingress === "connect" ? "/mcp.metrics.v1.IngestService/Ingest" : "/metrics";
    const targets = [spec.url, ...(spec.alsoUrls ?? [])].map((url) => new URL(path, url));
    const contentType = spec.ingress === "connect" ? "application/proto" : "application/json";
    return {
      send(batch, done) {
        const message = workload.proto[batch % distinct] as Uint8Array;
        const body =
          spec.ingress === "connect"
            ? spec.batchIds
              ? withBatchId(message)
              : message
            : workload.json[batch % distinct];
        const req = http.request(
          targets[batch % targets.length] as URL,
          {
            method: "POST",
            agent,
            headers: {
              "content-type": contentType,
              "x-api-key": spec.key,
              "content-length": body?.length ?? 0,
              ...(spec.batchIds && spec.ingress !== "connect"
                ? { "idempotency-key": newBatchId() }
                : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              // The legacy route answers 200 also when validation rejected the
              // batch; only a whole batch accepted is a success.
              if (res.statusCode === 200 && spec.ingress === "json") {
                const text = Buffer.concat(chunks).toString("utf8");
                if (acceptedOf(text) === perBatch) return done(undefined, true);
                return done(`HTTP 200 not all accepted: ${text.slice(0, 200)}`, true);
              }
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
  const connect = () => {
    const s = http2.connect(spec.url, { maxSessionMemory: 1024 });
    // A session ends once, but may say so both ways (GOAWAY, then an error).
    let told = false;
    const tell = (why: string) => {
      if (!told) lost(why);
      told = true;
    };
    s.on("goaway", (code, lastStreamId) =>
      tell(`session GOAWAY code ${code}, last stream ${lastStreamId}`),
    );
    s.on("error", (e) => tell(`session error ${e.message}`));
    return s;
  };
  const sessions = Array.from({ length: 4 }, connect);
  const frames = workload.proto.map(grpcFrame);
  const perStream = spec.ingress === "stream" ? (spec.messagesPerStream ?? 10) : 1;
  const path =
    spec.ingress === "stream"
      ? "/mcp.metrics.v1.IngestService/IngestStream"
      : "/mcp.metrics.v1.IngestService/Ingest";
  let open:
    | {
        stream: http2.ClientHttp2Stream;
        sent: number;
        /** Set once the stream closed: its waiters were all answered. */
        closed: boolean;
        waiters: ((e: string | undefined, timed: boolean) => void)[];
      }
    | undefined;
  let next = 0;
  return {
    send(batch, done) {
      const frame = spec.batchIds
        ? grpcFrame(withBatchId(workload.proto[batch % distinct] as Uint8Array))
        : (frames[batch % frames.length] as Buffer);
      if (open === undefined) {
        const slot = next++ % sessions.length;
        let session = sessions[slot] as http2.ClientHttp2Session;
        if (session.closed || session.destroyed) {
          session = connect();
          sessions[slot] = session;
        }
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
          closed: false,
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
          // A stream the server ended early (refused, overloaded) takes no more
          // messages: the next batch opens another.
          if (open === current) open = undefined;
          current.closed = true;
          current.waiters.forEach((w, i) => {
            w(error, i === current.waiters.length - 1);
          });
        });
        open = current;
      }
      const current = open;
      if (current.closed) {
        // Closed between two batches of this turn: its waiters were settled; so is this one.
        open = undefined;
        done("stream closed by the server before this message", true);
        return;
      }
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

/** Events in each of `spec`'s batches. */
function eventsPerBatchOf(spec: LoadSpec): number {
  return spec.workload?.eventsPerBatch ?? EVENTS_PER_BATCH;
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const perBatch = eventsPerBatchOf(spec);
  const batchesPerSecond = spec.eventsPerSecond / perBatch;
  const total = Math.max(1, Math.round(batchesPerSecond * spec.seconds));
  const latencies: number[] = [];
  const errorSamples: string[] = [];
  let ok = 0;
  let errors = 0;
  let outstanding = 0;
  let issued = 0;
  let windowLatencies: number[] = [];
  let windowErrors: string[] = [];
  let sessionsLost = 0;
  const { send, finish, close } = sender(spec, (why) => {
    sessionsLost++;
    if (errorSamples.length < 5) errorSamples.push(why);
    if (progress !== undefined && windowErrors.length < 5) windowErrors.push(why);
  });
  const start = performance.now();
  const report = () => {
    const line: LoadProgress = {
      seconds: (performance.now() - start) / 1000,
      ok,
      errors,
      sessionsLost,
      outstanding,
      latenciesMs: windowLatencies.map((l) => Math.round(l * 100) / 100),
      errorSamples: windowErrors,
    };
    windowLatencies = [];
    windowErrors = [];
    process.stdout.write(`progress ${JSON.stringify(line)}\n`);
  };
  const progress =
    spec.progressMillis === undefined ? undefined : setInterval(report, spec.progressMillis);
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
          if (progress !== undefined && windowErrors.length < 5) {
            windowErrors.push("generator: too many outstanding");
          }
          complete();
          continue;
        }
        outstanding++;
        send(batch, (error, timed) => {
          outstanding--;
          if (timed) {
            const latency = performance.now() - due;
            latencies.push(latency);
            if (progress !== undefined) windowLatencies.push(latency);
          }
          if (error === undefined) ok++;
          else {
            errors++;
            if (errorSamples.length < 5) errorSamples.push(error);
            if (progress !== undefined && windowErrors.length < 5) windowErrors.push(error);
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
  if (progress !== undefined) {
    clearInterval(progress);
    report();
  }
  close();
  latencies.sort((a, b) => a - b);
  return {
    requests: total,
    ok,
    errors,
    sessionsLost,
    errorSamples,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    maxMs: latencies.at(-1) ?? 0,
    eventsPerSecond: (ok * perBatch) / elapsed,
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
