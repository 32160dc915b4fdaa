import type http2 from "node:http2";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createKeyAdmin } from "../../src/auth/key-admin.js";
import { loadConfig } from "../../src/config.js";
import { openStorage } from "../../src/storage/drivers.js";
import type { TestService } from "../support/service.js";

/**
 * `ABUSE_LONG=1` (set by `npm run test:abuse`): the hostile-client tests run
 * at a larger scale (more connections and streams, longer drips, more rounds)
 * than in `npm test`, which keeps them to seconds.
 */
export const LONG = process.env.ABUSE_LONG === "1";

/** `quick` in `npm test`, `long` in `npm run test:abuse`. */
export function scaled(quick: number, long: number): number {
  return LONG ? long : quick;
}

/**
 * The p99 another client's requests must stay under while one client abuses
 * the port: the 50 ms with `ABUSE_STRICT=1`, 250 ms in a plain run
 * that shares two cores with the rest of the suite (as in
 * test/server/fair-share.test.ts); starvation looks like a 503 or a 30 s wait.
 */
export const P99_LIMIT_MS = process.env.ABUSE_STRICT === "1" ? 50 : 250;

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/**
 * An ingest key for `service` with a rate limit of its own (as `keys create
 * --rate-limit` makes it), loaded into the running service at once.
 */
export async function keyWithRateLimit(
  svc: TestService,
  service: string,
  rateLimitPerMinute: number,
): Promise<string> {
  const storage = await openStorage(loadConfig({ ...svc.storageEnv, LOG_LEVEL: "silent" }));
  try {
    const made = await createKeyAdmin(storage.keys).create({
      service,
      scope: "ingest",
      rateLimit: rateLimitPerMinute,
    });
    return made.key;
  } finally {
    await storage.close();
    await svc.running.registry.reload();
  }
}

/** One legacy event, as `POST /metrics` takes it. */
const EVENT = {
  type: "auth_request",
  value: 1,
  duration_ms: 1,
  dimensions: { success: true, method: "jwt" },
};

/** The statuses and latency percentiles of `count` legacy POSTs sent one after another. */
export interface Served {
  readonly statuses: readonly number[];
  readonly p50: number;
  readonly p99: number;
  /** When the last answer arrived (`performance.now()`). */
  readonly endedAt: number;
}

/**
 * Sends `count` legacy `POST /metrics` with `key`, one after another: what
 * another client sees while one abuses the port.
 */
export async function servedMeanwhile(
  url: string,
  key: string,
  count: number,
  service = "victim",
): Promise<Served> {
  const latencies: number[] = [];
  const statuses: number[] = [];
  const body = JSON.stringify({ service, metrics: [EVENT] });
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const res = await fetch(`${url}/metrics`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key },
      body,
    });
    await res.arrayBuffer();
    latencies.push(performance.now() - started);
    statuses.push(res.status);
  }
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.ceil(q * latencies.length) - 1] ?? 0;
  return { statuses, p50: at(0.5), p99: at(0.99), endedAt: performance.now() };
}

/** What a gRPC client saw of a call: its status, message, `ErrorInfo` reason and `retry-after`, and when. */
export interface GrpcAnswer {
  readonly status: number;
  readonly message: string;
  /** The `google.rpc.ErrorInfo` reason (`KEY_SHARE_EXCEEDED`, …), when the status has details. */
  readonly reason: string | undefined;
  readonly retryAfter: string | undefined;
  /** `performance.now()` when the status arrived. */
  readonly at: number;
}

/**
 * The gRPC status of a raw HTTP/2 call, from a trailers-only answer or the
 * trailers, as soon as it arrives (the client's side may still be open).
 */
export function grpcAnswer(stream: http2.ClientHttp2Stream): Promise<GrpcAnswer> {
  return new Promise((resolve) => {
    const onFields = (fields: http2.IncomingHttpHeaders): void => {
      if (fields["grpc-status"] === undefined) return;
      const retryAfter = fields["retry-after"];
      const headers = new Headers();
      for (const [name, value] of Object.entries(fields)) {
        if (!name.startsWith(":") && value !== undefined) headers.set(name, String(value));
      }
      resolve({
        status: Number(fields["grpc-status"]),
        message: decodeURIComponent(String(fields["grpc-message"] ?? "")),
        reason: findTrailerError(headers)?.findDetails(ErrorInfoSchema)[0]?.reason,
        retryAfter: retryAfter === undefined ? undefined : String(retryAfter),
        at: performance.now(),
      });
    };
    stream.on("response", onFields);
    stream.on("trailers", onFields);
  });
}
