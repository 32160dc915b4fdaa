// backends: sqlite only: the rate-limit interceptor behind a stand-in service; no storage
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type Interceptor,
} from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { IngestService } from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { admissionKey } from "../../src/auth/admission.js";
import type { Principal } from "../../src/auth/principal.js";
import { createRateLimitInterceptor } from "../../src/ratelimit/rate-limit-interceptor.js";
import { localRateLimiter, type RateLimiter } from "../../src/ratelimit/token-bucket.js";
import { failure } from "../support/clients.js";
import { authBatch } from "../support/events.js";

const principal: Principal = {
  keyId: 1,
  publicId: "key_000000000001",
  source: null,
  bucketId: "holder",
  service: "test-service",
  rateLimitPerMinute: 4,
  scope: "ingest",
};

/**
 * Stands in for the port's door: admits every call with the principal once it
 * has spent the call's opening token from `limiter` (src/auth/admission.ts).
 */
function admittedBy(limiter: RateLimiter): Interceptor {
  return (next) => async (req) => {
    const decision = await limiter.take(principal.bucketId, principal.rateLimitPerMinute);
    if (!decision.allowed)
      throw new ConnectError("rate limited at the door", Code.ResourceExhausted);
    req.contextValues.set(admissionKey, { kind: "known", principal, decision });
    return await next(req);
  };
}

/** An IngestService whose stream counts the messages it reads, behind the rate-limit interceptor. */
function streamingService(holdMillis: number) {
  const read = { messages: 0 };
  const limiter = localRateLimiter();
  const transport = createRouterTransport(
    ({ service }) => {
      service(IngestService, {
        ingest: () => ({ accepted: 0, rejected: 0, requestId: "" }),
        async ingestStream(requests) {
          for await (const _ of requests) read.messages++;
          return { accepted: read.messages, rejected: 0, requestId: "", messages: read.messages };
        },
      });
    },
    {
      router: {
        interceptors: [admittedBy(limiter), createRateLimitInterceptor(limiter, holdMillis)],
      },
    },
  );
  return { client: createClient(IngestService, transport), read };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a client stream holding its slot", () => {
  it("should pay a token to open and one per interval it sends nothing, ending RESOURCE_EXHAUSTED when they run out", async () => {
    const { client, read } = streamingService(40);
    async function* idle() {
      yield authBatch(1);
      await sleep(1000); // 4 tokens a minute: open, one message, two intervals, then none left
      yield authBatch(1);
    }
    const started = performance.now();
    const error = await failure(client.ingestStream(idle()));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(read.messages).toBe(1);
    expect(performance.now() - started).toBeLessThan(900);
  });

  it("should cost a stream that sends steadily one token per message and one to open", async () => {
    const { client, read } = streamingService(10_000);
    async function* steady() {
      for (let i = 0; i < 3; i++) yield authBatch(1);
    }
    const answer = await client.ingestStream(steady());
    expect(answer.messages).toBe(3);
    expect(read.messages).toBe(3);
    // The fourth token was the last: a second stream cannot even open.
    const error = await failure(client.ingestStream(steady()));
    expect(error.code).toBe(Code.ResourceExhausted);
  });
});
