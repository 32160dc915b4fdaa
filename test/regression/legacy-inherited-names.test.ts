import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import { countIn, startTestService, type TestService } from "../support/service.js";

/**
 * "constructor" once read as a special float (via `in`), reached SQLite as a
 * function, and failed every request sharing its transaction.
 */
describe("regression: strings that name Object properties as numbers", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it.each([
    ["value", "constructor"],
    ["value", "__proto__"],
    ["duration_ms", "constructor"],
    ["value", "0x10"],
  ])("should answer 422 float_parsing for %s %j", async (field, text) => {
    const res = await postMetrics(
      svc.url,
      { service: "names", metrics: [legacyMetric({ [field]: text })] },
      { key: svc.key },
    );
    expect(res.status).toBe(422);
    expect(res.json.detail).toEqual([
      expect.objectContaining({ type: "float_parsing", loc: ["body", "metrics", 0, field] }),
    ]);
  });

  it("should store concurrent valid requests whatever a neighbour sends", async () => {
    const key = await svc.keyFor("neighbours");
    const sends = Array.from({ length: 8 }, (_, i) =>
      postMetrics(
        svc.url,
        {
          service: "neighbours",
          metrics: [legacyMetric(i % 2 ? { duration_ms: "constructor" } : {})],
        },
        { key },
      ),
    );
    const statuses = (await Promise.all(sends)).map((r) => r.status);
    expect(statuses).toEqual([200, 422, 200, 422, 200, 422, 200, 422]);
    expect(await countIn(svc.sql, "metrics", "service = 'neighbours'")).toBe(4);
  });
});
