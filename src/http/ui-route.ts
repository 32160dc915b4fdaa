/**
 * The history page's files (docs/history.md, "The history page"), served at
 * `/ui/` on the one port: built by `npm run build` into `dist/ui`, read once
 * at start-up, answered from memory with an ETag and gzip when the browser
 * takes it. The files need no key (they hold no data); the page asks for a
 * read key and sends it with each QueryService call.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { RouteHandler } from "./admin-routes.js";
import { type AnyRequest, type AnyResponse, pathOf, sendJson } from "./respond.js";

/** Where the page's URL starts. */
export const UI_PATH = "/ui/";

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

/**
 * The page may load only its own files and talk only to this origin; no
 * frame may hold it. uPlot sets sizes through the CSSOM, which `style-src`
 * does not restrict.
 */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
};

interface File {
  readonly type: string;
  readonly body: Buffer;
  readonly gzip: Buffer;
  /** One tag per encoding: the two bodies are different representations. */
  readonly etag: string;
  readonly gzipEtag: string;
}

/**
 * The built page's directory: `dist/ui` beside the compiled service
 * (dist/src/http), or beside the sources when they run untranspiled
 * (src/http, under the tests). Undefined when the page was not built.
 */
export function builtUiDirectory(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, "../../dist/ui"), join(here, "../../ui")]
    .filter((dir) => existsSync(join(dir, "index.html")) && existsSync(join(dir, "app.js")))
    .at(0);
}

function readFiles(dir: string): Map<string, File> {
  const files = new Map<string, File>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type === undefined) continue;
    const body = readFileSync(join(dir, name));
    const tag = createHash("sha256").update(body).digest("base64url").slice(0, 22);
    files.set(name, {
      type,
      body,
      gzip: gzipSync(body, { level: 9 }),
      etag: `"${tag}"`,
      gzipEtag: `"${tag}-gz"`,
    });
  }
  return files;
}

/** Whether an `If-None-Match` list names `etag` (weakly, as RFC 9110 compares for it) or is `*`. */
function matches(header: string, etag: string): boolean {
  return header
    .split(",")
    .map((t) => t.trim().replace(/^W\//, ""))
    .some((t) => t === etag || t === "*");
}

/** The route of `/ui` and everything under it (GET and HEAD). */
export function createUiRoute(dir: string | undefined = builtUiDirectory()): RouteHandler {
  const files = dir === undefined ? new Map<string, File>() : readFiles(dir);
  return (req: AnyRequest, res: AnyResponse) => {
    const path = pathOf(req);
    // `/ui` → `/ui/`, so that the page's relative links resolve under it.
    if (path === "/ui") {
      res.writeHead(308, { location: UI_PATH });
      res.end();
      return;
    }
    const name = path === UI_PATH ? "index.html" : path.slice(UI_PATH.length);
    const file = files.get(name);
    if (file === undefined) {
      sendJson(res, 404, {
        detail:
          files.size === 0
            ? "the history page is not built: run `npm run build`"
            : `no file ${name} in the history page`,
      });
      return;
    }
    const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const etag = gzip ? file.gzipEtag : file.etag;
    const headers: Record<string, string> = {
      ...SECURITY_HEADERS,
      "content-type": file.type,
      etag,
      // Revalidated each time (an ETag answer is a few bytes): an upgrade shows at once.
      "cache-control": "no-cache",
      vary: "accept-encoding",
    };
    if (matches(String(req.headers["if-none-match"] ?? ""), etag)) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const body = gzip ? file.gzip : file.body;
    res.writeHead(200, {
      ...headers,
      ...(gzip ? { "content-encoding": "gzip" } : {}),
      "content-length": String(body.length),
    });
    if (req.method === "HEAD") res.end();
    else res.end(body);
  };
}
