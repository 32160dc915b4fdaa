import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { AdminService } from "../../gen/mcp/metrics/v1/admin_pb.js";
import { QueryService } from "../../gen/mcp/metrics/v1/query_pb.js";
import {
  apiKey,
  failure,
  GRPC,
  ingestClient,
  PROTOCOLS,
  type Protocol,
} from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import {
  countIn,
  exposition,
  scrape,
  startTestService,
  type TestService,
} from "../support/service.js";

const READ_ONLY = "this API key has the read scope: it may only query (QueryService, GET /export)";
const READ_REQUIRED =
  "this API key has the ingest scope: querying needs a key with the read or admin scope";

/** Tokens per minute of every key here: few, so that spending them shows. */
const RATE_LIMIT = 6;

/** The value of one counter series in an exposition, 0 when absent. */
function counter(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** A QueryService client over a protocol, authenticated with `key`. */
function queryClient(protocol: Protocol, url: string, key: string) {
  return createClient(QueryService, protocol.transport(url, [apiKey(key)]));
}

/** Reads a server stream to its end. */
async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream);
}

/** The code a call ended with: OK, or its error's. */
async function codeOf(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (error) {
    return (error as ConnectError).code;
  }
}

/** The `ErrorInfo` reason of a refusal. */
const reasonOf = (error: ConnectError) => error.findDetails(ErrorInfoSchema)[0]?.reason;

describe("the read scope at the door: QueryService and GET /export for read and admin keys only (docs/security.md)", () => {
  let svc: TestService;
  let port: number;
  beforeAll(async () => {
    const prometheus = await exposition();
    port = prometheus.port;
    svc = await startTestService({ ...prometheus.env, METRICS_RATE_LIMIT: String(RATE_LIMIT) });
  });
  afterAll(async () => {
    await svc.close();
  });

  /** The tokens left in a key's bucket (GET /rate-limit spends none). */
  const tokens = async (key: string) => {
    const res = await fetch(`${svc.url}/rate-limit`, { headers: { "x-api-key": key } });
    expect(res.status).toBe(200);
    return ((await res.json()) as { available_tokens: number }).available_tokens;
  };
  const getExport = (key?: string) =>
    fetch(`${svc.url}/export`, { headers: key === undefined ? {} : { "x-api-key": key } });

  it("should refuse an ingest key on QueryService PERMISSION_DENIED naming its scope, on every protocol, and GET /export 403, before it spends a token", async () => {
    const key = await svc.keyFor("query-with-ingest");
    const before = await scrape(port);
    for (const protocol of PROTOCOLS) {
      const error = await failure(queryClient(protocol, svc.url, key).summary({}));
      expect(error.code, protocol.name).toBe(Code.PermissionDenied);
      expect(error.rawMessage, protocol.name).toBe(READ_REQUIRED);
      expect(reasonOf(error), protocol.name).toBe("READ_SCOPE_REQUIRED");
    }
    // A server stream is refused at the door like a unary call.
    const stream = await failure(drain(queryClient(GRPC, svc.url, key).export({})));
    expect(stream.code).toBe(Code.PermissionDenied);
    expect(stream.rawMessage).toBe(READ_REQUIRED);
    const res = await getExport(key);
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ detail: READ_REQUIRED });
    // GET /export takes a key like every keyed route.
    const anonymous = await getExport();
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toEqual({ detail: "API key required in X-API-Key header" });
    const after = await scrape(port);
    expect(
      counter(
        after,
        'mcp_metrics_refused_requests_total{service="query-with-ingest",reason="read_scope_required"}',
      ) -
        counter(
          before,
          'mcp_metrics_refused_requests_total{service="query-with-ingest",reason="read_scope_required"}',
        ),
    ).toBe(PROTOCOLS.length + 2);
    expect(await tokens(key)).toBe(RATE_LIMIT);
  });

  it("should refuse a read key events and admin operations PERMISSION_DENIED / 403 naming its scope, storing and changing nothing, before it spends a token", async () => {
    const key = await svc.keyFor("reader", "read");
    const series = 'mcp_metrics_refused_requests_total{service="reader",reason="read_only_key"}';
    const before = await scrape(port);
    const policies = () =>
      svc.sql.all("SELECT table_name, retention_days, is_active FROM retention_policies");
    const policiesBefore = await policies();
    for (const protocol of PROTOCOLS) {
      const ingest = await failure(
        ingestClient(protocol, svc.url, key).ingest(authBatch(2, "reader")),
      );
      expect(ingest.code, protocol.name).toBe(Code.PermissionDenied);
      expect(ingest.rawMessage, protocol.name).toBe(READ_ONLY);
      expect(reasonOf(ingest), protocol.name).toBe("READ_ONLY_KEY");
      const admin = createClient(AdminService, protocol.transport(svc.url, [apiKey(key)]));
      const listed = await failure(admin.listRetentionPolicies({}));
      expect(listed.code, protocol.name).toBe(Code.PermissionDenied);
      expect(listed.rawMessage, protocol.name).toBe(READ_ONLY);
    }
    async function* messages() {
      yield authBatch(3, "reader");
    }
    const stream = await failure(ingestClient(GRPC, svc.url, key).ingestStream(messages()));
    expect(stream.code).toBe(Code.PermissionDenied);
    expect(stream.rawMessage).toBe(READ_ONLY);

    const posted = await postMetrics(
      svc.url,
      { service: "reader", metrics: [legacyMetric(), legacyMetric()] },
      { key },
    );
    expect(posted.status).toBe(403);
    expect(posted.json).toEqual({ detail: READ_ONLY });
    const headers = { "x-api-key": key };
    const flushed = await fetch(`${svc.url}/flush`, { method: "POST", headers });
    expect(flushed.status).toBe(403);
    expect(await flushed.json()).toEqual({ detail: READ_ONLY });
    const listed = await fetch(`${svc.url}/admin/retention/policies`, { headers });
    expect(listed.status).toBe(403);
    expect(await listed.json()).toEqual({ detail: READ_ONLY });
    const changed = await fetch(
      `${svc.url}/admin/retention/policies/tool_metrics?retention_days=33&is_active=false`,
      { method: "PUT", headers },
    );
    expect(changed.status).toBe(403);
    expect(await changed.json()).toEqual({ detail: READ_ONLY });

    expect(await countIn(svc.sql, "metrics", "service = ?", "reader")).toBe(0);
    expect(await countIn(svc.sql, "auth_metrics", "service = ?", "reader")).toBe(0);
    expect(await policies()).toEqual(policiesBefore);
    const after = await scrape(port);
    expect(counter(after, series) - counter(before, series)).toBe(2 * PROTOCOLS.length + 5);
    // Refused before the bucket, and GET /rate-limit answers any key.
    expect(await tokens(key)).toBe(RATE_LIMIT);
  });

  // Until QueryService's handlers and GET /export's route are registered the
  // answers past the door are UNIMPLEMENTED and 404; what they answer is for
  // their own suites. These tests hold what the door decides: the key passes,
  // and a QueryService call spends a token as an ingest call does.
  it.each([
    ["a read key", "read"],
    ["an admin key", "admin"],
  ] as const)(
    "should let %s through the door on QueryService and GET /export, spending a token per call",
    async (_name, scope) => {
      const key = await svc.keyFor(`querier-${scope}`, scope);
      expect(PROTOCOLS.length).toBe(RATE_LIMIT);
      for (const protocol of PROTOCOLS) {
        const code = await codeOf(queryClient(protocol, svc.url, key).summary({}));
        expect(code, protocol.name).not.toBe(Code.PermissionDenied);
        expect(code, protocol.name).not.toBe(Code.Unauthenticated);
        expect(code, protocol.name).not.toBe(Code.ResourceExhausted);
      }
      // Six calls spent the six tokens: the seventh is refused for its rate.
      const spent = await failure(queryClient(GRPC, svc.url, key).summary({}));
      expect(spent.code).toBe(Code.ResourceExhausted);
      expect(spent.rawMessage).toBe(`Rate limit exceeded. Limit: ${RATE_LIMIT} requests/minute`);
      const res = await getExport(key);
      expect(res.status).not.toBe(401);
      expect(res.status).not.toBe(403);
    },
  );

  it("should let an admin key still send events and run admin operations", async () => {
    const key = await svc.keyFor("ops", "admin");
    const posted = await postMetrics(
      svc.url,
      { service: "relayed-by-ops", metrics: [legacyMetric()] },
      { key },
    );
    expect(posted.status).toBe(200);
    expect(posted.json.accepted).toBe(1);
    const rpc = await ingestClient(GRPC, svc.url, key).ingest(authBatch(2, "relayed-by-ops"));
    expect(rpc.accepted).toBe(2);
    expect(await countIn(svc.sql, "metrics", "service = ?", "relayed-by-ops")).toBe(3);
    const listed = await fetch(`${svc.url}/admin/retention/policies`, {
      headers: { "x-api-key": key },
    });
    expect(listed.status).toBe(200);
  });
});
