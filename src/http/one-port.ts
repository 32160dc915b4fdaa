import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { type ConnectionRefusal, limitConnections } from "./connection-limit.js";

/** A request handler both the HTTP/1.1 and the HTTP/2 server call. */
export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/**
 * How a request counts against the bounds, judged from its headers alone:
 * `exempt` (health checks: never counted nor refused), `known` (a valid API
 * key) or `anonymous` (no key, or a wrong one), whose pool is kept small so
 * that requests without a valid key can never crowd out those with one.
 * `{ refuse }` answers the request at once with that handler, body unread
 * (a call whose headers already show it cannot be served).
 */
export type PortAdmission =
  | "exempt"
  | Pool
  /** A valid key's request, `known` pool, held by that key for its fair share. */
  | { readonly known: string }
  | { readonly refuse: RequestHandler };

/** The bounded pools of requests in flight. */
type Pool = "known" | "anonymous";

/** How often idle and slow HTTP/1.1 connections are looked for. */
const CONNECTIONS_CHECK_MILLIS = 1000;

/** Timeouts and limits of the one port; all in milliseconds or counts. */
export interface OnePortOptions {
  /** Time to receive a whole HTTP/1.1 request (Node's `requestTimeout`). */
  readonly requestTimeoutMillis: number;
  /** Time to receive HTTP/1.1 request headers, and the first bytes of any connection. */
  readonly headersTimeoutMillis: number;
  /** How long an idle HTTP/1.1 keep-alive connection stays open. */
  readonly keepAliveTimeoutMillis: number;
  /** How long an idle HTTP/2 session stays open. */
  readonly http2IdleTimeoutMillis: number;
  /** Concurrent streams per HTTP/2 connection. */
  readonly http2MaxConcurrentStreams: number;
  /**
   * Streams a client may reset before answering, per connection: a burst, then
   * so many per second. Beyond it the connection gets GOAWAY ENHANCE_YOUR_CALM
   * and is closed (rapid reset, CVE-2023-44487).
   */
  readonly http2ResetBurst: number;
  readonly http2ResetsPerSecond: number;
  /** Requests with a valid key that may be handled at once, streams included. */
  readonly maxConcurrentRequests: number;
  /** Requests without a valid key that may be handled at once (they are answered 401 or 422 soon). */
  readonly maxAnonymousRequests: number;
  /**
   * A key's fair share of `maxConcurrentRequests`: past it, a key's request is
   * refused ({@link onShareExceeded}) while fewer than this many slots would
   * be left for the other keys, so that one key can never hold the pool; a
   * key alone may use the rest.
   */
  readonly maxRequestsPerKey: number;
  /** Answers a key's request over its share, without reading its body (429 / RESOURCE_EXHAUSTED). */
  readonly onShareExceeded?: RequestHandler;
  /** Sorts a request by its headers; every request counts as `known` when absent. */
  readonly admission?: (...args: Parameters<RequestHandler>) => PortAdmission;
  /**
   * Answers a request over its bound without reading its body, so that a
   * flood is refused instead of buffered.
   */
  readonly onOverload?: RequestHandler;
  /**
   * Called once a request is admitted within its bound, before its body is
   * read; returns false when it answered the request itself (e.g. an empty
   * token bucket, spent only by requests that are served).
   */
  readonly onAdmitted?: (...args: Parameters<RequestHandler>) => boolean | Promise<boolean>;
  /**
   * A certificate and its private key (PEM): the port then speaks TLS only,
   * and ALPN picks HTTP/2 (`h2`) or HTTP/1.1 for each connection.
   */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  /** Told about errors of the listening socket after start-up (they do not stop the server). */
  readonly onError?: (error: Error) => void;
  /**
   * Connections open at once, whatever their address (default
   * {@link DEFAULT_MAX_CONNECTIONS}); more are closed as they are accepted.
   */
  readonly maxConnections?: number;
  /**
   * Connections open at once from one client address (default
   * {@link DEFAULT_MAX_CONNECTIONS_PER_ADDRESS}); more are reset as they are accepted.
   */
  readonly maxConnectionsPerAddress?: number;
  /** Told about each connection refused by one of those two bounds. */
  readonly onConnectionRefused?: (reason: ConnectionRefusal) => void;
}

/** Sensible defaults for an ingestion port behind a load balancer. */
export const DEFAULT_ONE_PORT_OPTIONS: OnePortOptions = {
  requestTimeoutMillis: 30_000,
  headersTimeoutMillis: 10_000,
  // Longer than the 60 s idle timeout of common load balancers, so they close first.
  keepAliveTimeoutMillis: 65_000,
  http2IdleTimeoutMillis: 120_000,
  http2MaxConcurrentStreams: 256,
  http2ResetBurst: 200,
  http2ResetsPerSecond: 20,
  maxConcurrentRequests: 64,
  maxAnonymousRequests: 16,
  maxRequestsPerKey: 16,
};

/**
 * One TCP port serving HTTP/1.1 and HTTP/2: cleartext (h2c with prior
 * knowledge), or TLS with ALPN when a certificate is configured.
 */
export interface OnePortServer {
  listen(port: number, host: string): Promise<net.AddressInfo>;
  /** Requests being handled right now. */
  readonly inFlight: number;
  /**
   * Stops accepting connections, lets in-flight requests finish (HTTP/2
   * sessions get GOAWAY, HTTP/1.1 connections close after their response),
   * and destroys whatever is left after `timeoutMillis`.
   */
  close(timeoutMillis: number): Promise<void>;
}

/** How long idle HTTP/1.1 connections stay open during a shutdown, for requests already on their way. */
const IDLE_GRACE_MILLIS = 250;

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Malformed frames an HTTP/2 connection may send before it is closed (Node's default, made explicit). */
const MAX_INVALID_FRAMES = 1000;
/** Streams refused over the concurrency limit before the connection is closed (Node's default, made explicit). */
const MAX_REJECTED_STREAMS = 100;

/**
 * Closes an HTTP/2 connection whose streams are reset faster than a token
 * bucket allows: each stream that ends in RST_STREAM with an error costs a
 * token (rapid reset, CVE-2023-44487, once the server has started on the
 * calls; nghttp2 itself ends sessions that reset streams before the server
 * sees them). Clients that cancel a call now and then (a deadline, a user
 * giving up) never come near it.
 */
function limitResets(session: http2.ServerHttp2Session, burst: number, perSecond: number): void {
  let tokens = burst;
  let last = performance.now();
  let lastStreamId = 0;
  session.on("stream", (stream) => {
    lastStreamId = Math.max(lastStreamId, stream.id ?? 0);
    stream.once("close", () => {
      // Only streams reset with an error count (a client's CANCEL, mostly):
      // calls that end normally close with NO_ERROR.
      const code = stream.rstCode ?? http2.constants.NGHTTP2_NO_ERROR;
      if (code === http2.constants.NGHTTP2_NO_ERROR) return;
      const now = performance.now();
      tokens = Math.min(burst, tokens + ((now - last) / 1000) * perSecond);
      last = now;
      if (--tokens >= 0 || session.closed || session.destroyed) return;
      // The last stream id tells the client which calls may have been processed
      // (the default, 0, would say none were, inviting retries of stored ones).
      session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, lastStreamId);
      // On the next turn, once the GOAWAY frame is written.
      setImmediate(() => session.destroy());
    });
  });
}

/**
 * Connections the one port holds open at once by default. Every open
 * connection is a file descriptor; Node raises its soft descriptor limit to
 * the hard one at start-up (20,000 on the machine the limits were measured
 * on; hosts and container runtimes differ), and a flood of 19,990 half-open
 * connections exhausted it. 4,096 leaves most of the 20,000 to the
 * database, the Prometheus port and the exporters, yet is 16 times what one
 * address may hold and 64 times the requests handled at once.
 */
export const DEFAULT_MAX_CONNECTIONS = 4096;

/**
 * Connections one client address may hold open on the one port by default.
 * Generous, because a load balancer, a NAT or a node's SNAT puts many clients
 * behind one address: a gateway replica needs a few (one HTTP/2 connection
 * carries every gRPC call; HTTP/1.1 keep-alive pools hold some tens), and
 * 256 still caps what one attacker's address can take at a sixteenth of the
 * total.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 256;

/**
 * Builds the one-port server. Node's `http2.createServer({ allowHTTP1 })`
 * does not serve HTTP/1.1 without TLS (nodejs/node#26795, docs/dependencies.md trap 1), so
 * a plain `net.Server` accepts each socket, reads until the first bytes show
 * whether it starts with the HTTP/2 connection preface, and hands it to the
 * HTTP/2 or the HTTP/1.1 server, which share one handler.
 */
export function createOnePortServer(
  handler: RequestHandler,
  options: OnePortOptions,
): OnePortServer {
  let inFlight = 0;
  /** Requests counted against each bound. */
  const counts: Record<Pool, number> = { known: 0, anonymous: 0 };
  const bounds = { known: options.maxConcurrentRequests, anonymous: options.maxAnonymousRequests };
  /** Requests in flight per key (`{ known }` admissions), for the fair share. */
  const held = new Map<string, number>();
  let draining = false;
  let onIdle: (() => void) | undefined;
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();

  /** Resolves when no request is in flight, or at the deadline. */
  const idle = (deadline: number): Promise<void> =>
    inFlight === 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          onIdle = () => {
            clearTimeout(timer);
            resolve();
          };
        });

  /** HTTP/1.1 responses in flight, to end their keep-alive when a shutdown begins. */
  const openResponses = new Set<http.ServerResponse>();
  const endKeepAlive = (res: http.ServerResponse): void => {
    if (!res.headersSent) res.shouldKeepAlive = false;
  };

  /** Whether a request of the key `holder` would take more than its share of the known pool now. */
  const overShare = (holder: string): boolean =>
    (held.get(holder) ?? 0) >= options.maxRequestsPerKey &&
    bounds.known - counts.known <= options.maxRequestsPerKey;

  const tracked: RequestHandler = (req, res) => {
    const admission = options.admission?.(req, res) ?? "known";
    const holder =
      typeof admission === "object" && "known" in admission ? admission.known : undefined;
    const pool: Pool | undefined =
      holder !== undefined
        ? "known"
        : typeof admission === "string" && admission !== "exempt"
          ? admission
          : undefined;
    const refused =
      typeof admission === "object" && "refuse" in admission
        ? admission.refuse
        : pool !== undefined && counts[pool] >= bounds[pool]
          ? options.onOverload
          : holder !== undefined && overShare(holder)
            ? options.onShareExceeded
            : undefined;
    const counted = pool !== undefined && !refused ? pool : undefined;
    const holding = counted !== undefined ? holder : undefined;
    inFlight++;
    if (counted) counts[counted]++;
    if (holding !== undefined) held.set(holding, (held.get(holding) ?? 0) + 1);
    const h1Response = res instanceof http.ServerResponse ? res : undefined;
    if (h1Response) {
      openResponses.add(h1Response);
      // A refused body is never read: close the connection after the answer
      // instead of letting Node read and discard it to reuse the connection.
      if (draining || refused) endKeepAlive(h1Response);
    }
    let done = false;
    const finished = (): void => {
      if (done) return;
      done = true;
      inFlight--;
      if (counted) counts[counted]--;
      if (holding !== undefined) {
        const left = (held.get(holding) ?? 1) - 1;
        if (left === 0) held.delete(holding);
        else held.set(holding, left);
      }
      if (h1Response) openResponses.delete(h1Response);
      if (inFlight === 0) onIdle?.();
    };
    res.once("close", finished);
    // A request is done once its answer is written. Node's HTTP/2 compatibility
    // response reports "close" only when both sides of the stream are closed, so
    // a client stream the server answered early (e.g. at shutdown) would count as
    // in flight until its client stops sending.
    if (res instanceof http2.Http2ServerResponse) res.stream.once("finish", finished);
    if (refused) return refused(req, res);
    const serve = (): void => {
      // `Expect: 100-continue` is answered only for admitted requests, so that a
      // refused client is not invited to upload its body.
      if (req.headers.expect?.toLowerCase() === "100-continue") res.writeContinue();
      handler(req, res);
    };
    const admitted = options.onAdmitted?.(req, res) ?? true;
    if (admitted === true) return serve();
    if (admitted === false) return;
    admitted.then(
      (ok) => {
        if (ok) serve();
      },
      (error: unknown) => {
        options.onError?.(error instanceof Error ? error : new Error(String(error)));
        res.destroy();
      },
    );
  };

  const h1 = http.createServer(
    {
      requestTimeout: options.requestTimeoutMillis,
      headersTimeout: options.headersTimeoutMillis,
      keepAliveTimeout: options.keepAliveTimeoutMillis,
      // How often Node looks for connections past those two timeouts; its
      // default (30 s) would let a slow client hold on that much longer.
      connectionsCheckingInterval: CONNECTIONS_CHECK_MILLIS,
    },
    tracked,
  );
  // Node starts enforcing headersTimeout and requestTimeout when a server
  // emits "listening", and this one never listens (the sniffer hands it its
  // connections): without this, a client sending its headers one byte at a
  // time kept its connection forever (slowloris).
  h1.emit("listening");
  h1.on("checkContinue", tracked);
  const h2 = http2.createServer(
    {
      // Header blocks over 64 KiB are refused by nghttp2 itself (REFUSED_STREAM);
      // Node does not enforce a smaller maxHeaderListSize on what it receives.
      settings: { maxConcurrentStreams: options.http2MaxConcurrentStreams },
      maxSessionInvalidFrames: MAX_INVALID_FRAMES,
      maxSessionRejectedStreams: MAX_REJECTED_STREAMS,
    },
    tracked,
  );
  h2.on("checkContinue", tracked);
  h2.setTimeout(options.http2IdleTimeoutMillis);
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    // A session opened while draining is not sent GOAWAY: its calls are
    // answered (refused with UNAVAILABLE and a retry delay, or health checks
    // with NOT_SERVING), and it is ended with the others.
    // A client that connects (cleartext or TLS) but never sends its SETTINGS
    // is cut off like one that never sends its headers.
    const silent = setTimeout(() => session.destroy(), options.headersTimeoutMillis);
    session.once("remoteSettings", () => clearTimeout(silent));
    session.once("close", () => clearTimeout(silent));
    // A request stream that sends and receives nothing for the HTTP/1.1
    // request timeout is reset: slow bodies cannot hold a slot for ever.
    session.on("stream", (stream) => {
      stream.setTimeout(options.requestTimeoutMillis, () =>
        stream.close(http2.constants.NGHTTP2_CANCEL),
      );
    });
    limitResets(session, options.http2ResetBurst, options.http2ResetsPerSecond);
  });

  const route = (socket: net.Socket): void => {
    // Counted before anything is read: a refused socket costs one accept.
    if (!admitConnection(socket)) return;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    let head = Buffer.alloc(0);
    const giveUp = setTimeout(() => socket.destroy(), options.headersTimeoutMillis);
    socket.once("close", () => clearTimeout(giveUp));
    const onError = (): void => {
      clearTimeout(giveUp);
      socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, HTTP2_PREFACE.length);
      const isHttp2 = head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
      if (isHttp2 && head.length < HTTP2_PREFACE.length) return;
      clearTimeout(giveUp);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.pause();
      socket.unshift(head);
      // Both servers take over reading: the HTTP/2 session replays bytes already
      // buffered on the socket on its next tick (nodejs/node#35475), the HTTP/1.1
      // parser reads them when the stream flows again.
      if (isHttp2) {
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.on("error", onError);
  };
  /** TLS: the handshake already chose the protocol (ALPN); no sniffing needed. */
  const routeTls = (socket: tls.TLSSocket): void => {
    if (socket.alpnProtocol === "h2") h2.emit("connection", socket);
    else h1.emit("connection", socket);
  };
  const server: net.Server = options.tls
    ? tls
        .createServer({
          cert: options.tls.cert,
          key: options.tls.key,
          ALPNProtocols: ["h2", "http/1.1"],
          minVersion: "TLSv1.2",
          // A client that never finishes its handshake is cut off like a slow one.
          handshakeTimeout: options.headersTimeoutMillis,
          noDelay: true,
        })
        .on("secureConnection", routeTls)
        // Tracked from the TCP connection, so a shutdown also ends handshakes in progress.
        .on("connection", (socket: net.Socket) => {
          sockets.add(socket);
          socket.once("close", () => sockets.delete(socket));
        })
        // A failed handshake (a plaintext client, a bad certificate) only ends that connection.
        .on("tlsClientError", (_error, socket) => socket.destroy())
    : net.createServer({ noDelay: true }, route);
  const admitConnection = limitConnections(server, {
    maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    maxConnectionsPerAddress:
      options.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    onRefused: options.onConnectionRefused,
  });
  // The TLS server's own listener, which starts the handshake, comes first
  // unless this one is put before it: a refused socket is then reset before
  // any handshake work (the TLS listener only sees it closed).
  if (options.tls) server.prependListener("connection", (s: net.Socket) => admitConnection(s));
  // After listen, errors come from accept() (e.g. EMFILE under a connection
  // flood): report them and keep serving instead of crashing.
  const onServerError = (error: Error): void => options.onError?.(error);

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          server.on("error", onServerError);
          resolve(server.address() as net.AddressInfo);
        });
      });
    },
    get inFlight() {
      return inFlight;
    },
    async close(timeoutMillis) {
      draining = true;
      const deadline = Date.now() + timeoutMillis;
      // The port keeps accepting until the in-flight requests are done, so
      // that a probe or a request on a new connection is answered (503,
      // NOT_SERVING, UNAVAILABLE with Retry-After) instead of refused.
      // GOAWAY: clients move new calls to a new connection at once. A stream a
      // client sent before the GOAWAY reached it is reset with REFUSED_STREAM,
      // which HTTP/2 and gRPC define as unprocessed and safe to retry.
      for (const session of sessions) session.close();
      // Answers still to come say `Connection: close`, so their clients do not
      // reuse a connection that is about to go away.
      for (const res of openResponses) endKeepAlive(res);
      // Idle HTTP/1.1 connections stay open a moment: closing one while its client
      // starts a request on it loses that request to EPIPE. Requests arriving now
      // are refused with a retryable answer and `Connection: close` instead.
      await idle(deadline);
      await new Promise((r) =>
        setTimeout(r, Math.max(0, Math.min(IDLE_GRACE_MILLIS, deadline - Date.now()))),
      );
      await idle(deadline);
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      h1.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
}
