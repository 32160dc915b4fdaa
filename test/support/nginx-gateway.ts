import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { delimiter, join } from "node:path";
import { freePort, tempDir } from "./service.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "nginx");
const TEMPLATE = join(FIXTURES, "nginx.conf.template");
/** Where Debian's libnginx-mod-http-lua and libnginx-mod-http-ndk put the modules the template loads. */
const MODULES = ["ngx_http_lua_module.so", "ndk_http_module.so"].map((name) =>
  join("/usr/lib/nginx/modules", name),
);

/** The `nginx` executable: Debian's in /usr/sbin (often not on a user's PATH), else one on PATH. */
function nginxBinary(): string | undefined {
  const dirs = ["/usr/sbin", ...(process.env.PATH ?? "").split(delimiter).filter(Boolean)];
  return dirs.map((dir) => join(dir, "nginx")).find((file) => existsSync(file));
}

/** lua-cjson for LuaJIT (Lua 5.1 ABI), in a Debian multiarch directory or /usr/local. */
function cjsonInstalled(): boolean {
  const multiarch = existsSync("/usr/lib")
    ? readdirSync("/usr/lib").filter((name) => name.endsWith("-linux-gnu"))
    : [];
  return [...multiarch.map((name) => join("/usr/lib", name)), "/usr/local/lib"].some((dir) =>
    existsSync(join(dir, "lua", "5.1", "cjson.so")),
  );
}

/**
 * Whether Debian's nginx, its Lua module (with NDK) and lua-cjson are installed:
 * the packages `nginx`, `libnginx-mod-http-lua` and `lua-cjson` (.ci/test-deps
 * installs them when run as root).
 */
export function nginxAvailable(): boolean {
  return (
    nginxBinary() !== undefined && MODULES.every((file) => existsSync(file)) && cjsonInstalled()
  );
}

/** What {@link startNginxGateway} is pointed at. */
export interface NginxGatewayOptions {
  /** The metrics service's base URL (`http://host:port`): the emitter POSTs to its `/metrics`. */
  readonly metricsUrl: string;
  /** The `X-API-Key` the emitter sends. */
  readonly apiKey: string;
  /** Seconds between flushes (the gateway's default is 5). */
  readonly flushSeconds?: number;
}

/** A running nginx data plane with the Lua metrics emitter, and its JSON-RPC upstream. */
export interface NginxGateway {
  /** nginx's base URL: MCP requests go to `${url}/mcp/<server>/mcp`. */
  readonly url: string;
  readonly flushSeconds: number;
  /**
   * Waits until at least `needMs` are left before the emitter's next flush, so
   * that what is sent meanwhile is buffered for one and the same flush.
   */
  quietWindow(needMs: number): Promise<void>;
  /** How many metrics wait in the shared dict, not yet accepted by the service. */
  pending(): Promise<number>;
  /** nginx's error log so far (the emitter logs each flush's outcome there); empty once stopped. */
  errorLog(): string;
  /**
   * Stops nginx (SIGQUIT, then SIGKILL of its process group after 8 s) and the
   * upstream, and removes the run's directory.
   */
  stop(): Promise<void>;
}

/** The JSON-RPC answer of the upstream MCP server; a `tools/call` of `fail_*` is an HTTP 500. */
function answer(request: IncomingMessage, response: ServerResponse, body: string): void {
  let message: { id?: unknown; method?: unknown; params?: { name?: unknown } } = {};
  try {
    message = JSON.parse(body) as typeof message;
  } catch {
    // Answered below as a JSON-RPC parse error.
  }
  const id = message.id ?? null;
  const send = (status: number, payload: Record<string, unknown>) => {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify({ jsonrpc: "2.0", id, ...payload }));
  };
  const tool = typeof message.params?.name === "string" ? message.params.name : "";
  switch (message.method) {
    case "initialize":
      send(200, {
        result: {
          protocolVersion: "2025-06-18",
          capabilities: { tools: {} },
          serverInfo: { name: request.url ?? "", version: "1.0.0" },
        },
      });
      return;
    case "tools/list":
      send(200, { result: { tools: [{ name: "current_time", inputSchema: { type: "object" } }] } });
      return;
    case "tools/call":
      if (tool.startsWith("fail_")) {
        send(500, { error: { code: -32603, message: `${tool} failed` } });
      } else {
        send(200, { result: { content: [{ type: "text", text: `${tool} ok` }] } });
      }
      return;
    default:
      send(400, { error: { code: -32601, message: "method not found" } });
  }
}

/** A small MCP server (JSON-RPC over HTTP POST) on 127.0.0.1 and a free port. */
async function startUpstream(): Promise<Server> {
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => answer(request, response, Buffer.concat(chunks).toString("utf8")));
  });
  // Longer than nginx's upstream keep-alive (60 s): a connection this side
  // closed while nginx sent a POST on it would be a 502 (POSTs are not retried).
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return server;
}

/** The `{{NAME}}` values of the template, refused when they could break out of the conf or Lua text. */
function render(values: Record<string, string>): string {
  return readFileSync(TEMPLATE, "utf8").replace(/\{\{([A-Z_]+)\}\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`nginx.conf.template: no value for {{${name}}}`);
    if (name !== "USER" && /["\\\s;{}]/.test(value)) {
      throw new Error(`nginx.conf.template: unsafe value for {{${name}}}: ${value}`);
    }
    return value;
  });
}

/**
 * Starts Debian's nginx with the Lua metrics emitter (test/fixtures/nginx/) in
 * front of a JSON-RPC upstream on free ports, and waits until it answers.
 * Everything it writes is in a temporary directory of its own.
 */
export async function startNginxGateway(options: NginxGatewayOptions): Promise<NginxGateway> {
  const binary = nginxBinary();
  if (binary === undefined || !nginxAvailable()) {
    throw new Error(
      "nginx with the Lua module is not installed: apt-get install nginx libnginx-mod-http-lua lua-cjson (.ci/test-deps does as root)",
    );
  }
  const flushSeconds = options.flushSeconds ?? 5;
  const metrics = new URL(options.metricsUrl);
  const dir = tempDir("mcp-nginx-");
  const upstream = await startUpstream();
  const port = await freePort();
  const conf = join(dir, "nginx.conf");
  const errorLogFile = join(dir, "error.log");
  writeFileSync(
    conf,
    render({
      // As root, nginx's workers would run as nobody, who cannot enter the 0700 directory.
      USER: process.getuid?.() === 0 ? "user root root;" : "",
      DIR: dir,
      LUA_DIR: FIXTURES,
      METRICS_HOST: metrics.hostname,
      METRICS_PORT: metrics.port || (metrics.protocol === "https:" ? "443" : "80"),
      API_KEY: options.apiKey,
      FLUSH_SECONDS: String(flushSeconds),
      UPSTREAM_PORT: String((upstream.address() as AddressInfo).port),
      PORT: String(port),
    }),
  );
  // Its own process group, so that a stop that must kill also ends the workers.
  const child: ChildProcess = spawn(binary, ["-p", dir, "-c", conf, "-e", errorLogFile], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const startedAt = Date.now();
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  // undefined while nginx runs; its exit code, or the signal that ended it, afterwards.
  let ended: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      ended = code === null ? String(signal) : String(code);
      resolve();
    });
    child.once("error", (error) => {
      ended = error.message;
      resolve();
    });
  });
  const errorLog = () =>
    `${output}${existsSync(errorLogFile) ? readFileSync(errorLogFile, "utf8") : ""}`;
  const url = `http://127.0.0.1:${port}`;

  const stop = async () => {
    if (ended === undefined && child.pid !== undefined) {
      // Graceful: workers finish their requests (bounded by worker_shutdown_timeout).
      child.kill("SIGQUIT");
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), 8000);
      });
      const outcome = await Promise.race([exited, bound]);
      clearTimeout(timer);
      if (outcome === "timeout") {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // The group is already gone.
        }
        await exited;
      }
    }
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await fetch(`${url}/_emitter/pending`).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) break;
    if (ended !== undefined || Date.now() > deadline) {
      const log = errorLog();
      const rendered = readFileSync(conf, "utf8");
      await stop();
      throw new Error(
        `nginx did not start (${ended ?? "no answer in 10 s"}):\n${log}\n${rendered}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  const periodMs = flushSeconds * 1000;
  return {
    url,
    flushSeconds,
    async quietWindow(needMs) {
      // The flush timer starts in worker 0 shortly after the spawn, so its
      // ticks are a little after startedAt + k * period: a start just past a
      // computed tick could still meet the real one, hence the margin.
      const margin = 500;
      if (needMs + margin > periodMs) throw new Error(`no ${needMs} ms window in ${periodMs} ms`);
      const phase = (Date.now() - startedAt) % periodMs;
      let wait = 0;
      if (phase < margin) wait = margin - phase;
      else if (periodMs - phase < needMs) wait = periodMs - phase + margin;
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    },
    async pending() {
      return Number((await (await fetch(`${url}/_emitter/pending`)).text()).trim());
    },
    errorLog,
    stop,
  };
}
