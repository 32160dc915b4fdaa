import type { ConnectError, ServiceImpl } from "@connectrpc/connect";
import {
  type IngestService,
  IngestStreamResponseSchema,
} from "../../gen/mcp/metrics/v1/ingest_pb.js";
import { admittedIn } from "../auth/admission.js";
import { asConnectError, DETAIL_VIOLATIONS, errors, type Violation } from "../errors.js";
import { type Ingestor, REPLAYED_HEADER } from "./ingestor.js";
import { newRequestId } from "./request-id.js";
import { RPC_PATHS } from "./validate.js";

/** What the IngestService handlers need. */
export interface IngestServiceOptions {
  readonly ingestor: Ingestor;
  /** Aborted when the service starts draining: open streams end at once. */
  readonly draining: AbortSignal;
}

/**
 * The next message of a stream, or UNAVAILABLE as soon as the service drains,
 * so that an idle stream never holds a shutdown up.
 */
function nextOrDrain<T>(
  messages: AsyncIterator<T>,
  draining: AbortSignal,
): Promise<IteratorResult<T>> {
  if (draining.aborted) return Promise.reject(errors.shuttingDown());
  return new Promise((resolve, reject) => {
    const onDrain = () => reject(errors.shuttingDown());
    draining.addEventListener("abort", onDrain, { once: true });
    messages.next().then(
      (result) => {
        draining.removeEventListener("abort", onDrain);
        resolve(result);
      },
      (error: unknown) => {
        draining.removeEventListener("abort", onDrain);
        reject(error);
      },
    );
  });
}

/**
 * The `mcp.metrics.v1.IngestService` handlers. Authentication and rate limits
 * are applied by the door (src/auth/admission.ts) and the rate-limit
 * interceptor before these run.
 */
export function createIngestServiceImpl(
  options: IngestServiceOptions,
): ServiceImpl<typeof IngestService> {
  const { ingestor, draining } = options;
  return {
    async ingest(req, context) {
      const principal = admittedIn(context.values)?.principal;
      const outcome = await ingestor.ingest(req, { paths: RPC_PATHS, principal });
      if (!outcome.ok) throw errors.invalidBatch(outcome.violations);
      if (outcome.replayed) context.responseHeader.set(REPLAYED_HEADER, "true");
      return { accepted: outcome.accepted, rejected: 0, requestId: outcome.requestId };
    },

    async ingestStream(requests, context) {
      const principal = admittedIn(context.values)?.principal;
      const requestId = newRequestId();
      const totals = { accepted: 0, rejected: 0, requestId, messages: 0 };
      // Only the first violations are kept; a long stream must not grow memory.
      const violations: Violation[] = [];
      let violationCount = 0;
      // A message that names a service sets the stream's envelope; later ones may omit it.
      let envelope: {
        service: string;
        version?: string | undefined;
        instanceId?: string | undefined;
      } = { service: "" };
      // Errors after some batches were committed carry the totals, so the emitter knows what is stored.
      const withTotals = (error: ConnectError): ConnectError => {
        error.details.push({ desc: IngestStreamResponseSchema, value: totals });
        return error;
      };
      const messages = requests[Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await nextOrDrain(messages, draining);
          if (next.done) break;
          const message = next.value;
          const index = totals.messages++;
          if (message.service !== "") {
            envelope = {
              service: message.service,
              version: message.version,
              instanceId: message.instanceId,
            };
          }
          const outcome = await ingestor.ingest(
            { ...envelope, batchId: message.batchId, events: message.events },
            { paths: RPC_PATHS, requestId, principal },
          );
          if (outcome.ok) {
            totals.accepted += outcome.accepted;
            continue;
          }
          totals.rejected += message.events.length;
          violationCount += outcome.violations.length;
          for (const v of outcome.violations.slice(0, DETAIL_VIOLATIONS - violations.length)) {
            violations.push({ field: `messages[${index}].${v.field}`, description: v.description });
          }
        }
      } catch (cause) {
        throw withTotals(asConnectError(cause));
      }
      if (violationCount > 0) throw withTotals(errors.invalidBatch(violations, violationCount));
      return totals;
    },
  };
}
