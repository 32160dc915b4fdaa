import { setTimeout as delay } from "node:timers/promises";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { EventSchema } from "../../../gen/mcp/metrics/v1/events_pb.js";
import { IngestService } from "../../../gen/mcp/metrics/v1/ingest_pb.js";
import { newBatchId } from "./batch-id.js";
import { EventBuffer } from "./event-buffer.js";
import {
  type AuthEvent,
  type BufferedEvent,
  type CommonEventFields,
  type CustomEvent,
  type DiscoveryEvent,
  type EventKind,
  type HealthCheckEvent,
  type ProtocolLatencyEvent,
  type RegistryOperationEvent,
  type ToolExecutionEvent,
  toEventInit,
} from "./event-init.js";
import { createRetryPolicy, type RetryOptions, type RetryPolicy } from "./retry-policy.js";
import { createOwnedTransport, type OwnedTransport, type Protocol } from "./transport.js";

/** Where the client reports trouble: once per kind of trouble, never per event. */
export interface ClientLogger {
  warn(message: string): void;
}

/** Options of `createMetricsClient`. */
export interface MetricsClientOptions {
  /** The service's URL, e.g. `http://metrics-service:8890`. */
  baseUrl: string;
  /** The API key of this service (sent as `x-api-key`). An empty key disables the client, with a warning. */
  apiKey: string;
  /** The emitting service's name: 1 to 50 characters of `[a-zA-Z0-9_-]`. */
  service: string;
  /** The emitting service's version, at most 20 characters. */
  version?: string | undefined;
  /** The emitting instance, at most 50 characters of `[a-zA-Z0-9_.-]`. Default `<service>-<pid>`. */
  instanceId?: string | undefined;
  /** `"grpc"` (default: gRPC over HTTP/2) or `"connect"` (Connect over HTTP/1.1). */
  protocol?: Protocol | undefined;
  /** A transport to use instead of one built from `baseUrl` and `protocol` (custom TLS, tests). */
  transport?: Transport | undefined;
  /** The most events held while waiting to be sent; when full the oldest is dropped. Default 10,000. */
  maxBufferedEvents?: number | undefined;
  /** Events per request, 1 to 100 (the service's batch limit). Default 100. */
  maxBatchEvents?: number | undefined;
  /** How often a partial batch is sent. Default 1,000 ms. */
  flushIntervalMillis?: number | undefined;
  /** Requests in flight at once. Default 2. */
  maxConcurrentRequests?: number | undefined;
  /** Deadline of one request. Default 5,000 ms. */
  requestTimeoutMillis?: number | undefined;
  /** Backoff and give-up settings for failed requests. */
  retry?: RetryOptions | undefined;
  /** Where warnings go. Default: `console.warn`. */
  logger?: ClientLogger | undefined;
}

/**
 * What happened to the events emitted so far. At any moment
 * `emitted = sent + dropped + rejected + unauthenticated + failed + buffered + inFlight`.
 */
export interface MetricsClientStats {
  /** Events passed to an emitter. */
  readonly emitted: number;
  /** Events the service acknowledged (committed to its storage). */
  readonly sent: number;
  /** Events dropped because the buffer was full (the oldest go first), or emitted after `close()` or while disabled. */
  readonly dropped: number;
  /** Events the service refused as invalid (`INVALID_ARGUMENT`); never retried. */
  readonly rejected: number;
  /** Events refused for the key (`UNAUTHENTICATED`, `PERMISSION_DENIED`); never retried. */
  readonly unauthenticated: number;
  /** Events given up after other errors, after retrying for too long, or at `close()`'s deadline. */
  readonly failed: number;
  /** Requests sent again after a retryable error. */
  readonly retries: number;
  /** Events waiting in the buffer. */
  readonly buffered: number;
  /** Events in requests not yet answered. */
  readonly inFlight: number;
}

/** The typed emitters. Each enqueues its event and returns at once; none throws or blocks. */
export interface MetricsEmitter {
  /** An authentication attempt (stored in `auth_metrics`). */
  auth(event: AuthEvent): void;
  /** An MCP method call (stored in `tool_metrics`). */
  toolExecution(event: ToolExecutionEvent): void;
  /** A semantic tool search (stored in `discovery_metrics`). */
  discovery(event: DiscoveryEvent): void;
  /** The latency, in seconds (`value`), between two protocol steps of a session. */
  protocolLatency(event: ProtocolLatencyEvent): void;
  /** An operation on the registry. */
  registryOperation(event: RegistryOperationEvent): void;
  /** A health probe. */
  healthCheck(event: HealthCheckEvent): void;
  /** Any other metric. */
  custom(event: CustomEvent): void;
}

/**
 * The named emitter of each kind of the event catalog (`events.proto`): a
 * kind added there without one here fails to compile.
 */
export const EMITTERS: { readonly [K in EventKind]: keyof MetricsEmitter } = {
  authRequest: "auth",
  toolDiscovery: "discovery",
  toolExecution: "toolExecution",
  registryOperation: "registryOperation",
  healthCheck: "healthCheck",
  protocolLatency: "protocolLatency",
  custom: "custom",
};

/** A batching, retrying client of the metrics service. */
export interface MetricsClient extends MetricsEmitter {
  /**
   * Sends everything emitted so far, partial batches included. Resolves true
   * once all of it is settled (acknowledged, rejected or given up), false if
   * `timeoutMillis` (default 5,000) passed first; retries go on afterwards.
   */
  flush(timeoutMillis?: number): Promise<boolean>;
  /**
   * Stops accepting events, drains the buffer within `timeoutMillis` (default
   * 5,000), then abandons what is left (counted in `failed`) and releases the
   * connections. Resolves true when everything was drained. Idempotent.
   */
  close(timeoutMillis?: number): Promise<boolean>;
  /** Counters of what happened to the events; cheap to call. */
  stats(): MetricsClientStats;
}

// The service's own rules (docs/legacy-contract.md §2), checked here so that a bad option
// fails at start-up rather than as every batch rejected.
const SERVICE_NAME = /^[a-zA-Z0-9_-]{1,50}$/;
const INSTANCE_ID = /^[a-zA-Z0-9_.-]{1,50}$/;
const MAX_VERSION_LENGTH = 20;
const SERVER_BATCH_LIMIT = 100;

/** Creates a client; validates its options and throws a RangeError naming the bad one. */
export function createMetricsClient(options: MetricsClientOptions): MetricsClient {
  return new BatchingMetricsClient(options);
}

interface InFlightBatch {
  readonly minSeq: number;
  /** Events of the batch not yet settled. */
  size: number;
}

interface Waiter {
  readonly throughSeq: number;
  readonly resolve: (settled: boolean) => void;
}

type Counter = "sent" | "dropped" | "rejected" | "unauthenticated" | "failed" | "retries";

class BatchingMetricsClient implements MetricsClient {
  private readonly rpc: Client<typeof IngestService>;
  private readonly owned: OwnedTransport | undefined;
  private readonly buffer: EventBuffer<BufferedEvent>;
  private readonly batchSize: number;
  private readonly maxConcurrent: number;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly logger: ClientLogger;
  private readonly header: { service: string; version?: string; instanceId: string };
  private readonly headers: Record<string, string>;
  private readonly abort = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<InFlightBatch>();
  private readonly waiters = new Set<Waiter>();
  private readonly warned = new Set<string>();
  private readonly counts: Record<Counter, number> = {
    sent: 0,
    dropped: 0,
    rejected: 0,
    unauthenticated: 0,
    failed: 0,
    retries: 0,
  };
  private readonly enabled: boolean;
  private emitted = 0;
  private lastSeq = 0;
  /** Events up to this sequence number may go in partial batches (interval tick or flush). */
  private partialThrough = 0;
  private pumpScheduled = false;
  private closing: Promise<boolean> | undefined;
  private idleResolvers: (() => void)[] = [];

  constructor(options: MetricsClientOptions) {
    const url = parseUrl(options.baseUrl);
    if (!SERVICE_NAME.test(options.service)) {
      throw new RangeError(
        `service must be 1 to 50 characters of [a-zA-Z0-9_-], got ${JSON.stringify(options.service)}`,
      );
    }
    const instanceId = options.instanceId ?? defaultInstanceId(options.service);
    if (!INSTANCE_ID.test(instanceId)) {
      throw new RangeError(
        `instanceId must be 1 to 50 characters of [a-zA-Z0-9_.-], got ${JSON.stringify(instanceId)}`,
      );
    }
    if (options.version !== undefined && options.version.length > MAX_VERSION_LENGTH) {
      throw new RangeError(`version must be at most 20 characters, got ${options.version.length}`);
    }
    this.batchSize = integerOption(
      "maxBatchEvents",
      options.maxBatchEvents,
      100,
      1,
      SERVER_BATCH_LIMIT,
    );
    this.buffer = new EventBuffer(
      integerOption(
        "maxBufferedEvents",
        options.maxBufferedEvents,
        10_000,
        this.batchSize, // smaller, a full batch could never form
        10_000_000,
      ),
    );
    this.maxConcurrent = integerOption(
      "maxConcurrentRequests",
      options.maxConcurrentRequests,
      2,
      1,
      64,
    );
    this.timeoutMs = integerOption(
      "requestTimeoutMillis",
      options.requestTimeoutMillis,
      5_000,
      1,
      600_000,
    );
    const interval = integerOption(
      "flushIntervalMillis",
      options.flushIntervalMillis,
      1_000,
      1,
      3_600_000,
    );
    this.retry = createRetryPolicy(options.retry);
    this.logger = options.logger ?? { warn: (message) => console.warn(`[mcp-metrics] ${message}`) };
    this.header = {
      service: options.service,
      instanceId,
      ...(options.version === undefined ? {} : { version: options.version }),
    };
    // `!` rather than `=== ""`: an unset environment variable arrives as undefined.
    this.enabled = Boolean(options.apiKey);
    if (!this.enabled) {
      this.logger.warn("no API key configured: metrics are not sent");
    }
    this.owned = options.transport
      ? undefined
      : createOwnedTransport(url, options.protocol ?? "grpc");
    // Per call rather than in the transport, so that a caller's own transport gets it too.
    this.headers = { "x-api-key": options.apiKey ?? "" };
    this.rpc = createClient(
      IngestService,
      options.transport ?? (this.owned as OwnedTransport).transport,
    );
    if (this.enabled) {
      this.timer = setInterval(() => this.sendPartial(this.lastSeq), interval);
      this.timer.unref();
    }
  }

  auth(event: AuthEvent): void {
    this.emit("authRequest", event);
  }
  toolExecution(event: ToolExecutionEvent): void {
    this.emit("toolExecution", event);
  }
  discovery(event: DiscoveryEvent): void {
    this.emit("toolDiscovery", event);
  }
  protocolLatency(event: ProtocolLatencyEvent): void {
    this.emit("protocolLatency", event);
  }
  registryOperation(event: RegistryOperationEvent): void {
    this.emit("registryOperation", event);
  }
  healthCheck(event: HealthCheckEvent): void {
    this.emit("healthCheck", event);
  }
  custom(event: CustomEvent): void {
    this.emit("custom", event);
  }

  flush(timeoutMillis = 5_000): Promise<boolean> {
    const through = this.lastSeq;
    this.sendPartial(through);
    if (this.settledThrough(through)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        resolve(false);
      }, timeoutMillis);
      const waiter: Waiter = {
        throughSeq: through,
        resolve: (settled) => {
          clearTimeout(timer);
          resolve(settled);
        },
      };
      this.waiters.add(waiter);
    });
  }

  close(timeoutMillis = 5_000): Promise<boolean> {
    this.closing ??= this.shutDown(timeoutMillis);
    return this.closing;
  }

  stats(): MetricsClientStats {
    let inFlight = 0;
    for (const batch of this.inFlight) inFlight += batch.size;
    return { emitted: this.emitted, ...this.counts, buffered: this.buffer.length, inFlight };
  }

  private emit(kind: EventKind, fields: CommonEventFields): void {
    this.emitted++;
    if (this.closing !== undefined || !this.enabled) {
      this.counts.dropped++;
      return;
    }
    const ts = fields?.timestamp;
    const atMillis = ts instanceof Date ? ts.getTime() : typeof ts === "number" ? ts : Date.now();
    // Copies, so the caller may reuse its objects; the message itself is
    // built when sending, off the caller's path.
    const copy = { ...fields };
    if (copy.dimensions !== undefined) copy.dimensions = { ...copy.dimensions };
    if (copy.metadata !== undefined) copy.metadata = { ...copy.metadata };
    const entry: BufferedEvent = { seq: ++this.lastSeq, kind, atMillis, fields: copy };
    if (this.buffer.push(entry) !== undefined) {
      this.counts.dropped++;
      this.warnOnce(
        "overflow",
        `buffer full (${this.buffer.capacity} events): dropping the oldest`,
      );
      if (this.waiters.size > 0) this.wakeWaiters();
    }
    if (this.buffer.length >= this.batchSize && !this.pumpScheduled) {
      // Sending starts on the next turn of the event loop, never inside the caller's call.
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  private sendPartial(throughSeq: number): void {
    if (throughSeq > this.partialThrough) this.partialThrough = throughSeq;
    this.pump();
  }

  private pump(): void {
    while (this.inFlight.size < this.maxConcurrent) {
      const head = this.buffer.peek();
      if (head === undefined) return;
      if (this.buffer.length < this.batchSize && head.seq > this.partialThrough) return;
      const events = this.buffer.take(this.batchSize);
      const batch: InFlightBatch = { minSeq: head.seq, size: events.length };
      this.inFlight.add(batch);
      this.send(events, batch).then(
        () => this.finish(batch),
        (error: unknown) => {
          this.warnOnce("bug", `unexpected failure while sending: ${String(error)}`);
          this.settle(batch, "failed", batch.size);
          this.finish(batch);
        },
      );
    }
  }

  private finish(batch: InFlightBatch): void {
    this.inFlight.delete(batch);
    this.pump();
    this.wakeWaiters();
    if (this.inFlight.size === 0) {
      for (const resolve of this.idleResolvers.splice(0)) resolve();
    }
  }

  /**
   * Sends one batch until it is acknowledged, refused for good, or given up.
   * Every count goes through `settle`, which takes the events off the batch in
   * the same synchronous step, so `stats()` always balances.
   */
  private async send(buffered: BufferedEvent[], batch: InFlightBatch): Promise<void> {
    let events: MessageInitShape<typeof EventSchema>[] = [];
    for (const entry of buffered) {
      try {
        events.push(toEventInit(entry));
      } catch (error) {
        this.settle(batch, "rejected", 1);
        this.warnOnce("encode", `an event could not be encoded and was dropped: ${String(error)}`);
      }
    }
    const started = Date.now();
    let attempt = 0;
    // Sent with every retry of these events, so that a retry of a batch the
    // service committed (its answer lost to a timeout) is not stored twice.
    let batchId = newBatchId();
    while (events.length > 0) {
      try {
        const response = await this.rpc.ingest(
          { ...this.header, batchId, events },
          { headers: this.headers, timeoutMs: this.timeoutMs, signal: this.abort.signal },
        );
        this.settle(batch, "sent", events.length, response.accepted);
        return;
      } catch (reason) {
        const error = ConnectError.from(reason);
        if (this.abort.signal.aborted) break;
        attempt++;
        const decision = this.retry.decide(error, attempt);
        if (decision.action === "reject-invalid") {
          this.warnOnce("invalid", `the service rejected events as invalid: ${error.rawMessage}`);
          const invalid = decision.invalidIndexes;
          if (invalid.size === 0 || invalid.size >= events.length) {
            this.settle(batch, "rejected", events.length);
            return;
          }
          // Resend the valid rest: one bad event must not cost its 99 neighbours.
          this.settle(batch, "rejected", invalid.size);
          events = events.filter((_, i) => !invalid.has(i));
          batchId = newBatchId(); // another batch now
          continue;
        }
        if (decision.action === "give-up") {
          // A value protobuf cannot encode (an int32 of 2.5 from plain
          // JavaScript) fails the whole request before it leaves: find the
          // culprits, and send the others.
          const unencodable = error.code === Code.Internal ? unencodableIndexes(events) : [];
          if (unencodable.length > 0) {
            this.warnOnce(
              "encode",
              `an event could not be encoded and was dropped: ${error.message}`,
            );
            this.settle(batch, "rejected", unencodable.length);
            events = events.filter((_, i) => !unencodable.includes(i));
            batchId = newBatchId();
            continue;
          }
          const keyProblem =
            error.code === Code.Unauthenticated || error.code === Code.PermissionDenied;
          this.settle(batch, keyProblem ? "unauthenticated" : "failed", events.length);
          this.warnOnce(`code:${error.code}`, `the service refused a batch: ${error.message}`);
          return;
        }
        if (Date.now() - started + decision.delayMillis > this.retry.maxElapsedMillis) {
          this.warnOnce("exhausted", `gave up a batch after retrying: ${error.message}`);
          break;
        }
        this.counts.retries++;
        if (!(await sleep(decision.delayMillis, this.abort.signal))) break;
      }
    }
    this.settle(batch, "failed", events.length);
  }

  /** Counts `events` of the batch under `counter` (as `amount`, if the server said otherwise). */
  private settle(batch: InFlightBatch, counter: Counter, events: number, amount = events): void {
    this.counts[counter] += amount;
    batch.size -= events;
  }

  private settledThrough(seq: number): boolean {
    const head = this.buffer.peek();
    if (head !== undefined && head.seq <= seq) return false;
    for (const batch of this.inFlight) {
      if (batch.minSeq <= seq) return false;
    }
    return true;
  }

  private wakeWaiters(): void {
    for (const waiter of this.waiters) {
      if (this.settledThrough(waiter.throughSeq)) {
        this.waiters.delete(waiter);
        waiter.resolve(true);
      }
    }
  }

  private async shutDown(timeoutMillis: number): Promise<boolean> {
    if (this.timer !== undefined) clearInterval(this.timer);
    const drained = await this.flush(timeoutMillis);
    if (!drained) {
      this.abort.abort();
      const abandoned = this.buffer.take(this.buffer.length).length;
      this.counts.failed += abandoned;
      if (abandoned > 0) this.warnOnce("close", `closed with ${abandoned} events unsent`);
    }
    if (this.inFlight.size > 0) {
      await new Promise<void>((resolve) => this.idleResolvers.push(resolve));
    }
    this.owned?.close();
    return drained;
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.logger.warn(message);
  }
}

/** `<service>-<pid>`, the service name shortened so that it fits the 50-character limit. */
/** Indexes of the events protobuf cannot encode (the error path only: it encodes each one). */
function unencodableIndexes(events: MessageInitShape<typeof EventSchema>[]): number[] {
  const indexes: number[] = [];
  events.forEach((event, i) => {
    try {
      toBinary(EventSchema, create(EventSchema, event));
    } catch {
      indexes.push(i);
    }
  });
  return indexes;
}

function defaultInstanceId(service: string): string {
  const pid = String(process.pid);
  return `${service.slice(0, 49 - pid.length)}-${pid}`;
}

/** Waits `millis`; resolves false at once if `signal` aborts. */
async function sleep(millis: number, signal: AbortSignal): Promise<boolean> {
  try {
    // Unref'd: a batch waiting to be retried never keeps the process alive.
    await delay(millis, undefined, { signal, ref: false });
    return true;
  } catch {
    return false;
  }
}

function parseUrl(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new RangeError(
      `baseUrl must be an http:// or https:// URL, got ${JSON.stringify(baseUrl)}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new RangeError(
      `baseUrl must be an http:// or https:// URL, got ${JSON.stringify(baseUrl)}`,
    );
  }
  return baseUrl;
}

function integerOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}
