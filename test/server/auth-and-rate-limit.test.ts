import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { hashApiKey } from "../../src/auth/api-key.js";
import { CONNECT_HTTP1, failure, GRPC, ingestClient, PROTOCOLS } from "../support/clients.js";
import { authBatch } from "../support/events.js";
import { countIn, startTestService, type TestService } from "../support/service.js";

/** One key per protocol, so each protocol has a bucket of its own. */
const protocolKeys = PROTOCOLS.map((_, i) => `rate-key-${i}-0123456789`);

describe("authentication and rate limiting on every protocol", () => {
  let svc: TestService;
  const inactiveKey = "inactive-key-0123456789";

  beforeAll(async () => {
    svc = await startTestService({
      METRICS_RATE_LIMIT: "2",
      ...Object.fromEntries(protocolKeys.map((k, i) => [`METRICS_API_KEY_RATE_${i}`, k])),
    });
    // A deactivated key, as an operator would leave it.
    await svc.sql.run(
      "INSERT INTO api_keys (key_hash, service_name, is_active, key_id) VALUES (?, 'retired', FALSE, 'key_retired')",
      hashApiKey(inactiveKey),
    );
    await svc.running.registry.reload();
  });
  afterAll(async () => {
    await svc.close();
  });

  describe.each(PROTOCOLS.map((p, i) => ({ ...p, index: i })))("$name", (protocol) => {
    // The service of this protocol's key (METRICS_API_KEY_RATE_<i>): keys report only as their own.
    const service = `rate-${protocol.index}`;

    it("should answer UNAUTHENTICATED without a key and store nothing", async () => {
      const error = await failure(
        ingestClient(protocol, svc.url, undefined).ingest(authBatch(2, service)),
      );
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toBe("API key required in X-API-Key header");
      expect(await countIn(svc.sql, "metrics", "service = ?", service)).toBe(0);
    });

    it("should answer UNAUTHENTICATED for an unknown key and store nothing", async () => {
      const error = await failure(
        ingestClient(protocol, svc.url, "not-a-key").ingest(authBatch(2, service)),
      );
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toBe("Invalid API key");
      expect(await countIn(svc.sql, "metrics", "service = ?", service)).toBe(0);
    });

    it("should answer UNAUTHENTICATED for an inactive key and store nothing", async () => {
      const error = await failure(
        ingestClient(protocol, svc.url, inactiveKey).ingest(authBatch(2, service)),
      );
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toBe("API key is inactive");
      expect(await countIn(svc.sql, "metrics", "service = ?", service)).toBe(0);
    });

    it("should answer RESOURCE_EXHAUSTED with a retry delay once the bucket is empty", async () => {
      const client = ingestClient(protocol, svc.url, protocolKeys[protocol.index]);
      await client.ingest(authBatch(1, service));
      await client.ingest(authBatch(1, service));
      const error = await failure(client.ingest(authBatch(1, `${service}-limited`)));
      expect(error.code).toBe(Code.ResourceExhausted);
      expect(error.rawMessage).toBe("Rate limit exceeded. Limit: 2 requests/minute");
      // 2 per minute refill one token every 30 s.
      const delay = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
      expect(Number(delay?.seconds)).toBeGreaterThan(25);
      expect(Number(delay?.seconds)).toBeLessThanOrEqual(30);
      expect(Number(error.metadata.get("retry-after"))).toBeGreaterThan(25);
      expect(error.metadata.get("x-ratelimit-limit")).toBe("2");
      expect(error.metadata.get("x-ratelimit-remaining")).toBe("0");
      // The IETF draft's fields, in the trailers: none left, the next in at most 30 s.
      expect(error.metadata.get("ratelimit-policy")).toBe('"default";q=2;w=60');
      const reset = /^"default";r=0;t=(\d+)$/.exec(error.metadata.get("ratelimit") ?? "");
      expect(Number(reset?.[1])).toBeGreaterThan(25);
      expect(Number(reset?.[1])).toBeLessThanOrEqual(30);
      expect(await countIn(svc.sql, "metrics", "service = ?", service)).toBe(2);
      expect(await countIn(svc.sql, "metrics", "service = ?", `${service}-limited`)).toBe(0);
    });
  });

  it("should limit a client stream when it opens and per message, keeping what was committed before", async () => {
    const key = "stream-limit-key-0123456789";
    const streaming = await startTestService({
      METRICS_RATE_LIMIT: "3",
      METRICS_API_KEY_STREAMER: key,
    });
    try {
      const client = ingestClient(GRPC, streaming.url, key);
      async function* messages() {
        for (let i = 0; i < 5; i++) yield authBatch(2, "streamer");
      }
      const error = await failure(client.ingestStream(messages()));
      expect(error.code).toBe(Code.ResourceExhausted);
      // Three tokens: one to open the stream, one for each of two messages.
      expect(await countIn(streaming.sql, "metrics", "service = 'streamer'")).toBe(4);
    } finally {
      await streaming.close();
    }
  });

  it("should report the remaining tokens on a successful unary answer", async () => {
    const key = "headers-key-0123456789";
    const one = await startTestService({ METRICS_RATE_LIMIT: "10", METRICS_API_KEY_HEADERS: key });
    try {
      const headers: Headers[] = [];
      const client = ingestClient(CONNECT_HTTP1, one.url, key);
      await client.ingest(authBatch(1, "headers"), { onHeader: (h) => headers.push(h) });
      expect(headers[0]?.get("x-ratelimit-limit")).toBe("10");
      expect(headers[0]?.get("x-ratelimit-remaining")).toBe("9");
      // One of 10 per minute spent: whole again in 6 s.
      expect(headers[0]?.get("ratelimit")).toBe('"default";r=9;t=6');
      expect(headers[0]?.get("ratelimit-policy")).toBe('"default";q=10;w=60');
    } finally {
      await one.close();
    }
  });
});
