#!/usr/bin/env node
/**
 * `mcp-metrics keys ...`: the API-key lifecycle, on the service's database
 * (`DATABASE_URL` when it names PostgreSQL, else `SQLITE_DB_PATH` or `--db`).
 * Running services, every replica on a shared database, pick changes up
 * within `METRICS_KEY_RELOAD_MS`. Keys are printed once, at creation; `list` never
 * shows a key or its hash.
 *
 *   mcp-metrics keys create --service NAME [--scope ingest|admin] [--rate-limit N] [--expires 90d]
 *   mcp-metrics keys list [--json]
 *   mcp-metrics keys revoke ID
 *   mcp-metrics keys rotate ID [--grace 24h]
 */
import { parseArgs } from "node:util";
import { createKeyAdmin, KeyAdminError, parseDuration } from "./auth/key-admin.js";
import type { KeyScope } from "./auth/principal.js";
import { loadConfig } from "./config.js";
import { openStorage } from "./storage/backend.js";

const USAGE = `usage:
  mcp-metrics keys create --service NAME [--scope ingest|admin] [--rate-limit N] [--expires 90d] [--description TEXT]
  mcp-metrics keys list [--json]
  mcp-metrics keys revoke ID
  mcp-metrics keys rotate ID [--grace 24h]
options: --db PATH (SQLite; default: SQLITE_DB_PATH or ./data/metrics.db; DATABASE_URL wins), --json`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      service: { type: "string" },
      scope: { type: "string", default: "ingest" },
      "rate-limit": { type: "string" },
      expires: { type: "string" },
      grace: { type: "string", default: "24h" },
      description: { type: "string" },
      db: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const [group, command, id] = positionals;
  if (values.help || group !== "keys" || command === undefined) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const config = loadConfig(process.env);
  const storage = await openStorage({ ...config, sqlitePath: values.db ?? config.sqlitePath });
  const print = (text: string, data: unknown) =>
    console.log(values.json ? JSON.stringify(data, null, 2) : text);
  try {
    const keys = createKeyAdmin(storage.keys);
    switch (command) {
      case "create": {
        if (values.service === undefined) throw new KeyAdminError("--service is required");
        if (values.scope !== "ingest" && values.scope !== "admin") {
          throw new KeyAdminError(`--scope must be ingest or admin, got ${values.scope}`);
        }
        const rateLimit = Number(values["rate-limit"] ?? config.rateLimitPerMinute);
        if (!Number.isSafeInteger(rateLimit) || rateLimit < 0) {
          throw new KeyAdminError(
            `--rate-limit must be a whole number, got ${values["rate-limit"]}`,
          );
        }
        const created = await keys.create({
          service: values.service,
          scope: values.scope as KeyScope,
          rateLimit,
          expiresInMillis: values.expires === undefined ? undefined : parseDuration(values.expires),
          description: values.description,
        });
        print(
          `created ${created.id} for service ${created.service} (scope ${created.scope}, ` +
            `expires ${created.expiresAt ?? "never"}); the key is shown only this once:\n${created.key}`,
          created,
        );
        return 0;
      }
      case "list": {
        const rows = await keys.list();
        const lines = rows.map((k) =>
          [
            k.id,
            k.service,
            k.scope,
            k.active ? "active" : "revoked",
            `${k.rateLimit}/min`,
            `created ${k.createdAt}`,
            `last used ${k.lastUsedAt ?? "never"}`,
            `expires ${k.expiresAt ?? "never"}`,
            k.source ?? "",
          ].join("  "),
        );
        print(lines.join("\n") || "no keys", rows);
        return 0;
      }
      case "revoke": {
        if (id === undefined) throw new KeyAdminError("revoke needs a key id (see keys list)");
        await keys.revoke(id);
        print(`revoked ${id}`, { id, revoked: true });
        return 0;
      }
      case "rotate": {
        if (id === undefined) throw new KeyAdminError("rotate needs a key id (see keys list)");
        const created = await keys.rotate(id, parseDuration(values.grace));
        print(
          `rotated ${id} (it keeps working for ${values.grace}); new key ${created.id}, ` +
            `shown only this once:\n${created.key}`,
          { previous: id, grace: values.grace, ...created },
        );
        return 0;
      }
      default:
        console.error(USAGE);
        return 2;
    }
  } finally {
    await storage.close();
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof KeyAdminError || error instanceof TypeError)) throw error;
  // TypeError: parseArgs's unknown or malformed option.
  console.error(`mcp-metrics: ${error.message}`);
  process.exitCode = error instanceof KeyAdminError ? 1 : 2;
}
