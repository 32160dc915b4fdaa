import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NginxGateway, nginxAvailable, startNginxGateway } from "../support/nginx-gateway.js";
import {
  countIn,
  exposition,
  type Sample,
  scrape,
  seriesOf,
  startTestService,
  type TestService,
} from "../support/service.js";

// As root, .ci/test-deps installs nginx and its Lua module: a missing one is
// then a failure, not a skip.
const isRoot = process.getuid?.() === 0;
const skip = !nginxAvailable() && !isRoot;
if (skip) {
  console.warn(
    "\n*** SKIPPED: nginx Lua emitter tests: nginx, libnginx-mod-http-lua or lua-cjson is not installed ***\n" +
      "*** install them with: sudo apt-get install nginx libnginx-mod-http-lua lua-cjson ***\n",
  );
}

/** One kind of MCP request the clients send through nginx. */
interface Call {
  readonly server: string;
  readonly method: string;
  /** `params.name` of a `tools/call`; "" otherwise, as the emitter records it. */
  readonly tool: string;
  /** What the emitter records: the upstream answers 500 to a `fail_*` tool. */
  readonly success: boolean;
}

/** Ten requests in a cycle: request `i` is `MIX[i % 10]`. */
const MIX: readonly Call[] = [
  { server: "currenttime", method: "initialize", tool: "", success: true },
  { server: "currenttime", method: "tools/list", tool: "", success: true },
  { server: "currenttime", method: "tools/call", tool: "current_time", success: true },
  { server: "currenttime", method: "tools/call", tool: "current_time", success: true },
  { server: "fininfo", method: "tools/call", tool: "get_stock", success: true },
  { server: "fininfo", method: "tools/call", tool: "get_stock", success: true },
  { server: "realserverfaketools", method: "tools/call", tool: "weird name!", success: true },
  { server: "realserverfaketools", method: "tools/call", tool: "weird name!", success: true },
  { server: "fininfo", method: "tools/call", tool: "fail_lookup", success: false },
  { server: "realserverfaketools", method: "tools/call", tool: "fail_timeout", success: false },
];
const TOTAL = 1500;
const CONCURRENCY = 50;
const USER_AGENT = "claude-desktop/1.2";
const FLUSH_SECONDS = 5;
/** The emitter sends at most this many per flush: 1,500 take two flushes. */
const PER_FLUSH = 1024;

/** The label value the service gives a tool name (outside [A-Za-z0-9-_.:/] → `_`, empty → `_unset`). */
const toolLabel = (tool: string): string =>
  tool === "" ? "_unset" : tool.replace(/[^A-Za-z0-9\-_.:/]/g, "_");

/** How many requests of each kind the 1,500 are, keyed by `JSON.stringify(call)`. */
function expectedCalls(): Map<string, { call: Call; n: number }> {
  const counts = new Map<string, { call: Call; n: number }>();
  for (let i = 0; i < TOTAL; i++) {
    const call = MIX[i % MIX.length] as Call;
    const key = JSON.stringify(call);
    const entry = counts.get(key) ?? { call, n: 0 };
    entry.n++;
    counts.set(key, entry);
  }
  return counts;
}

/** Sends the MCP requests through nginx, `CONCURRENCY` at a time; returns the unexpected answers. */
async function sendTraffic(url: string): Promise<string[]> {
  const unexpected: string[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < TOTAL; i = next++) {
      const call = MIX[i % MIX.length] as Call;
      const params =
        call.method === "tools/call"
          ? { name: call.tool, arguments: {} }
          : call.method === "initialize"
            ? { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "claude" } }
            : {};
      const res = await fetch(`${url}/mcp/${call.server}/mcp`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "user-agent": USER_AGENT,
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: i, method: call.method, params }),
      });
      await res.arrayBuffer();
      if (res.status !== (call.success ? 200 : 500)) {
        unexpected.push(`${call.method} ${call.tool}: ${res.status}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return unexpected;
}

/** PromQL's `sum by (labels)`, keys joined with `|`. */
function sumBy(list: readonly Sample[], by: readonly string[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const sample of list) {
    const key = by.map((label) => sample.labels[label] ?? "").join("|");
    sums[key] = (sums[key] ?? 0) + sample.value;
  }
  return sums;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A naive `datetime.utcnow().isoformat()`, as the Python emitters send it (microseconds). */
function utcnowIso(): string {
  return new Date()
    .toISOString()
    .replace("Z", "")
    .replace(/\.(\d{3})$/, ".$1456");
}

/**
 * The body the upstream Python emitters POST for one event: httpx's
 * `json=payload`, i.e. json.dumps with its default `", "` and `": "` separators.
 */
function pythonBody(service: string, metric: string): string {
  return `{"service": "${service}", "version": "1.0.0", "instance_id": "${service}-1", "metrics": [${metric}]}`;
}

describe.skipIf(skip)("nginx Lua emitter", () => {
  const keys = {
    auth: `auth-${randomBytes(16).toString("hex")}`,
    registry: `registry-${randomBytes(16).toString("hex")}`,
    mcpgw: `mcpgw-${randomBytes(16).toString("hex")}`,
  };
  let svc: TestService;
  let gateway: NginxGateway;
  let promPort: number;

  beforeAll(async () => {
    const prom = await exposition();
    promPort = prom.port;
    // The upstream compose file's keys: one each for the auth server, the
    // registry (which nginx is given too) and the gateway.
    svc = await startTestService({
      METRICS_API_KEY_AUTH: keys.auth,
      METRICS_API_KEY_REGISTRY: keys.registry,
      METRICS_API_KEY_MCPGW: keys.mcpgw,
      ...prom.env,
    });
    gateway = await startNginxGateway({
      metricsUrl: svc.url,
      apiKey: keys.registry,
      flushSeconds: FLUSH_SECONDS,
    });
  });
  afterAll(async () => {
    await gateway?.stop();
    await svc?.close();
  });

  /** The end of nginx's error log, where the emitter says what each flush got. */
  const flushLog = () => gateway.errorLog().split("\n").slice(-15).join("\n");

  it("should store 1,500 proxied MCP requests exactly once, in two flushes of one POST each, with typed columns and lowercase labels", async () => {
    // All 1,500 are buffered before one flush: it sends 1,024, the next the other 476.
    const windowMs = 4000;
    await gateway.quietWindow(windowMs);
    const started = Date.now();
    expect(await sendTraffic(gateway.url)).toEqual([]);
    const sendMs = Date.now() - started;

    const deadline = Date.now() + 30_000;
    let stored = 0;
    while (Date.now() < deadline) {
      stored = await countIn(svc.sql, "tool_metrics", "service = 'nginx'");
      if (stored >= TOTAL) break;
      await sleep(250);
    }
    expect(stored, `tool_metrics rows of nginx; nginx's error log ends:\n${flushLog()}`).toBe(
      TOTAL,
    );

    // One request id per POST: 1,024 then 476.
    const batches = await svc.sql.all<{ n: number }>(
      "SELECT request_id, count(*) AS n FROM metrics WHERE service = 'nginx' GROUP BY request_id",
    );
    expect(
      batches.map((b) => Number(b.n)).sort((a, b) => b - a),
      `the requests took ${sendMs} ms of a ${windowMs} ms window`,
    ).toEqual([PER_FLUSH, TOTAL - PER_FLUSH]);

    // A flush later: nothing was sent again, nothing waits in the dict.
    await sleep(FLUSH_SECONDS * 1000 + 1000);
    expect(await gateway.pending(), flushLog()).toBe(0);
    expect(await countIn(svc.sql, "metrics", "service = 'nginx'")).toBe(TOTAL);
    expect(await countIn(svc.sql, "tool_metrics", "service = 'nginx'")).toBe(TOTAL);

    // The typed columns: success 1/0 from the strings "true"/"false", never NULL.
    const expected = [...expectedCalls().values()].map(({ call, n }) => ({
      method: call.method,
      tool_name: call.tool,
      server_name: call.server,
      client_name: USER_AGENT,
      success: call.success ? 1 : 0,
      n,
    }));
    const order = (rows: { method: string; tool_name: string }[]) =>
      [...rows].sort((a, b) =>
        `${a.method}|${a.tool_name}`.localeCompare(`${b.method}|${b.tool_name}`),
      );
    const columns = await svc.sql.all<{
      method: string;
      tool_name: string;
      server_name: string;
      client_name: string;
      success: number | null;
      n: number;
    }>(
      `SELECT method, tool_name, server_name, client_name, success, count(*) AS n
         FROM tool_metrics WHERE service = 'nginx'
         GROUP BY method, tool_name, server_name, client_name, success`,
    );
    expect(order(columns.map((row) => ({ ...row, n: Number(row.n) })))).toEqual(order(expected));

    // The free-form dimensions keep what nginx sent: the string, not a boolean.
    const rows = await svc.sql.all<{ metric_type: string; value: number; dimensions: string }>(
      "SELECT metric_type, value, dimensions FROM metrics WHERE service = 'nginx'",
    );
    const sent: Record<string, number> = {};
    for (const row of rows) {
      expect(row.metric_type).toBe("tool_execution");
      expect(Number(row.value)).toBe(1);
      const success = (JSON.parse(row.dimensions) as { success: unknown }).success;
      const key = `${typeof success}:${String(success)}`;
      sent[key] = (sent[key] ?? 0) + 1;
    }
    expect(sent).toEqual({ "string:true": TOTAL * 0.8, "string:false": TOTAL * 0.2 });

    // nginx reports as `nginx` with the registry's key: accepted, and recorded.
    expect(
      await countIn(svc.sql, "metrics", "service = 'nginx' AND key_service = 'registry'"),
    ).toBe(TOTAL);

    // The exposition: one series per (method, tool_name, success), lowercase booleans.
    let nginxSeries: Sample[] = [];
    await expect
      .poll(
        async () => {
          nginxSeries = seriesOf(await scrape(promPort), "mcp_tool_executions_total").filter(
            (s) => s.labels.service === "nginx",
          );
          return nginxSeries.reduce((sum, s) => sum + s.value, 0);
        },
        { timeout: 5000 },
      )
      .toBe(TOTAL);
    expect(new Set(nginxSeries.map((s) => s.labels.success))).toEqual(new Set(["true", "false"]));
    const series: Record<string, number> = {};
    for (const s of nginxSeries) {
      const key = `${s.labels.method}|${s.labels.tool_name}|${s.labels.success}`;
      expect(series[key], `a second series for ${key}`).toBeUndefined();
      series[key] = s.value;
    }
    expect(series).toEqual(
      Object.fromEntries(
        expected.map((e) => [
          `${e.method}|${toolLabel(e.tool_name)}|${e.success ? "true" : "false"}`,
          e.n,
        ]),
      ),
    );
    expect(series["tools/call|weird_name_|true"]).toBe(300);
    expect(series["initialize|_unset|true"]).toBe(150);
  }, 60_000);

  it("should merge the Python auth server's and registry's one-POST-per-event series with nginx's, by tool and lowercase success", async () => {
    // What the upstream auth server's middleware sends: auth_request events as
    // `auth-server`, with the key of service `auth` (accepted in audit mode).
    const authEvents = [
      { success: true, method: "jwt", server: "currenttime", duration: "12.5" },
      { success: true, method: "jwt", server: "fininfo", duration: "8.25" },
      { success: true, method: "oauth", server: "realserverfaketools", duration: "41.0" },
      { success: true, method: "session", server: "currenttime", duration: "3.75" },
      { success: false, method: "jwt", server: "fininfo", duration: "1.5" },
      { success: false, method: "oauth", server: "currenttime", duration: "2.0" },
    ];
    // What the registry's middleware sends: one tool_execution per call, for
    // nginx's tools, its success a Python boolean.
    const registryCalls = [
      { tool: "current_time", server: "currenttime", success: true },
      { tool: "current_time", server: "currenttime", success: true },
      { tool: "get_stock", server: "fininfo", success: true },
      { tool: "get_stock", server: "fininfo", success: true },
      { tool: "weird name!", server: "realserverfaketools", success: true },
      { tool: "weird name!", server: "realserverfaketools", success: true },
      { tool: "fail_lookup", server: "fininfo", success: false },
      { tool: "fail_timeout", server: "realserverfaketools", success: false },
    ];
    const bodies: { key: string; raw: string }[] = [
      ...authEvents.map((e, i) => ({
        key: keys.auth,
        raw: pythonBody(
          "auth-server",
          `{"type": "auth_request", "timestamp": "${utcnowIso()}", "value": 1.0, "duration_ms": ${e.duration}, "dimensions": {"success": ${e.success}, "method": "${e.method}", "server": "${e.server}", "user_hash": "user_${i}f2c"}, "metadata": {"error_code": ${e.success ? "null" : '"invalid_token"'}}}`,
        ),
      })),
      ...registryCalls.map((c, i) => ({
        key: keys.registry,
        raw: pythonBody(
          "registry",
          `{"type": "tool_execution", "timestamp": "${utcnowIso()}", "value": 1.0, "duration_ms": ${20 + i}.5, "dimensions": {"tool_name": "${c.tool}", "server_path": "/${c.server}", "server_name": "${c.server}", "success": ${c.success}, "method": "tools/call", "client_name": "claude-desktop", "client_version": "1.2"}, "metadata": {"error_code": ${c.success ? "null" : '"tool_error"'}, "input_size_bytes": 42, "output_size_bytes": 512}}`,
        ),
      })),
    ];
    // The emitters ignore the answer; the test does not.
    const answers: string[] = [];
    for (const { key, raw } of bodies) {
      const res = await fetch(`${svc.url}/metrics`, {
        method: "POST",
        headers: { "content-type": "application/json", "X-API-Key": key },
        body: raw,
      });
      const json = (await res.json()) as { accepted?: number };
      answers.push(`${res.status} accepted=${String(json.accepted)}`);
    }
    expect(answers).toEqual(bodies.map(() => "200 accepted=1"));

    // Stored: auth_metrics.success 1/0, each row naming its key's service.
    const auth = await svc.sql.all<{ success: number | null; n: number }>(
      "SELECT success, count(*) AS n FROM auth_metrics WHERE service = 'auth-server' GROUP BY success ORDER BY success",
    );
    expect(auth.map((row) => ({ success: row.success, n: Number(row.n) }))).toEqual([
      { success: 0, n: 2 },
      { success: 1, n: 4 },
    ]);
    expect(
      await countIn(svc.sql, "metrics", "service = 'auth-server' AND key_service = 'auth'"),
    ).toBe(authEvents.length);
    expect(
      await countIn(svc.sql, "metrics", "service = 'registry' AND key_service = 'registry'"),
    ).toBe(registryCalls.length);
    const tools = await svc.sql.all<{ tool_name: string; success: number | null; n: number }>(
      "SELECT tool_name, success, count(*) AS n FROM tool_metrics WHERE service = 'registry' GROUP BY tool_name, success",
    );
    expect(tools.every((row) => row.success === (row.tool_name.startsWith("fail_") ? 0 : 1))).toBe(
      true,
    );

    // `sum by (tool_name, success)` over every service: the registry's Python
    // `true` lands in the same series as nginx's string "true".
    const nginxShare: Record<string, number> = {
      "_unset|true": 300,
      "current_time|true": 300,
      "get_stock|true": 300,
      "weird_name_|true": 300,
      "fail_lookup|false": 150,
      "fail_timeout|false": 150,
    };
    const merged = { ...nginxShare };
    for (const c of registryCalls) {
      const key = `${toolLabel(c.tool)}|${c.success}`;
      merged[key] = (merged[key] ?? 0) + 1;
    }
    let text = "";
    await expect
      .poll(
        async () => {
          text = await scrape(promPort);
          return sumBy(seriesOf(text, "mcp_tool_executions_total"), ["tool_name", "success"]);
        },
        { timeout: 5000 },
      )
      .toEqual(merged);
    const registrySeries = seriesOf(text, "mcp_tool_executions_total").filter(
      (s) => s.labels.service === "registry",
    );
    expect(new Set(registrySeries.map((s) => s.labels.success))).toEqual(
      new Set(["true", "false"]),
    );

    const authSeries = seriesOf(text, "mcp_auth_requests_total");
    expect(new Set(authSeries.map((s) => s.labels.success))).toEqual(new Set(["true", "false"]));
    expect(sumBy(authSeries, ["service", "success"])).toEqual({
      "auth-server|true": 4,
      "auth-server|false": 2,
    });
  });
});
