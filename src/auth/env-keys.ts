import type { KeyScope } from "./principal.js";

/** Prefix of the environment variables that carry per-service API keys (docs/legacy-contract.md §3). */
export const ENV_KEY_PREFIX = "METRICS_API_KEY_";

/** The variable that carries the admin-scoped key, reported as service `admin`. */
export const ENV_ADMIN_KEY = "METRICS_ADMIN_API_KEY";

/** An API key configured through a `METRICS_API_KEY_<SUFFIX>` environment variable. */
export interface EnvApiKey {
  /** The variable's name, e.g. `METRICS_API_KEY_CURRENTTIME_SERVER`; never logged with the key. */
  readonly variable: string;
  /** The service the key belongs to, e.g. `currenttime-server`. */
  readonly service: string;
  /** The plaintext key. Only its SHA-256 hash is ever stored. */
  readonly key: string;
  /** `admin` for `METRICS_ADMIN_API_KEY`, `ingest` for the per-service keys. */
  readonly scope: KeyScope;
}

/**
 * Derives a service name from a `METRICS_API_KEY_<SUFFIX>` suffix the way the
 * Python service did (docs/legacy-contract.md §3): lowercased, `_` replaced by `-`.
 */
export function serviceNameFromSuffix(suffix: string): string {
  return suffix.toLowerCase().replaceAll("_", "-");
}

/**
 * Lists the API keys configured in an environment: the per-service keys, and
 * the admin key. Plain `METRICS_API_KEY` (what emitting clients read) and
 * empty values are ignored, as in the Python service.
 */
export function discoverEnvApiKeys(env: Readonly<Record<string, string | undefined>>): EnvApiKey[] {
  const keys: EnvApiKey[] = [];
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith(ENV_KEY_PREFIX) || value === undefined || value.trim() === "") {
      continue;
    }
    const suffix = variable.slice(ENV_KEY_PREFIX.length);
    if (suffix === "") continue;
    keys.push({
      variable,
      service: serviceNameFromSuffix(suffix),
      key: value.trim(),
      scope: "ingest",
    });
  }
  const admin = env[ENV_ADMIN_KEY]?.trim();
  if (admin) keys.push({ variable: ENV_ADMIN_KEY, service: "admin", key: admin, scope: "admin" });
  return keys.sort((a, b) => a.variable.localeCompare(b.variable));
}
