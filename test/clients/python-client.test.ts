// backends: sqlite only: the Python client's own suite starts dist/src/main.js on a SQLite file of its own (clients/python/tests/service.py)
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const PYTHON_CLIENT = join(import.meta.dirname, "..", "..", "clients", "python");
/** Debian's interpreter: python3-grpcio and python3-protobuf are installed for it. */
const PYTHON = process.env.PYTHON ?? "/usr/bin/python3";

describe("the Python client", () => {
  it("should pass its own tests against the real service", async () => {
    // The Python suite starts dist/src/main.js itself (built by npm test), so
    // it can stop and restart the server mid-stream.
    const child = spawn(PYTHON, ["-m", "unittest", "discover", "-s", "tests", "-t", "."], {
      cwd: PYTHON_CLIENT,
      env: { ...process.env, NODE: process.execPath, PYTHONDONTWRITEBYTECODE: "1" },
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      output += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    if (code !== 0) console.error(output);
    expect(output).toMatch(/^OK/m);
    expect(output).toMatch(/Ran \d+ tests/);
    expect(code).toBe(0);
  }, 180_000);
});
