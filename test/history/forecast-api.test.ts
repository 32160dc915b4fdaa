import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueryService } from "../../gen/mcp/metrics/v1/query_pb.js";
import { apiKey, failure, GRPC, PROTOCOLS } from "../support/clients.js";
import { postMetrics } from "../support/legacy.js";
import { startTestService, type TestService } from "../support/service.js";

const DAY = 86_400_000;
/** Today's UTC midnight: the default end of a forecast's history. */
const TODAY = Math.floor(Date.now() / DAY) * DAY;
/** The seeded days: the 35 before today. */
const DAYS = 35;
const dayStart = (d: number) => TODAY - (DAYS - d) * DAY;
/** Weekday index, 0 Monday. */
const weekdayOf = (ms: number) => (new Date(ms).getUTCDay() + 6) % 7;

/** Service `grow`: 20 + 2d tool calls on day d, an exact line. */
const growing = (d: number) => 20 + 2 * d;
/** Service `office`: 40 calls each weekday, 10 on Saturday and Sunday. */
const office = (d: number) => (weekdayOf(dayStart(d)) < 5 ? 40 : 10);

/**
 * Forecast against a real service on the suite's backend (docs/history.md,
 * Forecast), seeded through the JSON ingress with daily counts whose trend
 * is known exactly.
 */
describe("QueryService.Forecast", () => {
  let svc: TestService;
  let query: Client<typeof QueryService>;
  let read: string;

  beforeAll(async () => {
    svc = await startTestService();
    read = await svc.keyFor("dashboards", "read");
    query = createClient(QueryService, GRPC.transport(svc.url, [apiKey(read)]));
    for (const [service, count] of [
      ["grow", growing],
      ["office", office],
    ] as const) {
      const metrics = Array.from({ length: DAYS }, (_, d) =>
        Array.from({ length: count(d) }, (_, i) => ({
          type: "tool_execution",
          value: 1,
          duration_ms: 10,
          // Spread over the day's hours.
          timestamp: (dayStart(d) + (i % 24) * 3_600_000 + 60_000) / 1000,
          dimensions: { tool_name: "search", success: true },
        })),
      ).flat();
      for (let i = 0; i < metrics.length; i += 500) {
        const posted = await postMetrics(
          svc.url,
          { service, metrics: metrics.slice(i, i + 500) },
          { key: svc.key },
        );
        expect(posted.status).toBe(200);
      }
    }
  });
  afterAll(() => svc?.close());

  it("should project an exact line exactly, over every protocol, with the method named", async () => {
    for (const protocol of PROTOCOLS) {
      const client = createClient(QueryService, protocol.transport(svc.url, [apiKey(read)]));
      const answer = await client.forecast({
        eventType: "tool_execution",
        filters: { service: "grow" },
        historyDays: DAYS,
        horizonDays: 7,
      });
      expect(
        answer.history.map((p) => p.value),
        protocol.name,
      ).toEqual(Array.from({ length: DAYS }, (_, d) => growing(d)));
      expect(timestampDate(answer.history[0]?.time ?? timestampFromMs(0)).getTime()).toBe(
        dayStart(0),
      );
      expect(answer.slopePerDay).toBeCloseTo(2, 6);
      expect(answer.rSquared).toBeCloseTo(1, 6);
      expect(answer.forecast).toHaveLength(7);
      answer.forecast.forEach((p, i) => {
        expect(timestampDate(p.time ?? timestampFromMs(0)).getTime()).toBe(TODAY + i * DAY);
        expect(p.value).toBeCloseTo(growing(DAYS + i), 4);
        expect(p.lower).toBeLessThanOrEqual(p.value);
        expect(p.upper).toBeGreaterThanOrEqual(p.value);
      });
      expect(answer.method).toMatch(/least-squares linear trend/);
      expect(answer.holdout?.relativeError).toBeLessThan(1e-6);
      expect(answer.answered?.sources.map((s) => s.grain)).toEqual(["day"]);
      expect(answer.unavailable).toBe("");
      // Raw retention's horizon, 90 days by default.
      const rawSince = timestampDate(answer.answered?.rawKeptSince ?? timestampFromMs(0)).getTime();
      expect(Math.abs(rawSince - (Date.now() - 90 * DAY))).toBeLessThan(60_000);
    }
  });

  it("should find a weekly pattern and project it onto the coming weekdays", async () => {
    const answer = await query.forecast({
      eventType: "tool_execution",
      filters: { service: "office" },
      historyDays: DAYS,
      horizonDays: 14,
    });
    expect(answer.weekly).toBe(true);
    // 40 and 10 against the week's average of 220/7.
    const average = 220 / 7;
    answer.weekdayFactors.forEach((f, w) => {
      expect(f).toBeCloseTo((w < 5 ? 40 : 10) / average, 6);
    });
    expect(answer.slopePerDay).toBeCloseTo(0, 6);
    for (const p of answer.forecast) {
      const ms = timestampDate(p.time ?? timestampFromMs(0)).getTime();
      expect(p.value).toBeCloseTo(weekdayOf(ms) < 5 ? 40 : 10, 4);
    }
  });

  it("should start the history at the first day with events, and forecast other measures", async () => {
    const answer = await query.forecast({
      eventType: "tool_execution",
      measure: "error_rate",
      filters: { service: "grow" },
      historyDays: 90,
    });
    expect(answer.history).toHaveLength(DAYS);
    expect(answer.forecast).toHaveLength(30);
    for (const p of answer.forecast) expect(p.value).toBe(0);
  });

  it("should fit only whole days that are over, and read raw events from where they are kept", async () => {
    const later = await query.forecast({
      eventType: "tool_execution",
      filters: { service: "grow" },
      historyDays: DAYS,
      end: timestampFromMs(TODAY + 10 * DAY),
    });
    expect(later.history.map((p) => p.value)).toEqual(
      Array.from({ length: DAYS }, (_, d) => growing(d)),
    );
    expect(later.slopePerDay).toBeCloseTo(2, 6);
    // Two dimensions at once: only the raw events answer, from raw retention's horizon on.
    const raw = await query.forecast({
      eventType: "tool_execution",
      filters: { service: "grow", tool_name: "search", success: "true" },
      historyDays: 365,
      horizonDays: 3,
    });
    expect(raw.answered?.sources.map((s) => s.grain)).toEqual(["raw"]);
    expect(raw.history.map((p) => p.value)).toEqual(
      Array.from({ length: DAYS }, (_, d) => growing(d)),
    );
    expect(raw.forecast.map((p) => Math.round(p.value))).toEqual([90, 92, 94]);
  });

  it("should refuse a history too short, an unknown measure, and a range without enough days", async () => {
    const short = await failure(query.forecast({ eventType: "tool_execution", historyDays: 10 }));
    expect(short.code).toBe(Code.InvalidArgument);
    expect(short.rawMessage).toMatch(/^history_days: must be at least 14, got 10/);
    const measure = await failure(
      query.forecast({ eventType: "tool_execution", measure: "active_users" }),
    );
    expect(measure.code).toBe(Code.InvalidArgument);
    expect(measure.rawMessage).toMatch(/^measure: must be one of count, errors/);
    const horizon = await failure(
      query.forecast({ eventType: "tool_execution", horizonDays: 400 }),
    );
    expect(horizon.rawMessage).toMatch(/^horizon_days: must be between 1 and 365/);
    // Too few days is no error: the history is given, and why there is no forecast.
    const none = await query.forecast({
      eventType: "tool_execution",
      filters: { service: "nobody" },
    });
    expect(none.forecast).toEqual([]);
    expect(none.unavailable).toMatch(
      /^a forecast needs at least 7 days with a count value in the 90 days before .*; there are 0$/,
    );
    const young = await query.forecast({
      eventType: "tool_execution",
      filters: { service: "grow" },
      end: timestampFromMs(dayStart(3)),
    });
    expect(young.history.map((p) => p.value)).toEqual([20, 22, 24]);
    expect(young.unavailable).toMatch(/there are 3$/);
  });
});
