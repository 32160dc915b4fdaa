import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { IngestStreamResponseSchema } from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { failure, GRPC, ingestClient, PROTOCOLS } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { legacyMetric, postMetrics } from "../support/legacy.js";
import {
  countIn,
  exposition,
  scrape,
  seriesOf,
  startTestService,
  type TestService,
} from "../support/service.js";

const ADMIN_KEY = "admin-key-for-binding-0123456789";
const MISMATCH =
  'service: this API key belongs to service "test-service" and cannot report as "someone-else"';

describe("METRICS_KEY_SERVICE_BINDING=enforce: API keys are bound to their service (W15)", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({
      METRICS_ADMIN_API_KEY: ADMIN_KEY,
      METRICS_KEY_SERVICE_BINDING: "enforce",
    });
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should refuse a legacy POST as another service with 403 naming the service, storing nothing", async () => {
    const res = await postMetrics(
      svc.url,
      { service: "someone-else", metrics: [legacyMetric(), legacyMetric()] },
      { key: svc.key },
    );
    expect(res.status).toBe(403);
    expect(res.json).toEqual({ detail: MISMATCH });
    expect(await countIn(svc.sql, "metrics", "service = 'someone-else'")).toBe(0);
    expect(await countIn(svc.sql, "auth_metrics", "service = 'someone-else'")).toBe(0);
  });

  it("should still report a malformed service name as a validation error, not as a mismatch", async () => {
    const res = await postMetrics(
      svc.url,
      { service: "bad name", metrics: [legacyMetric()] },
      { key: svc.key },
    );
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ accepted: 0, rejected: 1 });
    expect(String((res.json.errors as string[])[0])).toMatch(/^service: /);
  });

  it.each(PROTOCOLS)(
    "should refuse $name as another service with PERMISSION_DENIED",
    async (protocol) => {
      const error = await failure(
        ingestClient(protocol, svc.url, svc.key).ingest(authBatch(2, "someone-else")),
      );
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.rawMessage).toBe(MISMATCH);
      expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("SERVICE_MISMATCH");
      expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field).toBe("service");
      expect(await countIn(svc.sql, "metrics", "service = 'someone-else'")).toBe(0);
    },
  );

  it.each([PROTOCOLS[0], PROTOCOLS[1]])(
    "should end a $name stream that switches to another service, keeping what its own service sent",
    async (protocol) => {
      const before = await countIn(svc.sql, "metrics", "service = 'streamer'");
      const client = ingestClient(protocol ?? GRPC, svc.url, await svc.keyFor("streamer"));
      async function* messages() {
        yield authBatch(3, "streamer");
        yield authBatch(2, "someone-else");
        yield authBatch(4, "streamer");
      }
      const error = await failure(client.ingestStream(messages()));
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.findDetails(IngestStreamResponseSchema)[0]).toMatchObject({
        accepted: 3,
        messages: 2,
      });
      expect(await countIn(svc.sql, "metrics", "service = 'streamer'")).toBe(before + 3);
      expect(await countIn(svc.sql, "metrics", "service = 'someone-else'")).toBe(0);
    },
  );

  it("should refuse a stream whose first message names no service, storing nothing", async () => {
    async function* messages() {
      yield { events: authBatch(2).events };
    }
    const error = await failure(
      ingestClient(GRPC, svc.url, await svc.keyFor("nameless")).ingestStream(messages()),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain("messages[0].service: Service name is required");
    expect(await countIn(svc.sql, "metrics", "service = ''")).toBe(0);
  });

  it("should match names as the legacy key variables derive them: auth_server and Auth-Server are auth-server", async () => {
    const key = "env-key-auth-server-0123456789";
    const withEnvKey = await startTestService({
      METRICS_API_KEY_AUTH_SERVER: key,
      METRICS_KEY_SERVICE_BINDING: "enforce",
    });
    try {
      for (const service of ["auth-server", "auth_server", "Auth-Server"]) {
        const res = await postMetrics(
          withEnvKey.url,
          { service, metrics: [legacyMetric()] },
          { key },
        );
        expect(res.json.accepted).toBe(1);
      }
      const other = await postMetrics(
        withEnvKey.url,
        { service: "auth-server2", metrics: [legacyMetric()] },
        { key },
      );
      expect(other.status).toBe(403);
    } finally {
      await withEnvKey.close();
    }
  });

  it("should let an admin key report as any service", async () => {
    const res = await postMetrics(
      svc.url,
      { service: "relayed", metrics: [legacyMetric()] },
      { key: ADMIN_KEY },
    );
    expect(res.status).toBe(200);
    expect(res.json.accepted).toBe(1);
    const rpc = await ingestClient(GRPC, svc.url, ADMIN_KEY).ingest(authBatch(2, "relayed"));
    expect(rpc.accepted).toBe(2);
    expect(await countIn(svc.sql, "metrics", "service = 'relayed'")).toBe(3);
  });
});

describe("METRICS_KEY_SERVICE_BINDING=audit, the default: the upstream gateway's key layout", () => {
  // The upstream compose file: nginx reports as "nginx" with the registry's
  // key, the auth server as "auth-server" with METRICS_API_KEY_AUTH ("auth").
  const REGISTRY_KEY = "upstream-registry-key-0123456789";
  const AUTH_KEY = "upstream-auth-key-0123456789";
  let svc: TestService;
  let port: number;
  beforeAll(async () => {
    const prometheus = await exposition();
    port = prometheus.port;
    svc = await startTestService({
      ...prometheus.env,
      METRICS_API_KEY_REGISTRY: REGISTRY_KEY,
      METRICS_API_KEY_AUTH: AUTH_KEY,
      METRICS_API_KEY_MCPGW: "upstream-mcpgw-key-0123456789",
      METRICS_ADMIN_API_KEY: ADMIN_KEY,
    });
  });
  afterAll(async () => {
    await svc.close();
  });

  it("should store a batch reported as another service under that service, each row naming its key's service", async () => {
    const res = await postMetrics(
      svc.url,
      { service: "nginx", metrics: [legacyMetric(), legacyMetric()] },
      { key: REGISTRY_KEY },
    );
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ accepted: 2, rejected: 0 });
    const rpc = await ingestClient(GRPC, svc.url, AUTH_KEY).ingest(authBatch(3, "auth-server"));
    expect(rpc.accepted).toBe(3);
    expect(
      await svc.sql.all(
        "SELECT service, key_service, count(*) AS n FROM metrics GROUP BY 1, 2 ORDER BY 1",
      ),
    ).toEqual([
      { service: "auth-server", key_service: "auth", n: 3 },
      { service: "nginx", key_service: "registry", n: 2 },
    ]);
    expect(await countIn(svc.sql, "auth_metrics", "service = 'auth-server'")).toBe(3);
  });

  it("should record the key's service on rows whose service is the key's own too", async () => {
    await postMetrics(
      svc.url,
      { service: "registry", metrics: [legacyMetric()] },
      { key: REGISTRY_KEY },
    );
    expect(
      await countIn(svc.sql, "metrics", "service = 'registry' AND key_service = 'registry'"),
    ).toBe(1);
  });

  it("should count the events each key sent as another service", async () => {
    const mismatches = seriesOf(await scrape(port), "mcp_metrics_service_mismatch_events_total");
    const count = (keyService: string, service: string) =>
      mismatches
        .filter((m) => m.labels.key_service === keyService && m.labels.service === service)
        .reduce((sum, m) => sum + m.value, 0);
    expect(count("registry", "nginx")).toBe(2);
    expect(count("auth", "auth-server")).toBe(3);
    expect(mismatches.some((m) => m.labels.service === "registry")).toBe(false);
    expect(mismatches.every((m) => /^key_[0-9a-f]{12}$/.test(m.labels.key_id ?? ""))).toBe(true);
  });

  it("should still refuse a key made with the CLI for a service, which names its service on purpose", async () => {
    const key = await svc.keyFor("cli-bound");
    const res = await postMetrics(
      svc.url,
      { service: "someone-else", metrics: [legacyMetric()] },
      { key },
    );
    expect(res.status).toBe(403);
    expect(res.json).toEqual({
      detail:
        'service: this API key belongs to service "cli-bound" and cannot report as "someone-else"',
    });
    const error = await failure(
      ingestClient(GRPC, svc.url, key).ingest(authBatch(1, "someone-else")),
    );
    expect(error.code).toBe(Code.PermissionDenied);
    expect(await countIn(svc.sql, "metrics", "service = 'someone-else'")).toBe(0);
  });

  it("should keep an ingest key away from the admin API", async () => {
    const res = await fetch(`${svc.url}/admin/retention/policies`, {
      headers: { "x-api-key": REGISTRY_KEY },
    });
    expect(res.status).toBe(403);
  });
});

describe("METRICS_KEY_SERVICE_BINDING=off", () => {
  it("should let one key report as several services, counting no mismatch", async () => {
    const svc = await startTestService({ METRICS_KEY_SERVICE_BINDING: "off" });
    try {
      const res = await postMetrics(
        svc.url,
        { service: "shared-a", metrics: [legacyMetric()] },
        { key: await svc.keyFor("cli-made") },
      );
      expect(res.json.accepted).toBe(1);
      const rpc = await ingestClient(GRPC, svc.url, svc.key).ingest(authBatch(2, "shared-b"));
      expect(rpc.accepted).toBe(2);
      expect(
        await countIn(svc.sql, "metrics", "service = 'shared-a' AND key_service = 'cli-made'"),
      ).toBe(1);
      expect(await countIn(svc.sql, "metrics", "service = 'shared-b'")).toBe(2);
    } finally {
      await svc.close();
    }
  });
});
