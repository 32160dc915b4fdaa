import { readFileSync } from "node:fs";

/**
 * The service's version, from its package.json: the one place it is written
 * (`GET /`, `mcp_metrics_build_info`, the start-up line). Found by walking up
 * from this module, which runs from `src/` under the tests and from
 * `dist/src/` when built.
 */
export const SERVICE_VERSION: string = readVersion();

/** The commit the service was built from (`METRICS_BUILD_COMMIT`, set by the image build), or `unknown`. */
export const BUILD_COMMIT: string = process.env.METRICS_BUILD_COMMIT?.trim() || "unknown";

function readVersion(): string {
  for (const up of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), "utf8")) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === "mcp-metrics-service" && typeof pkg.version === "string") {
        return pkg.version;
      }
    } catch {
      // not there: look one level further up
    }
  }
  return "unknown";
}
