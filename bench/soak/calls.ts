/**
 * The soak's own calls to the service, besides the load: `GET /health` timed
 * (the event loop seen from outside), batches rejected on purpose (the error
 * paths soak too), and retention cleanups through the admin API.
 */
import * as http from "node:http";
import { quantile } from "../ingest/quantile.js";

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** One GET on a kept-alive connection: status and milliseconds to the last byte. */
function get(url: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      res.resume();
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }),
      );
    });
    req.on("error", reject);
  });
}

/** `GET /health`, `count` times one after the other: median and max ms; failures counted. */
export async function timeHealth(
  baseUrl: string,
  count: number,
): Promise<{ medianMs: number; maxMs: number; failures: number }> {
  const times: number[] = [];
  let failures = 0;
  for (let i = 0; i < count; i++) {
    try {
      const { status, ms } = await get(`${baseUrl}/health`);
      if (status !== 200) failures++;
      times.push(ms);
    } catch {
      failures++;
    }
  }
  times.sort((a, b) => a - b);
  return { medianMs: quantile(times, 0.5), maxMs: times.at(-1) ?? Number.NaN, failures };
}

/** A call made to be refused, and whether it was refused as the contract says. */
export interface DeliberateOutcome {
  readonly call: string;
  readonly asExpected: boolean;
  /** What came back when it was not as expected. */
  readonly answer?: string;
}

const INVALID_EVENT = { type: "custom", value: 1, duration_ms: -5 };

/**
 * An invalid batch on the legacy route (200, accepted 0, rejected 1) and over
 * Connect JSON (400 `invalid_argument`): nothing of either is stored.
 */
export async function sendDeliberate(
  baseUrl: string,
  key: string,
  service: string,
): Promise<DeliberateOutcome[]> {
  const headers = { "content-type": "application/json", "x-api-key": key };
  const outcomes: DeliberateOutcome[] = [];
  try {
    const res = await fetch(`${baseUrl}/metrics`, {
      method: "POST",
      headers,
      body: JSON.stringify({ service, metrics: [INVALID_EVENT] }),
    });
    const text = await res.text();
    const body = JSON.parse(text) as { accepted?: number; rejected?: number };
    const asExpected = res.status === 200 && body.accepted === 0 && body.rejected === 1;
    outcomes.push({
      call: "json invalid batch",
      asExpected,
      ...(asExpected ? {} : { answer: `${res.status} ${text.slice(0, 200)}` }),
    });
  } catch (error) {
    outcomes.push({ call: "json invalid batch", asExpected: false, answer: String(error) });
  }
  try {
    const res = await fetch(`${baseUrl}/mcp.metrics.v1.IngestService/Ingest`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        service,
        events: [{ custom: { metricName: "soak" }, value: 1, durationMs: -5 }],
      }),
    });
    const text = await res.text();
    const asExpected = res.status === 400 && text.includes('"code":"invalid_argument"');
    outcomes.push({
      call: "connect invalid batch",
      asExpected,
      ...(asExpected ? {} : { answer: `${res.status} ${text.slice(0, 200)}` }),
    });
  } catch (error) {
    outcomes.push({ call: "connect invalid batch", asExpected: false, answer: String(error) });
  }
  return outcomes;
}

/** One admin cleanup of every table (`dry_run=false`). */
export interface AdminCleanup {
  readonly elapsedSeconds: number;
  readonly status: number;
  readonly deleted: number;
  readonly ms: number;
  readonly answer?: string;
}

/** `POST /admin/retention/cleanup?dry_run=false` with the admin key. */
export async function adminCleanup(
  baseUrl: string,
  adminKey: string,
  elapsedSeconds: number,
): Promise<AdminCleanup> {
  const started = performance.now();
  try {
    const res = await fetch(`${baseUrl}/admin/retention/cleanup?dry_run=false`, {
      method: "POST",
      headers: { "x-api-key": adminKey },
    });
    const text = await res.text();
    const ms = performance.now() - started;
    if (res.status !== 200)
      return { elapsedSeconds, status: res.status, deleted: 0, ms, answer: text.slice(0, 300) };
    const body = JSON.parse(text) as { total_records_processed?: number };
    return { elapsedSeconds, status: res.status, deleted: body.total_records_processed ?? 0, ms };
  } catch (error) {
    return {
      elapsedSeconds,
      status: 0,
      deleted: 0,
      ms: performance.now() - started,
      answer: String(error),
    };
  }
}

/** Ends the health connection. */
export function closeCalls(): void {
  agent.destroy();
}
