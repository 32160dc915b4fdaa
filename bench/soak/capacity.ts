/**
 * The soak's traffic mix and its default rate: half the capacity the newest
 * full ingest benchmark measured for that mix, so the soak follows future
 * bench runs; with a result of this run's own (`--capacity-from`, the quick
 * ingest bench's in CI), half the lower of the two, so that a machine slower
 * than the one of the committed result is not loaded past what it carries.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { LoadSpec } from "../ingest/load.js";

/** One share of the soak's traffic, sent by a load generator of its own. */
export interface MixPart {
  readonly name: string;
  readonly ingress: LoadSpec["ingress"];
  /** Fraction of the total event rate. */
  readonly share: number;
  /** Events stamped 100 days back, reported by their own service: retention's work. */
  readonly expired: boolean;
}

/**
 * JSON first, as deployed today, then the binary ingresses; 5% of the events
 * are old enough for the sweeps to delete, distinguishable by their service.
 */
export const MIX: readonly MixPart[] = [
  { name: "json", ingress: "json", share: 0.6, expired: false },
  { name: "connect", ingress: "connect", share: 0.1, expired: false },
  { name: "grpc", ingress: "grpc", share: 0.15, expired: false },
  { name: "stream", ingress: "stream", share: 0.1, expired: false },
  { name: "expired-json", ingress: "json", share: 0.05, expired: true },
];

/** Used when no full bench result can be read: half the JSON path's 20,000 events/s. */
export const FALLBACK_EVENTS_PER_SECOND = 10_000;

/** Where the soak's default rate came from. */
export interface DefaultRate {
  readonly eventsPerSecond: number;
  /** The bench result read, or why none was. */
  readonly source: string;
  /** Sustained events/s per ingress in that result. */
  readonly sustained: Readonly<Record<string, number>>;
  /** What the whole mix would sustain: each ingress's share of the time of one event. */
  readonly mixCapacity: number;
}

interface BenchResult {
  readonly mode?: string;
  readonly arms?: readonly { ingress: string; sustainedEventsPerSecond: number }[];
}

/**
 * Half of what the mix sustains according to the newest full result in
 * `dir` (`ingest-<timestamp>.json`; quick runs live in `quick/`). The mix's
 * capacity is the harmonic one, 1 / sum(share / sustained): on one core each
 * ingress's events take their own time.
 */
export function defaultRate(dir: string): DefaultRate {
  return newestRate(dir, ["full"]) ?? fallbackRate(`no full ingest result in ${dir}`);
}

/**
 * Half of the lower capacity of the committed full result in `committedDir`
 * and the newest result, full or quick, in `thisRunDir`: the machines CI runs
 * on differ up to fourfold in CPU per event (136-150 µs in the bare server on
 * one, 36 on another), and a soak at half another machine's capacity ran
 * this one at its limit, where any pause (a retention sweep, a full GC) put a
 * key's requests past its fair share and they were refused.
 */
export function sameRunRate(committedDir: string, thisRunDir: string): DefaultRate {
  const committed = defaultRate(committedDir);
  const measured = newestRate(thisRunDir, ["full", "quick"]);
  if (measured === undefined) return committed;
  return measured.mixCapacity < committed.mixCapacity ? measured : committed;
}

function fallbackRate(source: string): DefaultRate {
  return {
    eventsPerSecond: FALLBACK_EVENTS_PER_SECOND,
    source,
    sustained: {},
    mixCapacity: 2 * FALLBACK_EVENTS_PER_SECOND,
  };
}

/** The newest result in `dir` of one of `modes` with every ingress of the mix sustained, or none. */
function newestRate(dir: string, modes: readonly string[]): DefaultRate | undefined {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => /^ingest-.*\.json$/.test(f));
  } catch {
    return undefined;
  }
  // The timestamp in the name sorts as time.
  for (const file of files.sort().reverse()) {
    let result: BenchResult;
    try {
      result = JSON.parse(readFileSync(join(dir, file), "utf8")) as BenchResult;
    } catch {
      continue;
    }
    if (result.mode === undefined || !modes.includes(result.mode) || result.arms === undefined) {
      continue;
    }
    const sustained = Object.fromEntries(
      result.arms.map((a) => [a.ingress, a.sustainedEventsPerSecond]),
    );
    const secondsPerEvent = MIX.reduce((sum, part) => {
      const rate = sustained[part.ingress] ?? 0;
      return sum + (rate > 0 ? part.share / rate : Number.POSITIVE_INFINITY);
    }, 0);
    if (!Number.isFinite(secondsPerEvent)) continue;
    const mixCapacity = 1 / secondsPerEvent;
    return {
      eventsPerSecond: Math.round(mixCapacity / 2 / 100) * 100,
      source: join(dir, file),
      sustained,
      mixCapacity,
    };
  }
  return undefined;
}
