// backends: sqlite only: the ingestor called directly over SQLite's in-memory store; no service
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EventSchema } from "../../gen/mcp/metrics/v1/events_pb.js";
import { createIngestor } from "../../src/ingest/ingestor.js";
import { RPC_PATHS } from "../../src/ingest/validate.js";
import { createLogger } from "../../src/log.js";
import { openDatabase } from "../../src/storage/sqlite/database.js";
import { createEventStore } from "../../src/storage/sqlite/event-store.js";

describe("regression: an instrument failing after the commit", () => {
  it("should still acknowledge the committed batch (a retry would store it twice)", async () => {
    const db = openDatabase(":memory:", { synchronous: "FULL", busyTimeoutMillis: 100 });
    const ingestor = createIngestor({
      store: createEventStore(db, { maxBatchRows: 100, maxDelayMillis: 0 }),
      log: createLogger("silent"),
      observer: {
        committed: () => {
          throw new Error("instrument failure");
        },
        rejected: () => {},
      },
    });
    const event = create(EventSchema, { kind: { case: "authRequest", value: { success: true } } });
    const outcome = await ingestor.ingest(
      { service: "svc", events: [event] },
      {
        paths: RPC_PATHS,
        principal: {
          keyId: 1,
          publicId: "key_000000000001",
          source: null,
          bucketId: "k1",
          service: "svc",
          scope: "ingest",
          rateLimitPerMinute: 10,
        },
      },
    );
    expect(outcome).toMatchObject({ ok: true, accepted: 1 });
    expect(db.prepare("SELECT count(*) AS n FROM metrics").get()).toEqual({ n: 1 });
    db.close();
  });
});
