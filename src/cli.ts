#!/usr/bin/env node
/**
 * `mcp-metrics keys ...`: the API-key lifecycle, on the service's database
 * (`DATABASE_URL` when it names PostgreSQL, else `SQLITE_DB_PATH` or `--db`).
 * Running services, every replica on a shared database, pick changes up
 * within `METRICS_KEY_RELOAD_MS`. Keys are printed once, at creation; `list` never
 * shows a key or its hash.
 *
 *   mcp-metrics keys create --service NAME [--scope ingest|read|admin] [--rate-limit N] [--expires 90d]
 *   mcp-metrics keys list [--json]
 *   mcp-metrics keys revoke ID
 *   mcp-metrics keys rotate ID [--grace 24h]
 */
import { parseArgs } from "node:util";
import { createKeyAdmin, KeyAdminError, parseDuration } from "./auth/key-admin.js";
import { ConfigError, loadConfig } from "./config.js";
import { openStorage, storageDriver } from "./storage/drivers.js";
import { isKeyScope } from "./storage/key-store.js";
import { SERVICE_VERSION } from "./version.js";

/** A command line this tool cannot read (exit 2, with the usage); other failures exit 1. */
class UsageError extends Error {}

const USAGE = `usage:
  mcp-metrics keys create --service NAME [--scope ingest|read|admin] [--rate-limit N] [--expires 90d] [--description TEXT]
  mcp-metrics keys list [--json]
  mcp-metrics keys revoke ID
  mcp-metrics keys rotate ID [--grace 24h]
options: --db PATH (SQLite; default: SQLITE_DB_PATH or ./data/metrics.db; DATABASE_URL wins), --json,
         --help, --version
exit status: 0 done, 1 refused (no such key, no such database, …), 2 a command line it cannot read`;

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
      version: { type: "boolean", default: false },
    },
  });
  const [group, command, id] = positionals;
  // Asked for: on stdout, success. A command line it cannot read: usage on stderr, 2.
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.version) {
    console.log(`mcp-metrics ${SERVICE_VERSION}`);
    return 0;
  }
  if (group !== "keys" || command === undefined) throw new UsageError("a command is required");
  if (!["create", "list", "revoke", "rotate"].includes(command)) {
    throw new UsageError(`unknown command: keys ${command}`);
  }
  if (command === "create" && values.service === undefined) {
    throw new UsageError("--service is required");
  }
  if ((command === "revoke" || command === "rotate") && id === undefined) {
    throw new UsageError(`${command} needs a key id (see keys list)`);
  }
  // Every value is read before anything is opened: a bad one changes nothing.
  const duration = (option: "expires" | "grace"): number | undefined => {
    const raw = values[option];
    if (raw === undefined) return undefined;
    try {
      return parseDuration(raw);
    } catch (error) {
      throw new UsageError(`--${option}: ${(error as Error).message}`);
    }
  };
  const expiresInMillis = duration("expires");
  const graceMillis = duration("grace") ?? 0;
  const scope = values.scope;
  if (!isKeyScope(scope)) {
    throw new UsageError(`--scope must be ingest, read or admin, got ${scope}`);
  }
  const config = loadConfig(process.env);
  const rateLimit = Number(values["rate-limit"] ?? config.rateLimitPerMinute);
  if (!Number.isSafeInteger(rateLimit) || rateLimit < 0) {
    throw new UsageError(`--rate-limit must be a whole number, got ${values["rate-limit"]}`);
  }
  const target = { ...config, sqlitePath: values.db ?? config.sqlitePath };
  // Only create may start a new database: a mistyped --db must not make one
  // and report "no keys" from it.
  const missing = storageDriver(target).missing(target);
  if (command !== "create" && missing !== undefined) {
    throw new KeyAdminError(`${missing} (check --db or SQLITE_DB_PATH)`);
  }
  const storage = await openStorage(target);
  const print = (text: string, data: unknown) =>
    console.log(values.json ? JSON.stringify(data, null, 2) : text);
  try {
    const keys = createKeyAdmin(storage.keys);
    switch (command) {
      case "create": {
        if (values.service === undefined) throw new UsageError("--service is required");
        const created = await keys.create({
          service: values.service,
          scope,
          rateLimit,
          expiresInMillis,
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
        if (id === undefined) throw new UsageError("revoke needs a key id (see keys list)");
        await keys.revoke(id);
        print(`revoked ${id}`, { id, revoked: true });
        return 0;
      }
      case "rotate": {
        if (id === undefined) throw new UsageError("rotate needs a key id (see keys list)");
        const created = await keys.rotate(id, graceMillis);
        print(
          `rotated ${id} (it keeps working for ${values.grace}); new key ${created.id}, ` +
            `shown only this once:\n${created.key}`,
          { previous: id, grace: values.grace, ...created },
        );
        return 0;
      }
      default:
        throw new UsageError(`unknown command: keys ${command}`);
    }
  } finally {
    await storage.close();
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof ConfigError) {
    // The environment it runs in is wrong (SQLITE_DB_PATH, DATABASE_URL, …): 2, as the service exits.
    console.error(`mcp-metrics: ${error.message}`);
    process.exitCode = 2;
  } else if (error instanceof KeyAdminError) {
    console.error(`mcp-metrics: ${error.message}`);
    process.exitCode = 1;
  } else if (error instanceof UsageError || error instanceof TypeError) {
    // TypeError: parseArgs's unknown or malformed option, a usage error too.
    console.error(`mcp-metrics: ${error.message}\n${USAGE}`);
    process.exitCode = 2;
  } else {
    throw error;
  }
}
