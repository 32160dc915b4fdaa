import { createConnection, createServer, type Socket } from "node:net";

/**
 * A TCP relay to a PostgreSQL server, for faults a real network has: not
 * there yet (listen later), gone (cut every connection), answers lost
 * (the server's replies dropped while requests still reach it), or silent
 * (everything dropped both ways).
 */
export interface PgRelay {
  /** Drops what the server sends from now on, until {@link cut}. */
  dropReplies(): void;
  /**
   * Drops every byte both ways from now on, on open and new connections
   * alike (still accepted, never answered), as a network that silently drops
   * packets would: nothing reaches the server, nothing comes back. Until {@link cut}.
   */
  blackhole(): void;
  /** Ends every relayed connection at once, as a partition would; new ones pass again. */
  cut(): void;
  close(): void;
}

/** Listens on `port` (127.0.0.1) and relays each connection to `target`. */
export function pgRelay(target: URL, port: number): Promise<PgRelay> {
  const sockets = new Set<Socket>();
  let dropping = false;
  let silent = false;
  const server = createServer((client) => {
    const upstream = createConnection(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    client.on("data", (chunk) => {
      if (!silent) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!dropping && !silent) client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      socket.on("error", end);
      socket.on("close", end);
    }
  });
  const cut = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    dropping = false;
    silent = false;
  };
  return new Promise((resolve) =>
    server.listen(port, "127.0.0.1", () =>
      resolve({
        dropReplies: () => {
          dropping = true;
        },
        blackhole: () => {
          silent = true;
        },
        cut,
        close: () => {
          server.close();
          cut();
        },
      }),
    ),
  );
}

/** The URL with its host and port replaced by the relay's. */
export function viaRelay(url: string, port: number): string {
  const relayed = new URL(url);
  relayed.host = `127.0.0.1:${port}`;
  return relayed.toString();
}
