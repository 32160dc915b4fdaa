import { expect } from "vitest";
import type { MetricsClient } from "../../clients/typescript/src/index.js";

/** Asserts the client's accounting identity: every emitted event is in exactly one counter. */
export function expectBalanced(client: MetricsClient): void {
  const s = client.stats();
  expect(s.emitted).toBe(
    s.sent + s.dropped + s.rejected + s.unauthenticated + s.failed + s.buffered + s.inFlight,
  );
}
