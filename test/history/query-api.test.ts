import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueryService } from "../../gen/mcp/metrics/v1/query_pb.js";
import { apiKey, failure, GRPC, PROTOCOLS } from "../support/clients.js";
import { postMetrics } from "../support/legacy.js";
import { startTestService, type TestService } from "../support/service.js";

const DAY = 86_400_000;
const ADMIN_KEY = "admin-key-for-history";

/** Three days ago at 10:00 UTC: inside every default retention. */
const BASE = Math.floor((Date.now() - 3 * DAY) / DAY) * DAY + 10 * 3_600_000;
const at = (minutes: number) => (BASE + minutes * 60_000) / 1000;

/** The seeded history: tool calls of two tools, authentications of two users. */
const TOOL_CALLS = [
  // search: 6 calls, 10-60 ms, one failed; over two hours.
  ...[10, 20, 30, 40, 50, 60].map((ms, i) => ({
    tool: "search",
    ms,
    success: i !== 2,
    minute: i * 20,
    client: i % 2 === 0 ? "cursor" : "claude-desktop",
  })),
  // fetch: 3 calls, 100-300 ms, all fine; the next day.
  ...[100, 200, 300].map((ms, i) => ({
    tool: "fetch",
    ms,
    success: true,
    minute: 24 * 60 + i,
    client: "cursor",
  })),
];
const AUTHS = [
  { user: "u1", success: true, minute: 5 },
  { user: "u1", success: false, minute: 6 },
  { user: "u2", success: false, minute: 7 },
  { user: "u2", success: false, minute: 8 },
];

const range = { start: timestampFromMs(BASE - DAY), end: timestampFromMs(BASE + 3 * DAY) };

/**
 * The query API against a real service on the suite's backend, seeded
 * through the JSON ingress (docs/history.md): every answer checked against
 * what was sent, and the refusals named.
 */
describe("QueryService and GET /export", () => {
  let svc: TestService;
  let read: string;
  let query: Client<typeof QueryService>;

  beforeAll(async () => {
    svc = await startTestService({ METRICS_ADMIN_API_KEY: ADMIN_KEY });
    read = await svc.keyFor("dashboards", "read");
    query = createClient(QueryService, GRPC.transport(svc.url, [apiKey(read)]));
    const metrics = [
      ...TOOL_CALLS.map((c) => ({
        type: "tool_execution",
        value: 1,
        duration_ms: c.ms,
        timestamp: at(c.minute),
        dimensions: {
          tool_name: c.tool,
          success: c.success,
          method: "tools/call",
          client_name: c.client,
          user_hash: c.tool === "search" ? "u1" : "u3",
        },
      })),
      ...AUTHS.map((a) => ({
        type: "auth_request",
        value: 1,
        duration_ms: 5,
        timestamp: at(a.minute),
        dimensions: { success: a.success, method: "jwt", user_hash: a.user },
      })),
    ];
    const posted = await postMetrics(
      svc.url,
      { service: "test-service", metrics },
      { key: svc.key },
    );
    expect(posted.status).toBe(200);
  });
  afterAll(() => svc?.close());

  it("should summarize events, errors and latency percentiles per type, from the rollups", async () => {
    const answer = await query.summary(range);
    expect(answer.types.map((t) => t.eventType)).toEqual(["auth_request", "tool_execution"]);
    const tools = answer.types.find((t) => t.eventType === "tool_execution");
    expect(tools).toMatchObject({ events: 9n, errors: 1n, timedEvents: 9n });
    expect(tools?.errorRate).toBeCloseTo(1 / 9, 9);
    // Exact p50 of 10..60,100,200,300 is 50; the histogram is within a bucket.
    expect(tools?.p50Ms).toBeGreaterThan(40);
    expect(tools?.p50Ms).toBeLessThan(64);
    expect(tools?.p99Ms).toBeLessThanOrEqual(300);
    expect(tools?.meanMs).toBeCloseTo((210 + 600) / 9, 6);
    const auth = answer.types.find((t) => t.eventType === "auth_request");
    expect(auth).toMatchObject({ events: 4n, errors: 3n });
    expect(answer.answered?.sources.map((s) => s.grain)).toContain("day");
    expect(answer.answered?.sources.every((s) => s.grain !== "raw")).toBe(true);
  });

  it("should filter by a dimension and by service, and answer the same over every protocol", async () => {
    for (const protocol of PROTOCOLS) {
      const client = createClient(QueryService, protocol.transport(svc.url, [apiKey(read)]));
      const search = await client.summary({
        ...range,
        eventType: "tool_execution",
        filters: { tool_name: "search" },
      });
      expect(search.types, protocol.name).toMatchObject([{ events: 6n, errors: 1n }]);
    }
    const none = await query.summary({ ...range, filters: { service: "someone-else" } });
    expect(none.types).toEqual([]);
  });

  it("should give a series per step, split by a dimension with the rest as _other", async () => {
    const answer = await query.series({
      ...range,
      eventType: "tool_execution",
      measure: "count",
      step: "hour",
      groupBy: "tool_name",
      limit: 1,
    });
    expect(answer.groups.map((g) => g.group)).toEqual(["search", "_other"]);
    const sum = (g: (typeof answer.groups)[number]) => g.points.reduce((n, p) => n + p.value, 0);
    expect(sum(answer.groups[0] as never)).toBe(6);
    expect(sum(answer.groups[1] as never)).toBe(3);
    // Every hour of the range has a point (0 when empty), on the hour.
    const points = answer.groups[0]?.points ?? [];
    expect(points.length).toBe(4 * 24);
    expect(points.every((p) => timestampDate(p.time as never).getUTCMinutes() === 0)).toBe(true);
    const hourly = points.filter((p) => p.value > 0).map((p) => p.value);
    expect(hourly).toEqual([3, 3]); // minutes 0, 20, 40 | 60, 80, 100
    const p95 = await query.series({
      ...range,
      eventType: "tool_execution",
      measure: "p95",
      step: "day",
    });
    // Only days with events have a latency.
    expect(p95.groups[0]?.points.length).toBe(2);
    // Minutes have totals only: a per-minute series of a dimension is the raw events'.
    const perMinute = await query.series({
      start: timestampFromMs(BASE),
      end: timestampFromMs(BASE + 2 * 3_600_000),
      eventType: "tool_execution",
      measure: "count",
      step: "minute",
      groupBy: "tool_name",
    });
    expect(perMinute.answered?.sources.map((s) => s.grain)).toEqual(["raw"]);
    expect(perMinute.groups[0]?.points.filter((p) => p.value > 0).length).toBe(6);
    const totalsPerMinute = await query.series({
      start: timestampFromMs(BASE),
      end: timestampFromMs(BASE + 2 * 3_600_000),
      eventType: "tool_execution",
      measure: "count",
      step: "minute",
    });
    // The totals do have minutes.
    expect(totalsPerMinute.answered?.sources.map((s) => s.grain)).toEqual(["minute"]);
    expect(totalsPerMinute.groups[0]?.points.filter((p) => p.value > 0).length).toBe(6);
  });

  it("should rank a dimension's values by count, errors or p95", async () => {
    const byCount = await query.top({
      ...range,
      eventType: "tool_execution",
      dimension: "tool_name",
    });
    expect(byCount.rows.map((r) => [r.value, r.count, r.errors])).toEqual([
      ["search", 6n, 1n],
      ["fetch", 3n, 0n],
    ]);
    const byP95 = await query.top({
      ...range,
      eventType: "tool_execution",
      dimension: "tool_name",
      order: "p95",
    });
    expect(byP95.rows.map((r) => r.value)).toEqual(["fetch", "search"]);
    const clients = await query.top({
      ...range,
      eventType: "tool_execution",
      dimension: "client_name",
      filters: { client_name: "cursor" },
    });
    expect(clients.rows).toMatchObject([{ value: "cursor", count: 6n }]);
    // service is a column of every rollup row: ranked from the rollups too.
    const services = await query.top({
      ...range,
      eventType: "tool_execution",
      dimension: "service",
    });
    expect(services.rows).toMatchObject([{ value: "test-service", count: 9n, errors: 1n }]);
    expect(services.answered?.sources.every((s) => s.grain !== "raw")).toBe(true);
  });

  it("should answer a raw-only dimension from the raw events, and say so", async () => {
    const users = await query.top({
      ...range,
      eventType: "auth_request",
      dimension: "user_hash",
      order: "errors",
    });
    expect(users.rows.map((r) => [r.value, r.count, r.errors])).toEqual([
      ["u2", 2n, 2n],
      ["u1", 2n, 1n],
    ]);
    expect(users.answered?.sources.map((s) => s.grain)).toEqual(["raw"]);
    // Two dimensions at once: the rollups count each on its own, so raw answers.
    const joint = await query.top({
      ...range,
      eventType: "tool_execution",
      dimension: "tool_name",
      filters: { client_name: "claude-desktop" },
    });
    expect(joint.rows).toMatchObject([{ value: "search", count: 3n }]);
    expect(joint.answered?.sources.map((s) => s.grain)).toEqual(["raw"]);
  });

  it("should split a series by event type in one call, as each type's own series", async () => {
    for (const filters of [{}, { success: "false" }]) {
      const all = await query.series({
        ...range,
        measure: "count",
        step: "day",
        groupBy: "event_type",
        filters,
      });
      expect(all.groups.map((g) => g.group).sort()).toEqual(["auth_request", "tool_execution"]);
      for (const group of all.groups) {
        const one = await query.series({
          ...range,
          eventType: group.group,
          measure: "count",
          step: "day",
          filters,
        });
        expect(group.points, `${group.group} ${JSON.stringify(filters)}`).toEqual(
          one.groups[0]?.points,
        );
      }
    }
    const users = await failure(
      query.series({ ...range, measure: "active_users", step: "day", groupBy: "event_type" }),
    );
    expect(users.rawMessage).toMatch(/^group_by: active_users is counted for one event_type/);
    const noType = await failure(query.series({ ...range, measure: "count", step: "day" }));
    expect(noType.rawMessage).toMatch(/^event_type: required/);
  });

  it("should answer a raw question from its kind's own table as from the raw events, value for value", async () => {
    // Ranked by count, the table's columns are counted by the database; by p95,
    // every raw event is read and lifted here. All rows, so both hold every value.
    const questions = [
      { eventType: "auth_request", dimension: "user_hash" },
      { eventType: "auth_request", dimension: "user_hash", filters: { success: "false" } },
      { eventType: "tool_execution", dimension: "tool_name", filters: { client_name: "cursor" } },
      { eventType: "tool_execution", dimension: "success", filters: { tool_name: "search" } },
      { eventType: "tool_execution", dimension: "user_hash", filters: { success: "maybe" } },
    ];
    for (const question of questions) {
      const byTable = await query.top({ ...range, ...question, limit: 1000 });
      const byEvents = await query.top({ ...range, ...question, limit: 1000, order: "p95" });
      const rows = (a: typeof byTable) =>
        Object.fromEntries(a.rows.map((r) => [r.value, [r.count, r.errors, r.p95Ms]]));
      expect(rows(byTable), JSON.stringify(question)).toEqual(rows(byEvents));
      expect(byTable.answered?.sources.map((s) => s.grain)).toEqual(["raw"]);
    }
    const [some] = (
      await query.top({ ...range, eventType: "auth_request", dimension: "user_hash" })
    ).rows;
    expect(some?.count).toBeGreaterThan(0n);
    // Distinct users per day: by the table, and split by service (each event read) with one service.
    const daily = await query.series({
      ...range,
      eventType: "auth_request",
      measure: "active_users",
      step: "day",
    });
    const split = await query.series({
      ...range,
      eventType: "auth_request",
      measure: "active_users",
      step: "day",
      groupBy: "service",
    });
    expect(split.groups.map((g) => g.group)).toEqual(["test-service"]);
    expect(split.groups[0]?.points).toEqual(daily.groups[0]?.points);
  });

  it("should count distinct hashed users per step from the raw events, split by a dimension", async () => {
    const daily = await query.series({
      ...range,
      eventType: "auth_request",
      measure: "active_users",
      step: "day",
    });
    const [all] = daily.groups;
    // u1 and u2 authenticated on the first seeded day, nobody on the others.
    expect(all?.points.map((p) => p.value)).toEqual([0, 2, 0, 0, 0]);
    expect(all?.points[1]?.time && timestampDate(all.points[1].time).getTime()).toBe(
      Math.floor(BASE / DAY) * DAY,
    );
    expect(daily.answered?.sources.map((s) => s.grain)).toEqual(["raw"]);
    const byTool = await query.series({
      ...range,
      eventType: "tool_execution",
      measure: "active_users",
      step: "day",
      groupBy: "tool_name",
      limit: 1,
    });
    // One user each (u1 searched, u3 fetched the next day): the tie goes by name, the rest is _other.
    expect(byTool.groups.map((g) => [g.group, g.points.map((p) => p.value)])).toEqual([
      ["fetch", [0, 0, 1, 0, 0]],
      ["_other", [0, 1, 0, 0, 0]],
    ]);
    const refused = await failure(
      query.series({ ...range, eventType: "health_check", measure: "active_users", step: "day" }),
    );
    expect(refused.code).toBe(Code.InvalidArgument);
    expect(refused.rawMessage).toMatch(
      /^measure: active_users counts user_hash values, which health_check/,
    );
    const old = await failure(
      query.series({
        start: timestampFromMs(Date.now() - 120 * DAY),
        eventType: "auth_request",
        measure: "active_users",
        step: "day",
      }),
    );
    expect(old.code).toBe(Code.FailedPrecondition);
  });

  it("should refuse a raw-only question over a range raw retention has emptied, and answer a rollup one", async () => {
    const old = {
      start: timestampFromMs(Date.now() - 120 * DAY),
      end: timestampFromMs(Date.now()),
    };
    const refused = await failure(
      query.top({ ...old, eventType: "auth_request", dimension: "user_hash" }),
    );
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.rawMessage).toMatch(/user_hash is kept only in the raw events/);
    const summary = await query.summary({ ...old, eventType: "auth_request" });
    expect(summary.types).toMatchObject([{ events: 4n }]);
  });

  it("should page through raw events newest first", async () => {
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await query.events({ ...range, pageSize: 4, pageToken: token });
      seen.push(
        ...page.events.map(
          (e) => `${e.eventType}@${timestampDate(e.timestamp as never).toISOString()}`,
        ),
      );
      token = page.nextPageToken;
      pages++;
    } while (token !== "" && pages < 10);
    expect(seen.length).toBe(13);
    expect(new Set(seen).size).toBe(13);
    const times = seen.map((s) => s.split("@")[1] as string);
    expect([...times].sort().reverse()).toEqual(times);
    const filtered = await query.events({
      ...range,
      eventType: "tool_execution",
      filters: { tool_name: "fetch" },
    });
    expect(filtered.events.map((e) => e.durationMs)).toEqual([300, 200, 100]);
    expect(filtered.events[0]?.dimensions).toMatchObject({ tool_name: "fetch" });
  });

  it("should stream every matching event oldest first, over RPC and GET /export as NDJSON and CSV", async () => {
    const streamed: number[] = [];
    for await (const res of query.export({ ...range, eventType: "tool_execution" })) {
      streamed.push(...res.events.map((e) => e.durationMs ?? -1));
    }
    expect(streamed).toEqual([10, 20, 30, 40, 50, 60, 100, 200, 300]);

    const url = `${svc.url}/export?event_type=tool_execution&start=${new Date(BASE - DAY).toISOString()}&tool_name=search`;
    const ndjson = await fetch(url, { headers: { "x-api-key": read } });
    expect(ndjson.status).toBe(200);
    expect(ndjson.headers.get("content-type")).toBe("application/x-ndjson");
    const lines = (await ndjson.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.length).toBe(6);
    expect(lines[0]).toMatchObject({
      event_type: "tool_execution",
      service: "test-service",
      duration_ms: 10,
      dimensions: { tool_name: "search", success: true },
    });

    const csv = await fetch(url, { headers: { "x-api-key": ADMIN_KEY, accept: "text/csv" } });
    expect(csv.headers.get("content-type")).toMatch(/^text\/csv/);
    const records = (await csv.text()).trim().split("\r\n");
    expect(records[0]).toBe(
      "timestamp,event_type,service,service_version,instance_id,value,duration_ms,dimensions,metadata,request_id,key_service",
    );
    expect(records.length).toBe(7);
    expect(records[1]).toMatch(/,"\{""tool_name"":""search""/);
  });

  it("should refuse bad questions with the field at fault", async () => {
    const cases: [Promise<unknown>, RegExp][] = [
      [query.summary({ eventType: "tool_call" }), /^event_type: unknown type 'tool_call'/],
      [
        query.series({ eventType: "tool_execution", measure: "p42", step: "hour" }),
        /^measure: must be one of count/,
      ],
      [
        query.series({
          eventType: "tool_execution",
          measure: "count",
          step: "minute",
          start: timestampFromMs(Date.now() - 90 * DAY),
        }),
        /^step: minute over this range is \d+ points/,
      ],
      [query.top({ eventType: "tool_execution" }), /^dimension: required/],
      [query.events({ pageToken: "nope" }), /^page_token: not a token/],
      [
        query.summary({
          start: timestampFromMs(Date.now()),
          end: timestampFromMs(Date.now() - DAY),
        }),
        /^start: must be before end/,
      ],
    ];
    for (const [call, message] of cases) {
      const error = await failure(call);
      expect(error.code, String(message)).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(message);
    }
    const bad = await fetch(`${svc.url}/export?start=yesterday`, {
      headers: { "x-api-key": read },
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      detail: "start: 'yesterday' is not an RFC 3339 time (2026-12-07T13:00:00Z)",
    });
  });

  it("should answer Connect's JSON, as curl sends it", async () => {
    const res = await fetch(`${svc.url}/mcp.metrics.v1.QueryService/Top`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": read },
      body: JSON.stringify({
        event_type: "tool_execution",
        dimension: "tool_name",
        start: new Date(BASE - DAY).toISOString(),
        end: new Date(BASE + 3 * DAY).toISOString(),
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { rows: { value: string; count: string }[] };
    expect(body.rows.map((r) => [r.value, r.count])).toEqual([
      ["search", "6"],
      ["fetch", "3"],
    ]);
  });
});

/**
 * A question about a dimension without a service filter reads whole days
 * from the rows summed across services (metrics_daily_dimensions_all_services):
 * the same answers as the per-service rows, split by service when asked.
 */
describe("raw questions on a kind's own table", () => {
  let svc: TestService;
  let query: Client<typeof QueryService>;
  const now = Date.now();
  const span = { start: timestampFromMs(now - 12 * DAY), end: timestampFromMs(now) };
  const at = (daysAgo: number) => (now - daysAgo * DAY - 3_600_000) / 1000;

  beforeAll(async () => {
    svc = await startTestService({ METRICS_ADMIN_API_KEY: ADMIN_KEY });
    query = createClient(
      QueryService,
      GRPC.transport(svc.url, [apiKey(await svc.keyFor("dashboards", "read"))]),
    );
    const search = (q: string, results: unknown, daysAgo = 1) => ({
      type: "tool_discovery",
      value: 1,
      duration_ms: 30,
      timestamp: at(daysAgo),
      dimensions: { query: q, results_count: results },
    });
    const call = (user: string, daysAgo: number) => ({
      type: "tool_execution",
      value: 1,
      duration_ms: 15,
      timestamp: at(daysAgo),
      dimensions: { tool_name: "search", success: true, user_hash: user },
    });
    const metrics = [
      search("none found", 0),
      // Text where the field is a number: kept as a free-form key, not the typed column.
      search("sent as text", "0"),
      search("three found", 3),
      call("recent", 1),
      call("older", 10),
      call("older", 10),
    ];
    const posted = await postMetrics(
      svc.url,
      { service: "test-service", metrics },
      { key: svc.key },
    );
    expect(posted.json.accepted).toBe(metrics.length);
    // tool_metrics kept 7 days (the least a policy takes) and swept; the raw events (metrics) keep 90.
    const admin = { "x-api-key": ADMIN_KEY };
    for (const [method, path] of [
      ["PUT", "/admin/retention/policies/tool_metrics?retention_days=7"],
      ["POST", "/admin/retention/cleanup?table_name=tool_metrics&dry_run=false"],
    ] as const) {
      const answer = await fetch(`${svc.url}${path}`, { method, headers: admin });
      expect(answer.status, `${path}: ${await answer.text()}`).toBe(200);
    }
  });
  afterAll(() => svc?.close());

  it("should count a value sent in the wrong type nowhere, on the table and in the raw events alike", async () => {
    const question = {
      ...span,
      eventType: "tool_discovery",
      dimension: "query",
      filters: { results_count: "0" },
      limit: 100,
    };
    const byTable = await query.top(question);
    const byEvents = await query.top({ ...question, order: "p95" });
    expect(byTable.rows.map((r) => [r.value, r.count])).toEqual([["none found", 1n]]);
    expect(byEvents.rows.map((r) => [r.value, r.count])).toEqual([["none found", 1n]]);
  });

  it("should read the raw events, not a table that keeps less, for a range past the table's retention", async () => {
    const users = await query.top({
      ...span,
      eventType: "tool_execution",
      dimension: "user_hash",
    });
    // tool_metrics lost the calls of 10 days ago; the raw events still hold them.
    expect(users.rows.map((r) => [r.value, r.count])).toEqual([
      ["older", 2n],
      ["recent", 1n],
    ]);
    const daily = await query.series({
      ...span,
      eventType: "tool_execution",
      measure: "active_users",
      step: "day",
    });
    expect(daily.groups[0]?.points.reduce((n, p) => n + p.value, 0)).toBe(2);
    // Within the table's retention the table answers, and gives the same.
    const recent = await query.top({
      start: timestampFromMs(now - DAY - 2 * 3_600_000),
      end: timestampFromMs(now),
      eventType: "tool_execution",
      dimension: "user_hash",
    });
    expect(recent.rows.map((r) => [r.value, r.count])).toEqual([["recent", 1n]]);
  });
});

describe("a dimension's days across services", () => {
  let svc: TestService;
  let query: Client<typeof QueryService>;
  /** Midnight UTC four days ago: three whole days from it are rolled up by day. */
  const DAY0 = Math.floor((Date.now() - 4 * DAY) / DAY) * DAY;
  const days = { start: timestampFromMs(DAY0), end: timestampFromMs(DAY0 + 3 * DAY) };
  const call = (day: number, tool: string, ms: number, success = true) => ({
    type: "tool_execution",
    value: 1,
    duration_ms: ms,
    timestamp: (DAY0 + day * DAY + 10 * 3_600_000) / 1000,
    dimensions: { tool_name: tool, success, method: "tools/call" },
  });

  beforeAll(async () => {
    svc = await startTestService({ METRICS_ADMIN_API_KEY: ADMIN_KEY });
    query = createClient(
      QueryService,
      GRPC.transport(svc.url, [apiKey(await svc.keyFor("dashboards", "read"))]),
    );
    const sent = [
      {
        service: "test-service",
        key: svc.key,
        metrics: [call(0, "a", 10), call(0, "a", 12), call(1, "b", 20)],
      },
      {
        service: "other-gateway",
        key: await svc.keyFor("other-gateway"),
        metrics: [call(0, "a", 11, false), call(2, "b", 500), call(2, "b", 510), call(2, "b", 520)],
      },
    ];
    for (const { service, key, metrics } of sent) {
      expect((await postMetrics(svc.url, { service, metrics }, { key })).status).toBe(200);
    }
  });
  afterAll(() => svc?.close());

  it("should rank and chart a dimension over every service from whole days, and each service's own", async () => {
    const all = await query.top({ ...days, eventType: "tool_execution", dimension: "tool_name" });
    expect(all.answered?.sources.map((s) => s.grain)).toEqual(["day"]);
    expect(all.rows.map((r) => [r.value, r.count, r.errors])).toEqual([
      ["b", 4n, 0n],
      ["a", 3n, 1n],
    ]);
    // b's p95 comes from the histogram summed over both services' days (20 ms and 500-520 ms).
    expect(all.rows[0]?.p95Ms).toBeGreaterThan(400);
    const byP95 = await query.top({
      ...days,
      eventType: "tool_execution",
      dimension: "tool_name",
      order: "p95",
    });
    expect(byP95.rows.map((r) => r.value)).toEqual(["b", "a"]);
    const other = await query.top({
      ...days,
      eventType: "tool_execution",
      dimension: "tool_name",
      filters: { service: "other-gateway" },
    });
    expect(other.rows.map((r) => [r.value, r.count])).toEqual([
      ["b", 3n],
      ["a", 1n],
    ]);
    const series = await query.series({
      ...days,
      eventType: "tool_execution",
      measure: "count",
      step: "day",
      groupBy: "tool_name",
    });
    const perDay = Object.fromEntries(
      series.groups.map((g) => [
        g.group,
        g.points.map((p) => [timestampDate(p.time as never).getTime() - DAY0, p.value]),
      ]),
    );
    expect(perDay).toEqual({
      b: [
        [0, 0],
        [DAY, 1],
        [2 * DAY, 3],
      ],
      a: [
        [0, 3],
        [DAY, 0],
        [2 * DAY, 0],
      ],
    });
  });
});

/**
 * `GET /export` builds its NDJSON lines in the engine when no dimension is
 * filtered on, and here from whole rows when one is: the two must agree to
 * the byte, for strings that need escaping and numbers whose text differs
 * between an engine and JavaScript.
 */
describe("GET /export's lines", () => {
  let svc: TestService;

  beforeAll(async () => {
    svc = await startTestService({ METRICS_ADMIN_API_KEY: ADMIN_KEY });
  });
  afterAll(() => svc?.close());

  it("should render the same line whether the engine or the service builds it", async () => {
    const values = [0.1 + 0.2, 999_999_999_999.5, -5.5, 1234567.125, 3, 1e-7];
    const metrics = values.map((value, i) => ({
      type: "tool_execution",
      value,
      ...(i % 2 === 0 ? { duration_ms: Math.abs(value) / 7 } : {}),
      timestamp: at(i),
      dimensions: { tool_name: `t "${i}" \\ ü 😀`, method: "tools/call", success: true },
    }));
    const posted = await postMetrics(
      svc.url,
      { service: "svc-1", version: '1.0 "β"\t\u0001\\', instance_id: "i-1.a", metrics },
      { key: svc.key },
    );
    expect(posted.status).toBe(200);
    const exported = async (filter: string) => {
      const res = await fetch(
        `${svc.url}/export?start=${new Date(BASE - DAY).toISOString()}${filter}`,
        { headers: { "x-api-key": ADMIN_KEY } },
      );
      expect(res.status).toBe(200);
      return res.text();
    };
    const byEngine = await exported("");
    const byService = await exported("&method=tools%2Fcall");
    expect(byEngine.split("\n").length).toBe(values.length + 1);
    expect(byEngine).toBe(byService);
    const lines = byEngine
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.value)).toEqual(values);
    expect(lines.map((l) => l.duration_ms)).toEqual(
      values.map((v, i) => (i % 2 === 0 ? Math.abs(v) / 7 : null)),
    );
    expect(lines[0]).toMatchObject({
      service: "svc-1",
      service_version: '1.0 "β"\t\u0001\\',
      instance_id: "i-1.a",
      dimensions: { tool_name: 't "0" \\ ü 😀' },
    });
  });
});
