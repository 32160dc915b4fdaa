/** A label value as recorded: always text. */
export type Labels = Record<string, string>;

/** Options of {@link createLabelBounds}. */
export interface LabelBoundsOptions {
  /** Distinct values one label may take before new ones collapse into `_other`. */
  readonly maxValuesPerLabel: number;
  /** Longest label value kept; longer ones are cut. */
  readonly maxLength: number;
  /** Told each time a value collapses into `_other`, with the label's name. */
  readonly onOverflow?: (label: string) => void;
}

/** The value that stands for every value beyond a label's cap. */
export const OVERFLOW_VALUE = "_other";
/** The value of a label whose text normalizes to nothing. */
export const EMPTY_VALUE = "_unset";

/**
 * Dimensions that may become labels, per event type (W8). Never `user_hash`,
 * free-text `query`, `resource_id` or `user_id`: those stay in SQLite only.
 * The keys are those the dashboard filters on and a few low-cardinality ones.
 */
export const LABEL_KEYS: Readonly<Record<string, readonly string[]>> = {
  auth_request: ["success", "method", "server"],
  tool_execution: ["success", "method", "server_name", "server_path", "tool_name", "client_name"],
  tool_discovery: ["results_count"],
  protocol_latency: ["flow_step", "server_name", "client_name"],
  health_check: ["endpoint", "status_code", "healthy"],
};

/** Labels holding a path or URL: only scheme, host and path are kept (no user info, no query). */
const PATH_LABELS = new Set(["server_path", "endpoint"]);

/**
 * Values that never spend a label's budget, so that junk values cannot push
 * the ones the dashboard filters on into `_other`.
 */
const ALWAYS_ADMITTED: Readonly<Record<string, ReadonlySet<string>>> = {
  success: new Set(["True", "False", "None"]),
  healthy: new Set(["True", "False", "None"]),
  method: new Set([
    "initialize",
    "notifications/initialized",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "jwt",
    "oauth",
    "noauth",
  ]),
};

/** `https://user:pw@host/p?q#f` -> `https://host/p`: secrets in user info or query never become labels. */
function pathOnly(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1").replace(/[?#].*$/s, "");
}

/** Characters kept in a label value; others become `_` (slashes keep `tools/call`). */
const UNSAFE = /[^A-Za-z0-9\-_.:/ ]/g;

/** Python's `str()` of a dimension value, the label text the dashboard expects (`True`, `200`). */
export function labelText(value: unknown): string {
  if (value === true) return "True";
  if (value === false) return "False";
  if (value === null || value === undefined) return "None";
  if (typeof value === "number") return Number.isInteger(value) ? `${value}` : String(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Turns dimensions into bounded label sets. */
export interface LabelBounds {
  /**
   * Labels for one event: `service` and `metric_type` (which no dimension can
   * override), plus the allowed dimensions of its type, each normalized and capped.
   */
  labelsFor(
    metricType: string,
    service: string,
    dimensions: Readonly<Record<string, unknown>>,
  ): Labels;
  /** One capped label value, for labels outside the dimensions (e.g. `service`). */
  bound(label: string, value: string): string;
}

/** Creates the label bounds, with their own record of the values each label has taken. */
export function createLabelBounds(options: LabelBoundsOptions): LabelBounds {
  const seen = new Map<string, Set<string>>();

  const bound = (label: string, raw: string): string => {
    const text = PATH_LABELS.has(label) ? pathOnly(raw) : raw;
    const cleaned = text.replace(UNSAFE, "_").slice(0, options.maxLength);
    if (cleaned === "") return EMPTY_VALUE;
    if (ALWAYS_ADMITTED[label]?.has(cleaned)) return cleaned;
    let values = seen.get(label);
    if (values === undefined) {
      values = new Set();
      seen.set(label, values);
    }
    if (values.has(cleaned)) return cleaned;
    if (values.size >= options.maxValuesPerLabel) {
      options.onOverflow?.(label);
      return OVERFLOW_VALUE;
    }
    values.add(cleaned);
    return cleaned;
  };

  return {
    bound,
    labelsFor(metricType, service, dimensions) {
      const labels: Labels = {};
      for (const key of LABEL_KEYS[metricType] ?? []) {
        if (Object.hasOwn(dimensions, key)) labels[key] = bound(key, labelText(dimensions[key]));
      }
      // Set last, so no dimension can take their place (W8).
      labels.service = bound("service", service);
      labels.metric_type = metricType;
      return labels;
    },
  };
}
