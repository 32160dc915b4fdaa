// backends: sqlite only: the TypeScript client's retry decisions; no service
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createRetryPolicy } from "../../clients/typescript/src/retry-policy.js";

/** connect-node's error for a request whose connection broke under it, as it wraps Node's. */
function lost(code: string, message: string): ConnectError {
  const cause = Object.assign(new Error(message), { code });
  return new ConnectError(message, Code.Internal, undefined, undefined, cause);
}

describe("the TypeScript client's retry policy", () => {
  const policy = createRetryPolicy({ initialBackoffMillis: 10 }, () => 0.5);

  it.each([
    ["a broken pipe", lost("EPIPE", "write EPIPE")],
    ["a reset connection", lost("ECONNRESET", "read ECONNRESET")],
    ["a socket hung up", new ConnectError("socket hang up", Code.Internal)],
  ])("should send a batch again after %s: its batch id makes it safe", (_name, error) => {
    expect(policy.decide(error, 1)).toEqual({ action: "retry", delayMillis: 5 });
  });

  it("should give up on any other INTERNAL error, which the same batch would meet again", () => {
    expect(policy.decide(new ConnectError("internal error", Code.Internal), 1)).toEqual({
      action: "give-up",
    });
  });
});
