// backends: sqlite only: admission shares and message deadlines at the door, before storage; timing-bound (npm run test:abuse)
import http from "node:http";
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { IngestStreamRequestSchema } from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { servedMeanwhile } from "../abuse/support.js";
import { envelope, INGEST, INGEST_STREAM } from "../reliability/rpc-wire.js";
import { authBatch } from "../support/events.js";
import { legacyMetric } from "../support/legacy.js";
import { countIn, startTestService, type TestService } from "../support/service.js";

/**
 * The p99 another key's requests must stay under while one key abuses the
 * port. `ABUSE_STRICT=1` (npm run test:abuse) holds the 50 ms; a
 * plain run, sharing two cores with the rest of the suite, allows 250 ms,
 * still far below what starvation looks like (a 503, or a 30 s wait).
 */
const P99_LIMIT_MS = process.env.ABUSE_STRICT === "1" ? 50 : 250;
const ATTACK = 64;

/** The gRPC status of each HTTP/2 stream that the server answered, once it did. */
function grpcStatuses(streams: http2.ClientHttp2Stream[]): number[] {
  return streams.flatMap((s) => {
    const status = (s as http2.ClientHttp2Stream & { grpcStatus?: string }).grpcStatus;
    return status === undefined ? [] : [Number(status)];
  });
}

/** Opens a stream and remembers the grpc-status of a trailers-only answer. */
function watchedRequest(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
): http2.ClientHttp2Stream {
  const stream = session.request(headers);
  stream.on("error", () => {});
  stream.on("response", (h) => {
    if (h["grpc-status"] !== undefined) {
      Object.assign(stream, { grpcStatus: String(h["grpc-status"]) });
    }
  });
  stream.on("trailers", (t) => {
    if (t["grpc-status"] !== undefined) {
      Object.assign(stream, { grpcStatus: String(t["grpc-status"]) });
    }
  });
  return stream;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("fair share: one key's abuse leaves another key served (issue 21)", () => {
  let svc: TestService;
  let abuser: string;
  let victim: string;
  const cleanup: (() => void)[] = [];
  beforeEach(async () => {
    svc = await startTestService();
    abuser = await svc.keyFor("abuser");
    victim = await svc.keyFor("victim");
  });
  afterEach(async () => {
    for (const end of cleanup.splice(0)) end();
    await svc.close();
  });

  const victimServed = async () => {
    const { statuses, p99 } = await servedMeanwhile(svc.url, victim, 100);
    console.log(`victim p99 ${p99.toFixed(1)} ms`);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(p99).toBeLessThan(P99_LIMIT_MS);
  };

  it("should hold one key's dripping streams to its share, refusing the rest 429, and serve another key", async () => {
    const session = http2.connect(svc.url);
    session.on("error", () => {});
    cleanup.push(() => session.destroy());
    const streams = Array.from({ length: ATTACK }, () => {
      const stream = watchedRequest(session, {
        ":method": "POST",
        ":path": INGEST_STREAM,
        "content-type": "application/grpc",
        "x-api-key": abuser,
      });
      // Three bytes of a message header, then nothing.
      stream.write(Buffer.from([0, 0, 0]));
      return stream;
    });
    await sleep(500);
    const refused = grpcStatuses(streams);
    // 64 in the pool, 16 a key's share: a key alone may use 48, the rest is refused.
    expect(refused.length).toBe(ATTACK - 48);
    expect(new Set(refused)).toEqual(new Set([8])); // RESOURCE_EXHAUSTED
    await victimServed();
  });

  it("should hold one key's slow JSON bodies to its share and serve another key", async () => {
    const answers: number[] = [];
    const requests = Array.from({ length: ATTACK }, () => {
      const req = http.request(`${svc.url}/metrics`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-api-key": abuser,
          "content-length": "100000",
        },
      });
      req.on("error", () => {});
      req.on("response", (res) => {
        answers.push(res.statusCode ?? 0);
        res.resume();
      });
      req.write('{"service": "abuser", ');
      return req;
    });
    cleanup.push(() => {
      for (const req of requests) req.destroy();
    });
    await sleep(500);
    expect(answers.length).toBe(ATTACK - 48);
    expect(new Set(answers)).toEqual(new Set([429]));
    await victimServed();
  });

  it("should hold one key's calls on a connection that reads nothing (window 0) to its share and serve another key", async () => {
    const session = http2.connect(svc.url, { settings: { initialWindowSize: 0 } });
    session.on("error", () => {});
    cleanup.push(() => session.destroy());
    const message = envelope(
      Buffer.from([0x0a, 0x06, ...Buffer.from("abuser"), 0x12, 0x02, 0x52, 0x00]),
    );
    const streams = Array.from({ length: ATTACK }, () => {
      const stream = watchedRequest(session, {
        ":method": "POST",
        ":path": INGEST,
        "content-type": "application/grpc",
        "x-api-key": abuser,
      });
      stream.end(message);
      return stream;
    });
    await sleep(1000);
    const refused = grpcStatuses(streams).filter((s) => s === 8);
    expect(refused.length).toBeGreaterThanOrEqual(ATTACK - 48);
    await victimServed();
  });
});

describe("a request message dripped byte by byte (issue 21)", () => {
  it("should end the call RESOURCE_EXHAUSTED once the message has taken longer than METRICS_MESSAGE_DEADLINE_MS", async () => {
    const svc = await startTestService({ METRICS_MESSAGE_DEADLINE_MS: "600" });
    const session = http2.connect(svc.url);
    session.on("error", () => {});
    try {
      const outcomes = await Promise.all(
        [INGEST, INGEST_STREAM].map(async (path) => {
          const stream = session.request({
            ":method": "POST",
            ":path": path,
            "content-type": "application/grpc",
            "x-api-key": svc.key,
          });
          stream.on("error", () => {});
          // The answer, trailers-only or trailers: the client's side of the
          // stream stays open while it drips, so "close" would not come.
          const answered = new Promise<{ status: string; message: string }>((resolve) => {
            const onFields = (fields: http2.IncomingHttpHeaders) => {
              if (fields["grpc-status"] === undefined) return;
              resolve({
                status: String(fields["grpc-status"]),
                message: decodeURIComponent(String(fields["grpc-message"] ?? "")),
              });
            };
            stream.on("response", onFields);
            stream.on("trailers", onFields);
          });
          const started = performance.now();
          // A header announcing 50 bytes, then one byte every 150 ms: each byte
          // resets the idle timer, none finishes the message.
          stream.write(Buffer.from([0, 0, 0, 0, 50]));
          const drip = setInterval(() => {
            if (!stream.closed) stream.write(Buffer.from([0]));
          }, 150);
          const answer = await answered;
          clearInterval(drip);
          stream.close();
          return { ...answer, ms: performance.now() - started };
        }),
      );
      for (const outcome of outcomes) {
        expect(outcome.status).toBe("8");
        expect(outcome.message).toMatch(/message took more than 0.6 s to arrive/);
        expect(outcome.ms).toBeLessThan(3000);
      }
    } finally {
      session.destroy();
      await svc.close();
    }
  });
});

/** The status and message of an HTTP/2 answer: grpc-status when there is one, else the HTTP status and body. */
function answerOf(stream: http2.ClientHttp2Stream) {
  return new Promise<{ status: string; message: string; ms: number }>((resolve) => {
    const started = performance.now();
    let httpStatus = "";
    let body = "";
    const onFields = (fields: http2.IncomingHttpHeaders) => {
      if (fields[":status"] !== undefined) httpStatus = String(fields[":status"]);
      if (fields["grpc-status"] === undefined) return;
      resolve({
        status: `grpc ${String(fields["grpc-status"])}`,
        message: decodeURIComponent(String(fields["grpc-message"] ?? "")),
        ms: performance.now() - started,
      });
    };
    stream.on("response", onFields);
    stream.on("trailers", onFields);
    stream.on("data", (chunk: Buffer) => {
      body += chunk.toString();
    });
    stream.on("end", () =>
      resolve({ status: httpStatus, message: body, ms: performance.now() - started }),
    );
  });
}

describe("a request that stops sending, or sends too slowly (issue 21)", () => {
  let svc: TestService;
  let session: http2.ClientHttp2Session;
  afterEach(async () => {
    session.destroy();
    await svc.close();
  });
  const open = (headers: http2.OutgoingHttpHeaders) => {
    const stream = session.request({ ":method": "POST", "x-api-key": svc.key, ...headers });
    stream.on("error", () => {});
    return stream;
  };

  it("should answer a stream message, a Connect unary body and a JSON body that stop halfway once the deadline passes, without waiting for the idle timer", async () => {
    svc = await startTestService({ METRICS_MESSAGE_DEADLINE_MS: "600" });
    session = http2.connect(svc.url);
    session.on("error", () => {});
    const grpc = open({ ":path": INGEST_STREAM, "content-type": "application/grpc" });
    grpc.write(Buffer.from([0, 0, 0, 0, 50, 0x0a])); // 1 byte of a 50-byte message, then silence
    const connect = open({ ":path": INGEST, "content-type": "application/proto" });
    connect.write(Buffer.from([0x0a, 0x06])); // half a field, then silence
    const json = open({ ":path": "/metrics", "content-type": "application/json" });
    json.write('{"service": "slow", '); // half a body, then silence
    const [g, c, j] = await Promise.all([answerOf(grpc), answerOf(connect), answerOf(json)]);
    expect(g.status).toBe("grpc 8"); // RESOURCE_EXHAUSTED
    expect(g.message).toMatch(/IngestStreamRequest message took more than 0.6 s to arrive/);
    expect(c.status).toBe("429");
    expect(JSON.parse(c.message)).toMatchObject({
      code: "resource_exhausted",
      message: expect.stringMatching(/IngestRequest message took more than 0.6 s to arrive/),
    });
    expect(j.status).toBe("408");
    expect(JSON.parse(j.message)).toEqual({
      detail: "The request body took more than 0.6 s to arrive; send it whole",
    });
    // The stream's idle timer is 30 s: each answer came from the deadline.
    for (const answer of [g, c, j]) expect(answer.ms).toBeLessThan(3000);
    // The refused body counts nothing; the key is still served.
    const ok = await fetch(`${svc.url}/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": svc.key },
      body: JSON.stringify({ service: "fast", metrics: [legacyMetric()] }),
    });
    expect(ok.status).toBe(200);
  });

  it("should end a message dripped under METRICS_MIN_DATA_RATE after the 5 s grace, long before its deadline", async () => {
    svc = await startTestService({ METRICS_MESSAGE_DEADLINE_MS: "30000" });
    session = http2.connect(svc.url);
    session.on("error", () => {});
    const grpc = open({ ":path": INGEST_STREAM, "content-type": "application/grpc" });
    const answered = answerOf(grpc);
    // 20 bytes a second, a twelfth of the 240 bytes/s minimum.
    grpc.write(Buffer.from([0, 0, 0, 4, 0]));
    const drip = setInterval(() => {
      if (!grpc.closed) grpc.write(Buffer.alloc(2));
    }, 100);
    const answer = await answered;
    clearInterval(drip);
    expect(answer.status).toBe("grpc 8");
    expect(answer.message).toMatch(
      /IngestStreamRequest message arrived at \d+ bytes\/s, under the minimum of 240 bytes\/s/,
    );
    expect(answer.ms).toBeGreaterThan(4500);
    expect(answer.ms).toBeLessThan(8000);
  });

  it("should let a stream wait between whole messages as long as it pays for it", async () => {
    svc = await startTestService({ METRICS_MESSAGE_DEADLINE_MS: "600" });
    session = http2.connect(svc.url);
    session.on("error", () => {});
    const grpc = open({ ":path": INGEST_STREAM, "content-type": "application/grpc" });
    const answered = answerOf(grpc);
    const message = envelope(
      toBinary(IngestStreamRequestSchema, create(IngestStreamRequestSchema, authBatch(1))),
    );
    grpc.write(message);
    await sleep(1000); // longer than the deadline, between messages
    grpc.end(message);
    const answer = await answered;
    expect(answer.status).toBe("grpc 0");
    expect(await countIn(svc.sql, "auth_metrics")).toBe(2);
  });
});
