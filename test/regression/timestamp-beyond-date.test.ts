// backends: sqlite only: timestamp validation, before storage
// Bug: an event timestamp past what a JS Date holds made Date.toISOString throw while validating, answering INTERNAL.
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { failure, GRPC, ingestClient } from "../support/clients.js";
import { countRows, startTestService, type TestService } from "../support/service.js";

describe("regression: a timestamp beyond what a Date holds", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should answer a gRPC Ingest with INVALID_ARGUMENT naming events[0].timestamp", async () => {
    const error = await failure(
      ingestClient(GRPC, svc.url, svc.key).ingest({
        service: "test-service",
        events: [
          {
            timestamp: { seconds: 10n ** 15n, nanos: 0 },
            value: 1,
            kind: { case: "custom", value: { metricName: "far_future" } },
          },
        ],
      }),
    );
    expect(error.code, error.rawMessage).toBe(Code.InvalidArgument);
    expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations).toEqual([
      expect.objectContaining({ field: "events[0].timestamp" }),
    ]);
    expect(countRows(svc.db, "metrics")).toBe(0);
  });
});
