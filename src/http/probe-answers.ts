import type { ReadinessReport } from "../admin/readiness.js";
import { type AnyResponse, sendJson } from "./respond.js";

/** `GET /healthz`, liveness: the process serves requests (also while draining: restarting it would not help). */
export function answerLiveness(res: AnyResponse): void {
  sendJson(res, 200, { status: "alive" });
}

/** `GET /readyz`: 200 when ready, 503 with every check and `Retry-After` otherwise. */
export function answerReadiness(res: AnyResponse, report: ReadinessReport): void {
  sendJson(
    res,
    report.ready ? 200 : 503,
    { status: report.ready ? "ready" : "not ready", checks: report.checks },
    report.ready ? {} : { "Retry-After": "1" },
  );
}

/**
 * `GET /health`, the legacy health check (docs/legacy-contract.md §1), now the alias of
 * readiness: the Python body when ready, 503 with `draining` or `unavailable`
 * and the checks when not.
 */
export function answerHealth(res: AnyResponse, report: ReadinessReport): void {
  if (report.ready) {
    sendJson(res, 200, { status: "healthy", service: "metrics-collection" });
    return;
  }
  sendJson(
    res,
    503,
    {
      status: report.checks.draining ? "draining" : "unavailable",
      service: "metrics-collection",
      checks: report.checks,
    },
    { "Retry-After": "1" },
  );
}
