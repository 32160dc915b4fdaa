import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countIn, startTestService, type TestService } from "../support/service.js";

const run = promisify(execFile);
const EXAMPLE = join(
  import.meta.dirname,
  "..",
  "..",
  "dist",
  "clients",
  "examples",
  "first-event.js",
);

describe("the README's generated-client example", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should send its events and have them stored", async () => {
    const { stdout } = await run(process.execPath, [EXAMPLE], {
      env: {
        METRICS_SERVICE_URL: svc.url,
        METRICS_API_KEY: svc.key,
        METRICS_SERVICE_NAME: "test-service",
      },
    });
    const requestId = /accepted 2 events as (req_[0-9a-f]{16})/.exec(stdout)?.[1];
    expect(requestId).toBeDefined();
    expect(
      await countIn(svc.sql, "auth_metrics", "request_id = ? AND server = 'github'", requestId),
    ).toBe(1);
    expect(
      await countIn(
        svc.sql,
        "tool_metrics",
        "request_id = ? AND tool_name = 'current_time'",
        requestId,
      ),
    ).toBe(1);
  });
});
