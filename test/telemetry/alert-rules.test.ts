import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

/** Runs Debian's promtool (installed with `prometheus` by .ci/test-deps); its output, whatever it exits with. */
function promtool(...args: string[]): { ok: boolean; output: string } {
  try {
    return { ok: true, output: execFileSync("promtool", args, { cwd: ROOT, encoding: "utf8" }) };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string };
    return { ok: false, output: `${failed.stdout ?? ""}${failed.stderr ?? ""}` };
  }
}

describe("deploy/prometheus/alerts.yml", () => {
  it("should be valid rules", () => {
    const result = promtool("check", "rules", "deploy/prometheus/alerts.yml");
    expect(result.output).toContain("SUCCESS");
    expect(result.ok).toBe(true);
  });

  it("should fire as test/fixtures/prometheus/alerts.test.yml expects: rejected events and refused requests, a counter born in the window included", () => {
    const result = promtool("test", "rules", "test/fixtures/prometheus/alerts.test.yml");
    expect(result.output).toContain("SUCCESS");
    expect(result.ok).toBe(true);
  });
});
