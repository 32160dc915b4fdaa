import { EVENT_KINDS } from "../catalog/catalog.js";

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
 * Dimensions that become labels, per event type (docs/legacy-contract.md W8): each kind's `labels` in
 * the event catalog, the upstream gateway's allow-lists without `user_hash`,
 * `session_key` and free-text `query`, which are unbounded and personal: they
 * stay in the database, where the history can still be asked about them.
 * Every series of a type carries every label of its list, `_unset` where the
 * event had no value, so that series from emitters that send a dimension and
 * from ones that leave it out add up under one label set.
 */
export const LABEL_KEYS: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  EVENT_KINDS.map((kind) => [kind.name, kind.labels]),
);

/** Labels holding a path or URL: only scheme, host and path are kept (no user info, no query). */
const PATH_LABELS = new Set(["server_path", "endpoint"]);

/**
 * Values that never spend a label's budget, so that junk values cannot push
 * the ones the dashboard filters on into `_other`.
 */
const ALWAYS_ADMITTED: Readonly<Record<string, ReadonlySet<string>>> = {
  success: new Set(["true", "false"]),
  healthy: new Set(["true", "false"]),
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

/**
 * Characters kept in a label value, as the upstream gateway sanitises them
 * (docs/legacy-contract.md §8); each other character, a whole code point, becomes one `_`
 * (slashes keep `tools/call`; `weird name!` is `weird_name_`).
 */
const UNSAFE = /[^A-Za-z0-9\-_.:/]/gu;

/**
 * A dimension value as label text: booleans in lowercase, as the newest
 * upstream and Prometheus's conventions write them (`true`, whichever
 * spelling the emitter used: the typed fields hold them converted), whole
 * numbers without a fraction (`200`), nothing for null (then `_unset`).
 */
export function labelText(value: unknown): string {
  if (value === true) return "true";
  if (value === false) return "false";
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? `${value}` : String(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Turns dimensions into bounded label sets. */
export interface LabelBounds {
  /**
   * Labels for one event: `service` and `metric_type` (which no dimension can
   * override), plus every allowed dimension of its type, each normalized and
   * capped, `_unset` where the event has none.
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
        labels[key] = Object.hasOwn(dimensions, key)
          ? bound(key, labelText(dimensions[key]))
          : EMPTY_VALUE;
      }
      // Set last, so no dimension can take their place (docs/legacy-contract.md W8).
      labels.service = bound("service", service);
      labels.metric_type = metricType;
      return labels;
    },
  };
}
