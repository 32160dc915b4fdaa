/**
 * Arm B of the ingest benchmark: a bare `node:http` server that parses each
 * `POST /metrics` body with `JSON.parse` and inserts its events in one
 * transaction, into the service's own schema and indexes (the same insert
 * statements). No auth, no validation, no instruments, no group commit.
 *
 * Usage: node dist/bench/ingest/bare-server.js <database file>
 * Prints `{"port": N}` on stdout once it listens on 127.0.0.1.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { openDatabase } from "../../src/storage/sqlite/database.js";
import { createEventStore } from "../../src/storage/sqlite/event-store.js";
import { bareRow } from "./bare-rows.js";

const path = process.argv[2];
if (path === undefined) throw new Error("usage: bare-server.js <database file>");
const db = openDatabase(path, { synchronous: "FULL", busyTimeoutMillis: 5000 });
// The service's insert statements; flush() right after append() commits each
// request in a transaction of its own.
const store = createEventStore(db, { maxBatchRows: 1_000_000, maxDelayMillis: 0 });
let requests = 0;

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    const now = Date.now();
    const rows = (body.metrics as Record<string, unknown>[]).map((e) => bareRow(e, body, now));
    const done = store.append(`req_${++requests}`, rows);
    void store.flush();
    done.then(
      () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(`{"accepted":${rows.length}}`);
      },
      () => {
        res.writeHead(503);
        res.end();
      },
    );
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on("SIGTERM", () => {
  server.close();
  void store.close().finally(() => {
    db.close();
    process.exit(0);
  });
});
