import { type AnyRequest, type AnyResponse, sendJson } from "./respond.js";

/** The plain HTTP routes served beside the RPCs, through the Connect adapter's fallback. */
export type HttpRoutes = (req: AnyRequest, res: AnyResponse) => void;

/** State the plain routes report. */
export interface HttpRoutesOptions {
  /** Whether the service is shutting down. */
  readonly draining: () => boolean;
}

/**
 * Builds the plain routes: `GET /health`, the legacy liveness answer
 * (contract §1). Unknown paths answer 404 and known paths with another method
 * 405, in the legacy `{"detail": ...}` shape.
 */
export function createHttpRoutes(options: HttpRoutesOptions): HttpRoutes {
  const routes: Record<string, Record<string, (res: AnyResponse) => void>> = {
    "/health": {
      GET: (res) =>
        options.draining()
          ? sendJson(res, 503, { status: "draining", service: "metrics-collection" })
          : sendJson(res, 200, { status: "healthy", service: "metrics-collection" }),
    },
  };
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const methods = routes[path];
    if (methods === undefined) return sendJson(res, 404, { detail: "Not Found" });
    const route = methods[req.method ?? "GET"];
    if (route === undefined) {
      return sendJson(
        res,
        405,
        { detail: "Method Not Allowed" },
        { allow: Object.keys(methods).join(", ") },
      );
    }
    // Drain whatever body was sent so the connection stays usable.
    req.resume();
    route(res);
  };
}
