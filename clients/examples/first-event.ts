/**
 * Sends a first event with the generated client: the smallest complete use of
 * `gen/` and Connect, as the README shows it. Run after `npm run build`:
 *
 *   METRICS_SERVICE_URL=http://127.0.0.1:8890 METRICS_API_KEY=<key> node dist/clients/examples/first-event.js
 *
 * METRICS_SERVICE_URL is where the service listens (default
 * http://127.0.0.1:8890); METRICS_SERVICE_NAME the service to report as
 * (default "default", the service of the key printed on a first start).
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { IngestService } from "../../gen/mcp/metrics/v1/ingest_pb.js";

const baseUrl = process.env.METRICS_SERVICE_URL ?? "http://127.0.0.1:8890";
const apiKey = process.env.METRICS_API_KEY ?? "";
if (apiKey === "") {
  console.error("set METRICS_API_KEY to your key (a first start prints one on stderr)");
  process.exit(2);
}
const service = process.env.METRICS_SERVICE_NAME ?? "default";

// gRPC over cleartext HTTP/2; createConnectTransport({ baseUrl, httpVersion: "1.1" })
// works where HTTP/2 without TLS is not possible.
const client = createClient(IngestService, createGrpcTransport({ baseUrl }));

const response = await client.ingest(
  {
    service,
    version: "1.0.0",
    events: [
      {
        durationMs: 45.2,
        kind: { case: "authRequest", value: { success: true, method: "jwt", server: "github" } },
      },
      {
        durationMs: 120,
        kind: {
          case: "toolExecution",
          value: {
            toolName: "current_time",
            method: "tools/call",
            success: true,
            clientName: "claude-desktop",
          },
        },
      },
    ],
  },
  { headers: { "x-api-key": apiKey } },
);
console.log(`accepted ${response.accepted} events as ${response.requestId}`);
