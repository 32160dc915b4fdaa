import { defineConfig } from "vitest/config";

/**
 * The suites that run on PostgreSQL as well as on SQLite (issue 11): ingest,
 * legacy JSON, retention and admin, keys, batch ids, and the scale-out tests
 * that need PostgreSQL. Each service gets a schema of its own in the tests'
 * PostgreSQL (test/support/database.ts).
 */
const BOTH_BACKENDS = [
  "test/server/ingest-protocols.test.ts",
  "test/server/auth-and-rate-limit.test.ts",
  "test/http/legacy-api.test.ts",
  "test/http/legacy-validation.test.ts",
  "test/http/python-client-replay.test.ts",
  "test/http/gateway-emitters.test.ts",
  "test/admin/health-rpc.test.ts",
  "test/admin/retention-api.test.ts",
  "test/admin/retention-sweep.test.ts",
  "test/auth/key-registry.test.ts",
  "test/auth/keys-cli.test.ts",
  "test/auth/service-binding.test.ts",
  "test/reliability/idempotent-retries.test.ts",
];

/** Suites about PostgreSQL itself, or several replicas on it: the PostgreSQL project only. */
const POSTGRES_ONLY = ["test/scale-out/**/*.test.ts"];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Each file starts its own servers on port 0 and its own temp databases.
    pool: "forks",
    projects: [
      {
        extends: true,
        test: { name: "sqlite", include: ["test/**/*.test.ts"], exclude: POSTGRES_ONLY },
      },
      {
        extends: true,
        test: {
          name: "postgres",
          include: [...BOTH_BACKENDS, ...POSTGRES_ONLY],
          env: { METRICS_TEST_BACKEND: "postgres" },
        },
      },
    ],
  },
});
