/**
 * The view's state, kept in the URL so that a view can be shared: the range
 * and the filters (`?range=7d&service=auth-server&tool=search`).
 */

/** The ranges offered, with the step each is charted at. */
export const RANGES = {
  "1h": { ms: 3_600_000, step: "minute" },
  "6h": { ms: 6 * 3_600_000, step: "minute" },
  "24h": { ms: 86_400_000, step: "hour" },
  "7d": { ms: 7 * 86_400_000, step: "hour" },
  "30d": { ms: 30 * 86_400_000, step: "day" },
  "90d": { ms: 90 * 86_400_000, step: "day" },
  "1y": { ms: 365 * 86_400_000, step: "day" },
} as const;

export type RangeName = keyof typeof RANGES;
export type Step = (typeof RANGES)[RangeName]["step"];

export const STEP_SECONDS: Readonly<Record<Step, number>> = {
  minute: 60,
  hour: 3_600,
  day: 86_400,
};

export interface View {
  readonly range: RangeName;
  readonly service: string;
  readonly server: string;
  readonly tool: string;
}

const isRange = (v: string | null): v is RangeName => v !== null && v in RANGES;

/** The view the URL asks for (the last 7 days, unfiltered, by default). */
export function viewOfUrl(url: URL): View {
  const p = url.searchParams;
  const range = p.get("range");
  return {
    range: isRange(range) ? range : "7d",
    service: p.get("service") ?? "",
    server: p.get("server") ?? "",
    tool: p.get("tool") ?? "",
  };
}

/** The URL of a view: only what differs from the default is written. */
export function urlOfView(view: View, base: URL): URL {
  const url = new URL(base.pathname, base.origin);
  if (view.range !== "7d") url.searchParams.set("range", view.range);
  for (const name of ["service", "server", "tool"] as const) {
    if (view[name] !== "") url.searchParams.set(name, view[name]);
  }
  return url;
}
