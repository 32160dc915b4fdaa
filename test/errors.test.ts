// backends: sqlite only: the error catalog's mapping; no service, no database
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { errors } from "../src/errors.js";

describe("errors", () => {
  it("should make refusals without a stack trace, and keep one for internal errors", () => {
    const refused = errors.invalidApiKey();
    expect(refused.code).toBe(Code.Unauthenticated);
    expect(refused.rawMessage).toBe("Invalid API key");
    expect(refused.stack?.split("\n").filter((line) => line.trim().startsWith("at "))).toEqual([]);
    const internal = errors.internal(new Error("boom"));
    expect(internal.stack).toContain("errors.test.ts");
    // The limit is restored for every other error.
    expect(new Error("x").stack).toContain("errors.test.ts");
  });
});
