import { ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type IngestService,
  IngestStreamResponseSchema,
} from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { errors, type Violation } from "../errors.js";
import type { Ingestor } from "./ingestor.js";
import { newRequestId } from "./request-id.js";
import { RPC_PATHS } from "./validate.js";

/**
 * The `mcp.metrics.v1.IngestService` handlers. Authentication and rate limits
 * are applied by the interceptors before these run.
 */
export function createIngestServiceImpl(ingestor: Ingestor): ServiceImpl<typeof IngestService> {
  return {
    async ingest(req) {
      const outcome = await ingestor.ingest(req, { paths: RPC_PATHS });
      if (!outcome.ok) throw errors.invalidBatch(outcome.violations);
      return { accepted: outcome.accepted, rejected: 0, requestId: outcome.requestId };
    },

    async ingestStream(requests) {
      const requestId = newRequestId();
      const totals = { accepted: 0, rejected: 0, requestId, messages: 0 };
      const violations: Violation[] = [];
      // A message that names a service sets the stream's envelope; later ones may omit it.
      let envelope = {
        service: "",
        version: undefined as string | undefined,
        instanceId: undefined as string | undefined,
      };
      // Errors after some batches were committed carry the totals, so the emitter knows what is stored.
      const withTotals = (error: ConnectError): ConnectError => {
        error.details.push({ desc: IngestStreamResponseSchema, value: totals });
        return error;
      };
      try {
        for await (const message of requests) {
          const index = totals.messages++;
          if (message.service !== "") {
            envelope = {
              service: message.service,
              version: message.version,
              instanceId: message.instanceId,
            };
          }
          const outcome = await ingestor.ingest(
            { ...envelope, events: message.events },
            { paths: RPC_PATHS, requestId },
          );
          if (outcome.ok) {
            totals.accepted += outcome.accepted;
          } else {
            totals.rejected += message.events.length;
            for (const v of outcome.violations) {
              violations.push({
                field: `messages[${index}].${v.field}`,
                description: v.description,
              });
            }
          }
        }
      } catch (cause) {
        throw withTotals(cause instanceof ConnectError ? cause : errors.internal(cause));
      }
      if (violations.length > 0) throw withTotals(errors.invalidBatch(violations));
      return totals;
    },
  };
}
