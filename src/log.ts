import { type Logger, pino } from "pino";

export type { Logger };

/**
 * Creates the service's structured logger: JSON lines on stdout. It is the only
 * writer to the console besides the one-time key banner in `main.ts`. API keys
 * and bodies are never passed to it; the redaction below is a second guard.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      name: "mcp-metrics-service",
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ["key", "apiKey", "*.key", "*.apiKey", 'headers["x-api-key"]'],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
