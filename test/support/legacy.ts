/** Sends a legacy `POST /metrics` as the Python emitters do: JSON text and an `X-API-Key` header. */
export async function postMetrics(
  url: string,
  body: unknown,
  options: {
    key?: string | undefined;
    raw?: string | Buffer;
    headers?: Record<string, string>;
  } = {},
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    ...options.headers,
  };
  if (options.key !== undefined) headers["X-API-Key"] = options.key;
  const res = await fetch(`${url}/metrics`, {
    method: "POST",
    headers,
    body: options.raw ?? JSON.stringify(body),
  });
  return {
    status: res.status,
    headers: res.headers,
    json: (await res.json()) as Record<string, unknown>,
  };
}

/** A minimal valid legacy metric. */
export function legacyMetric(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: "auth_request",
    value: 1.0,
    duration_ms: 12.5,
    dimensions: { success: true, method: "jwt" },
    ...extra,
  };
}
