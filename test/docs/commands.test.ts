// backends: sqlite only: the docs' commands are a new user's, on the embedded SQLite the service starts with (sqlite3 on its file, the keys CLI on SQLITE_DB_PATH)
/*
 * Every command in README.md, docs/*.md and clients/*\/README.md runs as
 * written (issue 23, part 7). Each fenced `sh`, `bash`, `shell` or `console`
 * block is split into its commands; each command is either run, from the
 * repository's root, against one real service started from this checkout
 * (`node dist/src/main.js`, a temporary SQLite file, free ports), or named on
 * SKIPPED below with the reason it cannot run here. A command that is neither
 * cannot exist: whatever is not skipped is run, and a skip-list entry that no
 * longer matches a command fails, as does a substitution that no longer applies.
 *
 * Run after `npm run build` (as `npm test` does), since the commands use dist/:
 *
 *   npm run build --silent && npx vitest run --project sqlite test/docs/commands.test.ts
 */
import { execFile, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServiceProcess, spawnService } from "../support/process.js";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "dist", "src", "cli.js");
const run = promisify(execFile);

/** The fences whose contents are commands to run. */
const SHELL_LANGUAGES = new Set(["sh", "bash", "shell", "console"]);

/**
 * Commands that cannot run in this test, each with the reason. An entry is the
 * whole command as the test reads it (continuation lines joined, comments
 * dropped, blanks collapsed), so that a command changed in the docs is run or
 * looked at again, never skipped unseen.
 */
const SKIPPED: readonly { readonly command: string; readonly reason: string }[] = [
  {
    command: "npm ci && npm start",
    reason:
      "installs every dependency (about a minute), then runs the service in the foreground on :8890 until Ctrl-C; this test starts the same build (node dist/src/main.js, what npm start runs after building), and test/server/process.test.ts covers the first start",
  },
  {
    command: "npm test",
    reason: "runs every suite, this one included (minutes)",
  },
  {
    command: "npm run build",
    reason:
      "this test runs after `npm run build` (npm test, or the command in its header) and uses that dist/; building again in each block would cost about 15 s each",
  },
  {
    command: "docker compose -f deploy/compose.yml up --build",
    reason:
      "needs Docker, pulls and builds images, and runs until stopped; the compose file is checked by test/deploy/compose.test.ts",
  },
  {
    command: "docker compose -f deploy/compose.replicas.yml up --build",
    reason:
      "needs Docker, pulls and builds images, and runs until stopped; the replicas behind HAProxy are covered by test/scale-out/",
  },
  {
    command:
      "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318 docker compose -f deploy/compose.yml --profile otlp up --build",
    reason:
      "needs Docker and an OpenTelemetry Collector; the otlp profile is checked by test/deploy/compose.test.ts, the export by test/telemetry/otlp-export.test.ts",
  },
  {
    command:
      "DATABASE_URL=postgres://metrics:secret@db:5432/metrics REDIS_URL=redis://cache:6379 npm start",
    reason:
      "needs a PostgreSQL at db and a Redis at cache, and starts the service itself in the foreground; replicas are covered by test/scale-out/",
  },
  {
    command:
      "METRICS_TLS_CERT_FILE=/etc/mcp-metrics/tls.crt METRICS_TLS_KEY_FILE=/etc/mcp-metrics/tls.key npm start",
    reason:
      "needs a TLS certificate and key, and starts the service itself in the foreground; TLS is covered by test/server/tls.test.ts",
  },
  {
    command: `npx buf curl --schema proto --cacert ca.pem --protocol grpc -H "x-api-key: $KEY" -d '{"service":"auth-server","events":[{"authRequest":{"success":true}}]}' https://metrics.internal:8890/mcp.metrics.v1.IngestService/Ingest`,
    reason:
      "needs the TLS service of the command before, its CA (ca.pem) and the host metrics.internal; TLS is covered by test/server/tls.test.ts",
  },
  {
    command: `helm install metrics deploy/helm/mcp-metrics-service -n observability --create-namespace --set image.repository=registry.example.com/mcp-metrics-service --set apiKeys.byService.auth-server="$AUTH_SERVER_KEY" --set serviceMonitor.enabled=true`,
    reason:
      "installs into a Kubernetes cluster; the chart is linted and rendered with these values by test/deploy/helm-chart.test.ts",
  },
  {
    command: `helm install metrics deploy/helm/mcp-metrics-service -n observability --set replicaCount=3 --set database.url="$DATABASE_URL" --set redis.url=redis://redis:6379`,
    reason:
      "installs into a Kubernetes cluster; the chart is linted and rendered with replicas by test/deploy/helm-chart.test.ts",
  },
  {
    command: "sudo apt-get install python3-grpcio python3-protobuf",
    reason: "installs Debian packages as root (.ci/test-deps installs them for npm test)",
  },
  {
    command: "pip install ./clients/python",
    reason:
      "installs into the machine's Python; the Python client's tests (test/clients/python-client.test.ts) and the examples in its README run with PYTHONPATH=clients/python instead",
  },
  {
    command: "npm pack ./clients/typescript",
    reason:
      "builds the client package inside the checkout and writes its tarball there; test/clients/ts-client-package.test.ts packs it and installs it in a project of its own",
  },
  {
    command: "npm install ./mcp-metrics-client-0.1.0.tgz",
    reason:
      "installs into the emitting service's project, from the tarball of the command before; test/clients/ts-client-package.test.ts does that",
  },
];

/** What the test knows once its service runs: what the substitutions and the environment put in. */
interface Context {
  /** The service's one port (the docs' 8890). */
  readonly port: number;
  /** The service's SQLite file (the docs' data/metrics.db). */
  readonly dbPath: string;
  /** The ingest key the first start printed, for service `default`. */
  readonly key: string;
  /** An admin-scoped key made with the keys CLI. */
  readonly adminKey: string;
  /** The id of a key made with the keys CLI, for service auth-server. */
  readonly keyId: string;
}

/**
 * Text of the docs replaced before a command runs: the documented defaults by
 * what this test's service uses. Each must still occur in a command that runs.
 */
const SUBSTITUTIONS: readonly {
  readonly documented: string;
  readonly actual: (context: Context) => string;
  readonly why: string;
}[] = [
  {
    documented: "http://127.0.0.1:8890",
    actual: (c) => `http://127.0.0.1:${c.port}`,
    why: "the default port; the test's service listens on a free one",
  },
  {
    documented: "data/metrics.db",
    actual: (c) => c.dbPath,
    why: "the default SQLite file (SQLITE_DB_PATH); the test's is a temporary one",
  },
  {
    documented: "key_3f9c0e1a2b4d",
    actual: (c) => c.keyId,
    why: "the id `keys create` prints; the test makes a key with the keys CLI first",
  },
];

/**
 * The environment a reader is told to have: `KEY` set to their key (README),
 * `ADMIN` to the admin key (docs/retention.md), and the database the keys CLI
 * works on (SQLITE_DB_PATH, docs/security.md), which is the service's.
 */
function environment(context: Context): Record<string, string> {
  return { KEY: context.key, ADMIN: context.adminKey, SQLITE_DB_PATH: context.dbPath };
}

/** Text that must not reach a command that runs: the machine's own service could answer it. */
const DEFAULT_ADDRESSES = [/:8890\b/, /:9465\b/, /\blocalhost\b/];

/** The first words of a fence that holds commands, for fences without a shell language. */
const LOOKS_LIKE_A_COMMAND =
  /^(\$ |npm |npx |node |curl |docker |helm |kubectl |pip3? |python3? |\/usr\/bin\/python3 |sqlite3 |export |sudo |grpcurl |buf )/;

interface Command {
  /** Line of the doc it starts on. */
  readonly line: number;
  /** The command as bash runs it: its lines, without comments. */
  readonly text: string;
  /** One line, blanks collapsed: what SKIPPED entries match. */
  readonly normalized: string;
  /** The HTTP status the doc shows after it (`# HTTP/1.1 200 OK`), if any. */
  expectStatus?: number;
}

interface Block {
  readonly doc: string;
  readonly line: number;
  readonly language: string;
  readonly commands: readonly Command[];
}

interface Fence {
  readonly doc: string;
  readonly line: number;
  readonly language: string;
  readonly body: string[];
}

/** The documents whose commands a reader runs. */
function documents(): string[] {
  const docs = readdirSync(join(ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .sort()
    .map((name) => `docs/${name}`);
  const clients = readdirSync(join(ROOT, "clients"), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => `clients/${entry.name}/README.md`)
    .filter((path) => existsSync(join(ROOT, path)))
    .sort();
  return ["README.md", ...docs, ...clients];
}

/** The fenced code blocks of a Markdown document, indented ones (in lists) included. */
function fences(doc: string): Fence[] {
  const found: Fence[] = [];
  let open:
    | { line: number; language: string; indent: number; marker: string; body: string[] }
    | undefined;
  for (const [index, line] of readFileSync(join(ROOT, doc), "utf8").split("\n").entries()) {
    const fence = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/.exec(line);
    if (open === undefined) {
      if (fence) {
        open = {
          line: index + 1,
          language: (fence[3] ?? "").toLowerCase(),
          indent: (fence[1] ?? "").length,
          marker: fence[2] ?? "```",
          body: [],
        };
      }
    } else if (fence && (fence[2] ?? "").startsWith(open.marker) && fence[3] === "") {
      found.push({ doc, line: open.line, language: open.language, body: open.body });
      open = undefined;
    } else {
      open.body.push(line.slice(Math.min(open.indent, line.length - line.trimStart().length)));
    }
  }
  if (open) throw new Error(`${doc}:${open.line}: a code fence that is never closed`);
  return found;
}

/**
 * Splits a block into commands as bash reads them: a newline outside quotes and
 * not escaped ends a command; comments are dropped (a comment after a command
 * that shows `HTTP/1.1 NNN` is the status the doc expects). In a `console`
 * block, only lines starting with `$ ` (and their continuations) are commands.
 */
function splitCommands(fence: Fence): Command[] {
  let lines = fence.body;
  if (fence.language === "console") {
    let continuing = false;
    lines = lines.map((line) => {
      const keep = continuing || line.startsWith("$ ");
      continuing = keep && line.endsWith("\\");
      if (!keep) return `# ${line}`;
      return line.startsWith("$ ") ? line.slice(2) : line;
    });
  }
  const source = `${lines.join("\n")}\n`;
  const commands: Command[] = [];
  let text = "";
  let startLine = 0;
  let lineNo = 0;
  let quote: "'" | '"' | undefined;
  let comment: string | undefined;
  const finish = () => {
    if (text.trim() !== "") {
      const trimmed = text.replace(/\s+$/, "");
      commands.push({
        line: fence.line + 1 + startLine,
        text: trimmed,
        normalized: trimmed.replace(/\\\n/g, " ").replace(/\s+/g, " ").trim(),
      });
    }
    text = "";
  };
  let pendingStatus: number | undefined;
  const noteComment = (body: string) => {
    const status = /^#[\s#]*HTTP\/[\d.]+\s+(\d{3})\b/.exec(body.trim());
    const last = commands.at(-1);
    if (status && last && text.trim() === "") last.expectStatus = Number(status[1]);
    else if (status && text.trim() !== "") {
      // A status on the command's own line: it applies to that command once finished.
      pendingStatus = Number(status[1]);
    }
  };
  for (let i = 0; i < source.length; i++) {
    const ch = source[i] as string;
    if (comment !== undefined) {
      if (ch !== "\n") {
        comment += ch;
        continue;
      }
      noteComment(comment);
      comment = undefined;
    }
    if (quote === "'") {
      text += ch;
      if (ch === "'") quote = undefined;
      if (ch === "\n") lineNo++;
      continue;
    }
    if (quote === '"') {
      text += ch;
      if (ch === "\\" && i + 1 < source.length) {
        text += source[++i];
        if (source[i] === "\n") lineNo++;
      } else if (ch === '"') {
        quote = undefined;
      }
      if (ch === "\n") lineNo++;
      continue;
    }
    if (ch === "\\" && i + 1 < source.length) {
      text += ch + source[++i];
      if (source[i] === "\n") lineNo++;
      continue;
    }
    if (ch === "'" || ch === '"') {
      if (text.trim() === "") startLine = lineNo;
      quote = ch;
      text += ch;
      continue;
    }
    if (ch === "#" && (text === "" || /[\s;&|(]$/.test(text))) {
      comment = "#";
      continue;
    }
    if (ch === "\n") {
      const hadCommand = text.trim() !== "";
      finish();
      if (hadCommand && pendingStatus !== undefined) {
        (commands.at(-1) as Command).expectStatus = pendingStatus;
      }
      pendingStatus = undefined;
      lineNo++;
      continue;
    }
    if (text.trim() === "" && !/\s/.test(ch)) startLine = lineNo;
    text += ch;
  }
  if (quote) throw new Error(`${fence.doc}:${fence.line}: a quote (${quote}) that is never closed`);
  finish();
  return commands;
}

const FENCES = documents().flatMap(fences);
const BLOCKS: Block[] = FENCES.filter((fence) => SHELL_LANGUAGES.has(fence.language)).map(
  (fence) => ({
    doc: fence.doc,
    line: fence.line,
    language: fence.language,
    commands: splitCommands(fence),
  }),
);

function skipOf(command: Command): (typeof SKIPPED)[number] | undefined {
  return SKIPPED.find((entry) => command.normalized === entry.command);
}

/** Runs what is left of a block after its skipped commands, in one bash, as a reader would type it. */
async function runBlock(
  commands: readonly Command[],
  context: Context,
  curlHome: string,
): Promise<{ stdout: string; stderr: string; results: { rc: number; statuses: number[] }[] }> {
  const script = commands
    .map((command, index) => {
      let text = command.text;
      for (const substitution of SUBSTITUTIONS) {
        text = text.split(substitution.documented).join(substitution.actual(context));
      }
      for (const address of DEFAULT_ADDRESSES) {
        if (address.test(text)) {
          throw new Error(
            `line ${command.line}: ${JSON.stringify(command.normalized)} still reaches ${address} after the substitutions: add one to SUBSTITUTIONS`,
          );
        }
      }
      return `${text}\nprintf '\\n@@cmd ${index} %d\\n' "$?" >&2`;
    })
    .join("\n");
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    // The machine's own settings must not steer the reader's commands.
    if (value === undefined || /^(METRICS_|OTEL_|SQLITE_|DATABASE_URL$|REDIS_URL$)/.test(name)) {
      continue;
    }
    env[name] = value;
  }
  Object.assign(env, environment(context), {
    // curl reads $CURL_HOME/.curlrc: it writes each answer's status on stderr.
    CURL_HOME: curlHome,
  });
  const child = spawn("bash", ["-c", script], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  // A command that hangs: its process group (bash and what it started) is ended.
  const timer = setTimeout(() => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }, 50_000);
  await new Promise<void>((resolve) => child.once("close", () => resolve()));
  clearTimeout(timer);
  const results: { rc: number; statuses: number[] }[] = [];
  let statuses: number[] = [];
  for (const line of stderr.split("\n")) {
    const http = /^@@http (\d{3})$/.exec(line);
    if (http) statuses.push(Number(http[1]));
    const done = /^@@cmd (\d+) (\d+)$/.exec(line);
    if (done) {
      results[Number(done[1])] = { rc: Number(done[2]), statuses };
      statuses = [];
    }
  }
  return { stdout, stderr, results };
}

describe("the commands in README.md, docs/ and the clients' READMEs", () => {
  let service: ServiceProcess | undefined;
  let context: Context;
  const dir = mkdtempSync(join(tmpdir(), "mcp-metrics-docs-"));
  const curlHome = join(dir, "curl");

  beforeAll(async () => {
    const dbPath = join(dir, "metrics.db");
    // A first start, as a reader's: no key configured, so it prints one.
    service = await spawnService({
      SQLITE_DB_PATH: dbPath,
      OTEL_PROMETHEUS_ENABLED: "true",
      OTEL_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_PROMETHEUS_PORT: "0",
      // Keys made with the CLI below apply within a moment instead of 5 s.
      METRICS_KEY_RELOAD_MS: "200",
    });
    const running = service;
    const deadline = Date.now() + 10_000;
    let key: string | undefined;
    while (key === undefined && Date.now() < deadline) {
      key = /export KEY=(mcpm_\S+)/.exec(running.output().stderr)?.[1];
      if (key === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (key === undefined) throw new Error(`no key printed:\n${running.output().stderr}`);
    const cli = async (...args: string[]) =>
      (
        await run(process.execPath, [CLI, "keys", ...args], {
          cwd: ROOT,
          env: { PATH: process.env.PATH ?? "", SQLITE_DB_PATH: dbPath },
        })
      ).stdout;
    const adminKey = /^(mcpm_\S+)$/m.exec(
      await cli("create", "--service", "admin", "--scope", "admin"),
    )?.[1];
    const keyId = /created (key_[0-9a-f]+)/.exec(
      await cli("create", "--service", "auth-server"),
    )?.[1];
    if (adminKey === undefined || keyId === undefined) throw new Error("the keys CLI made no key");
    // Until the service has re-read the keys, the admin key is unknown.
    for (let tries = 0; ; tries++) {
      const res = await fetch(`${running.url}/admin/retention/policies`, {
        headers: { "x-api-key": adminKey },
      });
      if (res.ok) break;
      if (tries >= 20) throw new Error(`the admin key is refused: ${res.status}`);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    mkdirSync(curlHome);
    writeFileSync(join(curlHome, ".curlrc"), 'write-out = "%{stderr}\\n@@http %{http_code}\\n"\n');
    context = { port: running.port, dbPath, key, adminKey, keyId };
  });

  afterAll(async () => {
    if (service) {
      service.child.kill("SIGTERM");
      await service.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("should find the shell blocks, and no commands in a fence without a shell language", () => {
    expect(BLOCKS.length).toBeGreaterThan(0);
    const untagged = FENCES.filter(
      (fence) =>
        !SHELL_LANGUAGES.has(fence.language) &&
        LOOKS_LIKE_A_COMMAND.test(fence.body.find((line) => line.trim() !== "")?.trim() ?? ""),
    ).map((fence) => `${fence.doc}:${fence.line} (\`\`\`${fence.language})`);
    expect(untagged, "fences that hold commands: tag them sh so that they are run").toEqual([]);
  });

  it("should have no skip-list entry that matches no command", () => {
    const all = BLOCKS.flatMap((block) => block.commands);
    const stale = SKIPPED.filter((entry) => !all.some((c) => c.normalized === entry.command));
    expect(
      stale.map((entry) => entry.command),
      "SKIPPED entries that match no command in the docs (changed or removed): update them",
    ).toEqual([]);
  });

  for (const block of BLOCKS) {
    const toRun = block.commands.filter((command) => skipOf(command) === undefined);
    const name = `${block.doc}:${block.line}`;
    if (toRun.length === 0) {
      it.skip(`${name}: every command skip-listed (SKIPPED)`, () => {});
      continue;
    }
    it(`${name}: ${toRun.length} of ${block.commands.length} commands run as written`, async () => {
      const { stdout, stderr, results } = await runBlock(toRun, context, curlHome);
      const tail = `\n--- stdout ---\n${stdout.slice(-3000)}\n--- stderr ---\n${stderr.slice(-3000)}`;
      for (const [index, command] of toRun.entries()) {
        const where = `${block.doc}:${command.line}: ${command.normalized}`;
        const result = results[index];
        expect(result, `${where}: did not finish${tail}`).toBeDefined();
        expect(result?.rc, `${where}: exit status${tail}`).toBe(0);
        if (/(^|[;&|]\s*)curl\s/.test(command.normalized)) {
          expect(result?.statuses.length, `${where}: no HTTP answer${tail}`).toBeGreaterThan(0);
        }
        for (const status of result?.statuses ?? []) {
          if (command.expectStatus !== undefined) {
            expect(status, `${where}: the status the doc shows${tail}`).toBe(command.expectStatus);
          } else {
            expect(status, `${where}: a 2xx, as the doc shows success${tail}`).toSatisfy(
              (s: number) => s >= 200 && s < 300,
            );
          }
        }
      }
    }, 60_000);
  }

  it("should have no substitution that applies to no command that runs", () => {
    const runs = BLOCKS.flatMap((block) => block.commands).filter((c) => skipOf(c) === undefined);
    const stale = SUBSTITUTIONS.filter((s) => !runs.some((c) => c.text.includes(s.documented)));
    expect(
      stale.map((s) => s.documented),
      "SUBSTITUTIONS that no command which runs contains: remove them",
    ).toEqual([]);
  });
});
