import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QueryService } from "../../gen/mcp/metrics/v1/query_pb.js";
import { apiKey, GRPC } from "../support/clients.js";
import { postMetrics } from "../support/legacy.js";
import { startTestService, type TestService } from "../support/service.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Debian's Chromium (.ci/test-deps installs it); playwright-core downloads no browser. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * The history page at /ui/ in a real browser (docs/history.md, "The history
 * page"): Debian's Chromium driven by playwright-core against a real service
 * on the suite's backend, seeded through the JSON ingress. Every number the
 * page shows is compared with the API's answer to the same question.
 */
describe("the history page", () => {
  let svc: TestService;
  let read: string;
  let query: Client<typeof QueryService>;
  let browser: Browser;
  /** Console errors and uncaught exceptions of every page opened. */
  const problems: string[] = [];
  const now = Date.now();

  beforeAll(async () => {
    svc = await startTestService();
    read = await svc.keyFor("dashboards", "read");
    query = createClient(QueryService, GRPC.transport(svc.url, [apiKey(read)]));
    const at = (ms: number) => (now - ms) / 1000;
    const tools = [
      // tool, server, client, version, user, failed
      ["search", "docs", "cursor", "1.2.0", "u1", false],
      ["search", "docs", "cursor", "1.3.0", "u2", true],
      ["search", "docs", "claude-desktop", "0.9.1", "u1", false],
      ["fetch", "web", "cursor", "1.3.0", "u3", false],
      ["fetch", "web", "claude-desktop", "0.9.1", "u3", false],
      ["calc", "math", "cursor", "1.3.0", "u4", false],
    ] as const;
    const metrics = [
      // 14 days of tool calls, two more each day, for the forecast: 1 h before each day's mark.
      ...Array.from({ length: 14 }, (_, d) =>
        Array.from({ length: 10 + 2 * (13 - d) }, (_, i) => ({
          type: "tool_execution",
          value: 1,
          duration_ms: 20 + i,
          timestamp: at(d * DAY + HOUR + i * 60_000),
          dimensions: { tool_name: "daily", server_name: "batch", success: true },
        })),
      ).flat(),
      ...tools.map(([tool, server, client, version, user, failed], i) => ({
        type: "tool_execution",
        value: 1,
        duration_ms: 10 * (i + 1),
        timestamp: at(2 * HOUR + i * 60_000),
        dimensions: {
          tool_name: tool,
          server_name: server,
          client_name: client,
          client_version: version,
          user_hash: user,
          success: !failed,
          method: "tools/call",
        },
      })),
      ...[
        ["jwt", "u1", true],
        ["jwt", "u2", false],
        ["jwt", "u2", false],
        ["oauth", "u5", false],
        ["oauth", "u1", true],
      ].map(([method, user, success], i) => ({
        type: "auth_request",
        value: 1,
        duration_ms: 5 + i,
        timestamp: at(3 * HOUR + i * 60_000),
        dimensions: { method, user_hash: user, success, server: "docs" },
      })),
      ...[
        ["weather in paris", 0],
        ["weather in paris", 0],
        ["send an email", 3],
        ["translate to klingon", 0],
      ].map(([q, results], i) => ({
        type: "tool_discovery",
        value: 1,
        duration_ms: 40,
        timestamp: at(4 * HOUR + i * 60_000),
        dimensions: { query: q, results_count: results, top_k_services: 3, top_n_tools: 5 },
      })),
      ...[
        ["initialize_to_tools_list", 0.12],
        ["tools_list_to_tools_call", 0.8],
      ].map(([step, seconds], i) => ({
        type: "protocol_latency",
        value: seconds,
        timestamp: at(5 * HOUR + i * 60_000),
        dimensions: { flow_step: step, server_name: "docs", client_name: "cursor" },
      })),
    ];
    const posted = await postMetrics(
      svc.url,
      { service: "test-service", metrics },
      { key: svc.key },
    );
    expect(posted.status).toBe(200);
    expect(posted.json.accepted).toBe(metrics.length);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await svc?.close();
  });

  /** A new tab in a context of its own (no storage shared), watched for errors. */
  async function open(
    path = "/ui/",
    viewport = { width: 1280, height: 900 },
    refusalsExpected = false,
  ): Promise<{ page: Page; context: BrowserContext }> {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.on("console", (m) => {
      // Chromium logs each refused request (403) as an error: expected where a wrong key is tried.
      const refusal = /status of 40[13]/.test(m.text());
      if (m.type() === "error" && !(refusalsExpected && refusal)) {
        problems.push(`console: ${m.text()}`);
      }
    });
    page.on("pageerror", (e) => problems.push(`page: ${e.message}`));
    // Which request failed, and why, beside the console's bare status line.
    page.on("response", async (r) => {
      if (r.status() >= 400 && !(refusalsExpected && [401, 403].includes(r.status()))) {
        problems.push(
          `${r.status()} ${new URL(r.url()).pathname}: ${await r.text().catch(() => "")}`,
        );
      }
    });
    await page.goto(`${svc.url}${path}`);
    return { page, context };
  }

  /** Enters the key in the page's dialog and waits for every panel. */
  async function enterKey(page: Page, key: string): Promise<void> {
    await page.getByTestId("key").fill(key);
    await page.getByTestId("use-key").click();
  }

  const settled = (page: Page) =>
    page.waitForSelector('main[aria-busy="false"]', { state: "attached" });

  /** A table's rows as text, by column name. */
  const rowsOf = (page: Page, testid: string) =>
    page
      .getByTestId(testid)
      .evaluate((table) =>
        [...table.querySelectorAll("tbody tr")].map((tr) =>
          Object.fromEntries(
            [...tr.querySelectorAll("td")].map((td) => [td.dataset.col, td.textContent]),
          ),
        ),
      );

  const week = () => ({
    start: timestampFromMs(Date.now() - 7 * DAY),
    end: timestampFromMs(Date.now()),
  });
  const grouped = (n: bigint | number) => Number(n).toLocaleString("en-US");

  it("should ask for a read key, keep it in this tab only, and refuse a key that may not read", async () => {
    const { page, context } = await open("/ui/", undefined, true);
    await expect(page.getByTestId("key").isVisible()).resolves.toBe(true);
    // An ingest key may not read: asked again, with the reason.
    await enterKey(page, svc.key);
    await page.waitForSelector("#key-problem:not(:empty)");
    await expect(page.locator("#key-problem").textContent()).resolves.toMatch(
      /may not read the history/,
    );
    await enterKey(page, read);
    await settled(page);
    // Evaluated in the page (a string: this file is compiled without the DOM's types).
    const stored = await page.evaluate(
      "({ session: sessionStorage.length, local: localStorage.length, cookies: document.cookie })",
    );
    expect(stored).toEqual({ session: 1, local: 0, cookies: "" });
    // Kept across a reload of the tab; a new tab of its own asks again.
    await page.reload();
    await settled(page);
    await expect(page.getByTestId("key").isVisible()).resolves.toBe(false);
    const other = await open();
    await expect(other.page.getByTestId("key").isVisible()).resolves.toBe(true);
    await other.context.close();
    await context.close();
  });

  it("should show the API's numbers for the seeded history, in every panel", async () => {
    const { page, context } = await open();
    await enterKey(page, read);
    await settled(page);
    const summary = await query.summary(week());
    const shown = await rowsOf(page, "summary");
    expect(shown.map((r) => r.type)).toEqual(summary.types.map((t) => t.eventType));
    for (const [i, t] of summary.types.entries()) {
      expect(shown[i]?.events, t.eventType).toBe(grouped(t.events));
      expect(shown[i]?.errors, t.eventType).toBe(grouped(t.errors));
    }
    const tools = await query.top({
      ...week(),
      eventType: "tool_execution",
      dimension: "tool_name",
      limit: 10,
    });
    expect(
      (await rowsOf(page, "top-tool_execution-tool_name")).map((r) => [
        r.tool_name,
        r.events,
        r.errors,
      ]),
    ).toEqual(tools.rows.map((r) => [r.value, grouped(r.count), grouped(r.errors)]));
    expect(
      (await rowsOf(page, "top-tool_execution-client_version")).map((r) => r.client_version),
    ).toEqual(["1.3.0", "0.9.1", "1.2.0"]);
    // Authentication failures: by method (rollups) and by hashed user (raw events).
    expect(
      (await rowsOf(page, "top-auth_request-method")).map((r) => [r.method, r.failures, r.of]),
    ).toEqual([
      ["jwt", "2", "3"],
      ["oauth", "1", "2"],
    ]);
    expect(
      (await rowsOf(page, "top-auth_request-user_hash")).map((r) => [r.user_hash, r.events]),
    ).toEqual([
      ["u2", "2"],
      ["u5", "1"],
    ]);
    expect(
      (await rowsOf(page, "top-tool_discovery-query")).map((r) => [r.query, r.events]),
    ).toEqual([
      ["weather in paris", "2"],
      ["translate to klingon", "1"],
    ]);
    // Each panel says what answered it.
    await expect(page.locator("#auth-users .source").textContent()).resolves.toBe(
      "answered from the raw events",
    );
    await expect(page.locator("#tools .source").textContent()).resolves.toMatch(/rollups/);
    // Charts drawn, the forecast named.
    for (const id of ["rate", "errors", "latency", "flow", "active-users", "forecast"]) {
      await expect(page.locator(`#${id} canvas`).count(), id).resolves.toBeGreaterThan(0);
    }
    const forecast = await query.forecast({
      eventType: "tool_execution",
      horizonDays: 30,
      historyDays: 90,
    });
    const described = (await page.getByTestId("forecast-method").textContent()) ?? "";
    expect(described).toContain(forecast.method);
    // The last projected day, as the page writes it, from the API's numbers.
    const last = forecast.forecast.at(-1);
    const written = (v: number) =>
      v.toLocaleString("en-US", { maximumFractionDigits: Math.abs(v) >= 100 ? 0 : 2 });
    expect(described).toContain(
      `: ${written(last?.value ?? Number.NaN)} (${written(last?.lower ?? Number.NaN)}–${written(last?.upper ?? Number.NaN)})`,
    );
    await expect(page.locator(".note.error").count()).resolves.toBe(0);
    if (process.env.UI_SCREENSHOT)
      await page.screenshot({ path: process.env.UI_SCREENSHOT, fullPage: true });
    await context.close();
  });

  it("should change its numbers with the filters, and keep them in the URL", async () => {
    const { page, context } = await open();
    await enterKey(page, read);
    await settled(page);
    await page.getByTestId("filter-tool").fill("search");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/tool=search/);
    await settled(page);
    const filtered = await query.summary({
      ...week(),
      eventType: "tool_execution",
      filters: { tool_name: "search" },
    });
    const row = (await rowsOf(page, "summary")).find((r) => r.type === "tool_execution");
    expect(row?.events).toBe(grouped(filtered.types[0]?.events ?? 0n));
    expect(row?.events).toBe("3");
    expect((await rowsOf(page, "top-tool_execution-tool_name")).map((r) => r.tool_name)).toEqual([
      "search",
    ]);
    // Back returns to the unfiltered view, its URL and its numbers.
    await page.goBack();
    await page.waitForURL((url) => !url.search.includes("tool="));
    await settled(page);
    await expect(page.getByTestId("filter-tool").inputValue()).resolves.toBe("");
    const unfiltered = await query.summary({ ...week(), eventType: "tool_execution" });
    expect((await rowsOf(page, "summary")).find((r) => r.type === "tool_execution")?.events).toBe(
      grouped(unfiltered.types[0]?.events ?? 0n),
    );
    await page.goForward();
    await page.waitForURL(/tool=search/);
    await settled(page);
    // The view's URL, opened in another tab with the key, shows the same.
    const shared = await open(new URL(page.url()).pathname + new URL(page.url()).search);
    await enterKey(shared.page, read);
    await settled(shared.page);
    await expect(shared.page.getByTestId("filter-tool").inputValue()).resolves.toBe("search");
    expect(
      (await rowsOf(shared.page, "summary")).find((r) => r.type === "tool_execution")?.events,
    ).toBe("3");
    // A range of an hour: the seeded events are older, so none.
    await shared.page.getByTestId("range").selectOption("1h");
    await shared.page.waitForURL(/range=1h/);
    await settled(shared.page);
    await expect(shared.page.locator("#summary .note").textContent()).resolves.toBe(
      "No events in this range.",
    );
    // A year: raw-only panels start where the raw events are kept (90 days), and say so.
    await shared.page.getByTestId("range").selectOption("1y");
    await shared.page.waitForURL(/range=1y/);
    await settled(shared.page);
    await expect(shared.page.locator("#auth-users .source").textContent()).resolves.toMatch(
      /^answered from the raw events, since \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC: the raw events are kept no longer$/,
    );
    await expect(shared.page.locator(".note.error").count()).resolves.toBe(0);
    // One tool's forecast: a single day of calls is too few, and the panel says why.
    await expect(shared.page.locator("#forecast .note").textContent()).resolves.toMatch(
      /^No forecast: a forecast needs at least 7 days/,
    );
    await shared.context.close();
    await context.close();
  });

  it("should fit a phone's width", async () => {
    const { page, context } = await open("/ui/", { width: 390, height: 844 });
    await enterKey(page, read);
    await settled(page);
    const layout = await page.evaluate(`({
      overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
      columns: new Set([...document.querySelectorAll(".panel")].map((p) => p.getBoundingClientRect().left)).size,
    })`);
    expect(layout).toEqual({ overflow: 0, columns: 1 });
    await context.close();
  });

  it("should be small, and serve its files with their types, gzip and an ETag", async () => {
    let total = 0;
    for (const name of ["", "app.js", "app.css"]) {
      const answer = await fetch(`${svc.url}/ui/${name}`, {
        headers: { "accept-encoding": "gzip" },
      });
      expect(answer.status, name).toBe(200);
      expect(answer.headers.get("content-type"), name).toMatch(/^text\/(html|javascript|css)/);
      expect(answer.headers.get("content-security-policy"), name).toMatch(/default-src 'none'/);
      expect(answer.headers.get("content-encoding"), name).toBe("gzip");
      total += Number(answer.headers.get("content-length"));
      const etag = answer.headers.get("etag") ?? "";
      const again = await fetch(`${svc.url}/ui/${name}`, {
        headers: { "accept-encoding": "gzip", "if-none-match": `"other", W/${etag}` },
      });
      expect(again.status, name).toBe(304);
      // The identity body is another representation, with a tag of its own.
      const plain = await fetch(`${svc.url}/ui/${name}`, {
        headers: { "accept-encoding": "identity", "if-none-match": etag },
      });
      expect(plain.status, name).toBe(200);
      expect(plain.headers.get("etag"), name).not.toBe(etag);
    }
    // The whole page as sent, gzipped: under 100 KB.
    expect(total).toBeLessThan(100_000);
    const redirect = await fetch(`${svc.url}/ui`, { redirect: "manual" });
    expect([redirect.status, redirect.headers.get("location")]).toEqual([308, "/ui/"]);
    const missing = await fetch(`${svc.url}/ui/nothing.js`);
    expect(missing.status).toBe(404);
  });

  it("should have logged no error in the browser", () => {
    expect(problems).toEqual([]);
  });
});
