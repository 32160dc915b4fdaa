/**
 * The page's one way to the service: a QueryService client over Connect's
 * JSON on the page's own origin, with the read key from this tab's session
 * storage (docs/history.md, "The history page").
 */
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { QueryService } from "../gen/mcp/metrics/v1/query_pb.js";

/** Where the key is kept: this tab only, gone when it closes. */
const KEY_ITEM = "mcp-metrics-read-key";

export const storedKey = (): string | null => sessionStorage.getItem(KEY_ITEM);
export const storeKey = (key: string): void => sessionStorage.setItem(KEY_ITEM, key);
export const forgetKey = (): void => sessionStorage.removeItem(KEY_ITEM);

export type Query = Client<typeof QueryService>;

/** A client sending `key` in `x-api-key`, as every other client of the service does. */
export function queryClient(key: string): Query {
  return createClient(
    QueryService,
    createConnectTransport({
      baseUrl: window.location.origin,
      interceptors: [
        (next) => async (req) => {
          req.header.set("x-api-key", key);
          // A User Timing measure per call, named by what it asked (devtools
          // shows them; the history bench reads them).
          const start = performance.now();
          try {
            return await next(req);
          } finally {
            performance.measure(`${req.method.name} ${asked(req.message)}`, { start });
          }
        },
      ],
    }),
  );
}

/** What a request asked, in a few words: its type and dimension or measure. */
function asked(message: unknown): string {
  const m = message as Record<string, unknown>;
  return ["eventType", "dimension", "measure", "groupBy"]
    .map((k) => m[k])
    .filter((v) => typeof v === "string" && v !== "")
    .join(" ");
}

/** Whether an error means the key is not one that may read (a new key is asked for). */
export function keyRefused(error: unknown): boolean {
  const e = ConnectError.from(error);
  return e.code === Code.Unauthenticated || e.code === Code.PermissionDenied;
}

/** An error's message as a panel shows it. */
export function messageOf(error: unknown): string {
  return ConnectError.from(error).rawMessage;
}
