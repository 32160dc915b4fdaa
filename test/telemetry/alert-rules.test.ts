// backends: sqlite only: the shipped alert rules, checked with promtool; no service
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

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

  it("should have, for every alert, a case of alerts.test.yml where it fires and one where it does not", () => {
    const rules = parse(readFileSync(join(ROOT, "deploy/prometheus/alerts.yml"), "utf8")) as {
      groups: { rules: { alert?: string }[] }[];
    };
    const alerts = rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [r.alert] : [])));
    const cases = (
      parse(readFileSync(join(ROOT, "test/fixtures/prometheus/alerts.test.yml"), "utf8")) as {
        tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
      }
    ).tests.flatMap((t) => t.alert_rule_test ?? []);
    const untested = alerts.flatMap((alert) => {
      const mine = cases.filter((c) => c.alertname === alert);
      return [
        ...(mine.some((c) => (c.exp_alerts ?? []).length > 0) ? [] : [`${alert}: never fires`]),
        ...(mine.some((c) => (c.exp_alerts ?? []).length === 0) ? [] : [`${alert}: always fires`]),
      ];
    });
    expect(alerts.length).toBeGreaterThan(0);
    expect(untested).toEqual([]);
  });

  it("should fire as test/fixtures/prometheus/alerts.test.yml expects, every alert (a counter born in the window included)", () => {
    const result = promtool("test", "rules", "test/fixtures/prometheus/alerts.test.yml");
    expect(result.output).toContain("SUCCESS");
    expect(result.ok).toBe(true);
  });
});
