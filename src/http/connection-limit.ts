import type * as net from "node:net";

/** Why a connection was refused: the port's total bound, or its client address's. */
export type ConnectionRefusal = "total" | "per_address";

/** The bounds on a listening port's open connections. */
export interface ConnectionLimits {
  /** Connections open at once on the port, whatever their address. */
  readonly maxConnections: number;
  /** Connections open at once from one client address. */
  readonly maxConnectionsPerAddress: number;
  /** Told about every connection refused, once. */
  readonly onRefused?: ((reason: ConnectionRefusal) => void) | undefined;
}

/**
 * Bounds the connections `server` holds open, in total and per client
 * address, so that a flood of connections (19,990 half-open ones from one
 * client made the process hit its file-descriptor limit, and every other
 * client got resets) can never take the descriptors the port and the
 * database need.
 *
 * The total is Node's own `maxConnections`: over it, the accepted handle is
 * closed inside `accept`'s callback, before a `Socket` object exists (the
 * `drop` event counts it). The per-address bound is the returned `admit`,
 * which the server's first `connection` listener must call before anything
 * reads the socket or starts a TLS handshake: over the bound the socket is
 * reset at once (RST: no TIME_WAIT state left on the server, and the client
 * sees ECONNRESET straight away instead of waiting for a timeout).
 */
export function limitConnections(
  server: net.Server,
  limits: ConnectionLimits,
): (socket: net.Socket) => boolean {
  server.maxConnections = limits.maxConnections;
  server.on("drop", () => limits.onRefused?.("total"));
  /** Open connections by client address; an address leaves the map at zero. */
  const open = new Map<string, number>();
  return (socket) => {
    const address = socket.remoteAddress;
    // Undefined once the client has already gone (reset before the accept was handled).
    if (address === undefined) {
      socket.destroy();
      return false;
    }
    const count = open.get(address) ?? 0;
    if (count >= limits.maxConnectionsPerAddress) {
      socket.resetAndDestroy();
      limits.onRefused?.("per_address");
      return false;
    }
    open.set(address, count + 1);
    socket.once("close", () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
    return true;
  };
}
