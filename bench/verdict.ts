/**
 * Every bench's verdict: each target it states, judged PASS or FAIL against
 * what the run measured, or only REPORTED where the run cannot judge it
 * reliably (a quick run's absolute timings on a shared two-core machine
 * measure the machine as much as the service), and one line that sums them
 * up. The lines are printed, and the verdict is written into the bench's
 * result file; a bench exits 1 when its verdict is FAIL.
 *
 * What a quick run (CI) judges: ratios measured in the same run (noise falls
 * on both sides), correctness (every acknowledged event stored), and bounds
 * with a wide margin over a median of many samples. What it reports only:
 * absolute latencies and tails, and throughput (1.5 s steps).
 */
import { execFileSync } from "node:child_process";

/** How one target came out. */
export type CheckStatus = "PASS" | "FAIL" | "REPORTED";

/** One target of a bench and how the run measured against it. */
export interface Check {
  readonly name: string;
  /** The target, as the README or the bench states it (when the measured text does not say it). */
  readonly target?: string;
  /** What the run measured. */
  readonly measured: string;
  readonly status: CheckStatus;
  /** Why a REPORTED check was not judged (and what it would have said). */
  readonly reason?: string;
}

/** A bench's verdict: FAIL if any check failed. */
export interface Verdict {
  readonly bench: string;
  readonly mode: "quick" | "full";
  readonly status: "PASS" | "FAIL";
  readonly checks: readonly Check[];
  /** The summary line, as printed. */
  readonly line: string;
}

/** A target judged in every run. */
export function judged(name: string, target: string, measured: string, passed: boolean): Check {
  return { name, target, measured, status: passed ? "PASS" : "FAIL" };
}

/**
 * A target judged in a full run only: in a quick run it is reported, with
 * why, and what the judgement would have been.
 */
export function judgedInFullRun(
  quick: boolean,
  why: string,
  name: string,
  target: string,
  measured: string,
  passed: boolean,
): Check {
  if (!quick) return judged(name, target, measured, passed);
  return {
    name,
    target,
    measured,
    status: "REPORTED",
    reason: `not judged in quick mode: ${why}${passed ? "" : "; a full run would FAIL it"}`,
  };
}

/** A figure with no target this bench can judge, reported with why. */
export function reportedOnly(name: string, target: string, measured: string, why: string): Check {
  return { name, target, measured, status: "REPORTED", reason: why };
}

/** The verdict of a run from its checks. */
export function verdictOf(bench: string, quick: boolean, checks: readonly Check[]): Verdict {
  const count = (status: CheckStatus) => checks.filter((c) => c.status === status).length;
  const failed = count("FAIL");
  const status = failed > 0 ? "FAIL" : "PASS";
  // A run that judged nothing says so, rather than PASS.
  const shown = count("PASS") + failed === 0 ? "REPORTED" : status;
  const line =
    `${bench} verdict (${quick ? "quick" : "full"} run): ${shown}: ` +
    `${count("PASS")} passed, ${failed} failed, ${count("REPORTED")} reported` +
    (failed > 0
      ? ` (failed: ${checks
          .filter((c) => c.status === "FAIL")
          .map((c) => c.name)
          .join("; ")})`
      : "");
  return { bench, mode: quick ? "quick" : "full", status, checks, line };
}

/** One line per check, as printed. */
export function checkLine(check: Check): string {
  const status = check.status === "REPORTED" ? `REPORTED (${check.reason})` : check.status;
  return `verdict: ${check.name}: ${status}: ${check.measured}${check.target === undefined ? "" : ` (target: ${check.target})`}`;
}

/** The lines to print: one per check, then the summary. */
export function verdictLines(verdict: Verdict): string[] {
  return [...verdict.checks.map(checkLine), verdict.line];
}

/** The verdict as Markdown: the summary, then a table of the checks. */
export function verdictMarkdown(verdict: Verdict): string {
  const cell = (text: string) => text.replaceAll("|", "\\|");
  return [
    `**${cell(verdict.line)}**`,
    "",
    "| Check | Target | Measured | Verdict |",
    "|---|---|---|---|",
    ...verdict.checks.map(
      (c) =>
        `| ${cell(c.name)} | ${cell(c.target ?? "–")} | ${cell(c.measured)} | ${c.status === "REPORTED" ? `REPORTED (${cell(c.reason ?? "")})` : c.status === "FAIL" ? "**FAIL**" : "PASS"} |`,
    ),
  ].join("\n");
}

/** The checkout's commit, so that a result file says what it measured. */
export function commitOf(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "unknown";
  }
}
