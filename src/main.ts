import { type LaunchedService, launchService, type RunningService } from "./app.js";
import { ConfigError, loadConfig } from "./config.js";
import { createLogger } from "./log.js";

/*
 * Process entry: configuration, start, and graceful stop on SIGTERM/SIGINT.
 * The only place that calls process.exit.
 */

function banner(key: string, service: string, url: string): string {
  return [
    "",
    "  No API key is configured, so one was created for this first start.",
    "  It is shown this once and stored only as a SHA-256 hash:",
    "",
    `    export KEY=${key}`,
    "",
    `  It belongs to service "${service}". Send an event with it:`,
    `    curl -X POST ${url}/mcp.metrics.v1.IngestService/Ingest \\`,
    `      -H 'content-type: application/json' -H "x-api-key: $KEY" \\`,
    `      -d '{"service":"${service}","events":[{"authRequest":{"success":true,"method":"jwt"},"durationMs":12}]}'`,
    "",
    "  For real deployments give each service its own key with environment",
    "  variables METRICS_API_KEY_<SERVICE>=<secret> (see docs/security.md).",
    "",
  ].join("\n");
}

/** How far past METRICS_SHUTDOWN_TIMEOUT_MS a stuck shutdown is cut short. */
const SHUTDOWN_OVERRUN_MILLIS = 2000;

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(config.logLevel);

  // Handlers go in before anything starts: a SIGTERM with no handler kills the
  // process outright, losing whatever a half-started service had accepted.
  let service: LaunchedService | undefined;
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, "second signal: exiting at once");
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, "shutting down");
    // The shutdown bounds each of its steps; this bounds the process, whatever hangs.
    setTimeout(() => {
      log.fatal({ timeoutMillis: config.shutdownTimeoutMillis }, "shutdown overran its timeout");
      process.exit(1);
    }, config.shutdownTimeoutMillis + SHUTDOWN_OVERRUN_MILLIS).unref();
    // A signal during start-up (or in standby) stops what has started.
    if (service) shutdown(service);
  };
  const shutdown = (running: LaunchedService): void => {
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.fatal({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  const started = (running: RunningService): void => {
    if (!running.bootstrapKey) return;
    const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
    const url = `${config.tls ? "https" : "http"}://${host}:${running.address.port}`;
    process.stderr.write(banner(running.bootstrapKey.key, running.bootstrapKey.service, url));
  };
  // A database that cannot be written yet (read-only, full, unreachable) is
  // waited for in standby, the port up and not ready.
  let waited = false;
  service = launchService(config, log, {
    standby: true,
    onStandby: () => {
      waited = true;
    },
  });
  await service.started.then(started, (error: unknown) => {
    // Cut short by a signal: the shutdown exits.
    if (stopping) return;
    if (!waited) throw error;
    log.fatal({ err: error }, "failed to start");
    process.exit(1);
  });
}

main().catch((error: unknown) => {
  process.stderr.write(
    `failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
