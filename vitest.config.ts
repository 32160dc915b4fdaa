import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { configDefaults, defineConfig } from "vitest/config";

/**
 * Every suite runs on SQLite and on PostgreSQL (issue 23): the `postgres`
 * project sets `METRICS_TEST_BACKEND=postgres`, and each test service then
 * gets a schema of its own in the tests' PostgreSQL (test/support/database.ts).
 * A suite that has no business on PostgreSQL says so, and why, in its header
 * (docs/testing.md):
 *
 *   // backends: sqlite only: <reason>
 *
 * A suite without the line runs on both.
 */
const ROOT = fileURLToPath(new URL(".", import.meta.url));

/** Suites about PostgreSQL itself, or several replicas on it: the PostgreSQL project only. */
const POSTGRES_ONLY = ["test/scale-out/**/*.test.ts"];

/** A `// backends: ...` line; only `sqlite only: <reason>` is understood. */
const MARKER = /^\s*\/\/\s*backends\s*:(.*)$/;
const SQLITE_ONLY = /^\s*sqlite only\s*:\s*(\S.*)$/;

/** The test files under test/, as paths from the repository's root with `/` separators. */
function testFiles(): string[] {
  return readdirSync(join(ROOT, "test"), { recursive: true, encoding: "utf8" })
    .map((path) => `test/${path.split("\\").join("/")}`)
    .filter((path) => path.endsWith(".test.ts"))
    .sort();
}

/**
 * The marker's reason, if the file's header says it runs on SQLite only. The
 * header is the comment lines (and blank lines) before the file's first line
 * of code; a marker anywhere else, or one that gives no reason, is refused so
 * that a typo cannot quietly put a suite on one backend, or on both.
 */
function sqliteOnlyReason(path: string, text: string): string | undefined {
  let inHeader = true;
  let inBlock = false;
  let reason: string | undefined;
  for (const [index, line] of text.split("\n").entries()) {
    const trimmed = line.trim();
    if (inHeader && !inBlock) {
      if (trimmed.startsWith("/*")) inBlock = !trimmed.includes("*/", 2);
      else if (trimmed !== "" && !trimmed.startsWith("//")) inHeader = false;
    } else if (inBlock && trimmed.includes("*/")) {
      inBlock = false;
    }
    const marker = MARKER.exec(line);
    if (marker === null) continue;
    const where = `${path}:${index + 1}`;
    if (!inHeader) {
      throw new Error(`${where}: a "// backends:" line belongs in the file's header comment`);
    }
    const sqlite = SQLITE_ONLY.exec(marker[1] ?? "");
    if (sqlite === null) {
      throw new Error(
        `${where}: write "// backends: sqlite only: <why this suite does not run on PostgreSQL>"`,
      );
    }
    if (reason !== undefined) throw new Error(`${where}: a second "// backends:" line`);
    reason = sqlite[1];
  }
  return reason;
}

/** The suites whose header keeps them off PostgreSQL. */
const SQLITE_ONLY_FILES = testFiles().filter(
  (path) => sqliteOnlyReason(path, readFileSync(join(ROOT, path), "utf8")) !== undefined,
);

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Each file starts its own servers on port 0 and its own temp databases.
    pool: "forks",
    projects: [
      {
        extends: true,
        test: {
          name: "sqlite",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, ...POSTGRES_ONLY],
        },
      },
      {
        extends: true,
        test: {
          name: "postgres",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, ...SQLITE_ONLY_FILES],
          env: { METRICS_TEST_BACKEND: "postgres" },
        },
      },
    ],
  },
});
