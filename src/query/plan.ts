import { GRAINS, type Grain, grainOf } from "../storage/rollups.js";

/** A span of time, in epoch ms: [start, end). */
export interface Span {
  readonly startMs: number;
  readonly endMs: number;
}

/** One part of a range and the rollup grain that answers it. */
export interface Piece extends Span {
  readonly grain: Grain;
}

/** A time floored to a grain (UTC). */
export function floorTo(ms: number, grain: Grain): number {
  const length = grainOf(grain).millis;
  return Math.floor(ms / length) * length;
}

/** A time rounded up to a grain (UTC). */
export function ceilTo(ms: number, grain: Grain): number {
  const length = grainOf(grain).millis;
  return Math.ceil(ms / length) * length;
}

/** The grains from `coarsest` down to minutes. */
function grainsFrom(coarsest: Grain): Grain[] {
  const names = GRAINS.map((g) => g.name);
  return names.slice(0, names.indexOf(coarsest) + 1).reverse();
}

/**
 * Covers [start, end), aligned outward to whole minutes, with the coarsest
 * whole buckets first: whole days, then whole hours either side, then the
 * minutes left at the edges.
 */
function cover(span: Span, grains: readonly Grain[]): Piece[] {
  const [grain, ...finer] = grains;
  if (grain === undefined || span.startMs >= span.endMs) return [];
  if (finer.length === 0) return [{ grain, ...span }];
  const start = ceilTo(span.startMs, grain);
  const end = floorTo(span.endMs, grain);
  if (start >= end) return cover(span, finer);
  return [
    ...cover({ startMs: span.startMs, endMs: start }, finer),
    { grain, startMs: start, endMs: end },
    ...cover({ startMs: end, endMs: span.endMs }, finer),
  ];
}

/** Adjacent or overlapping pieces of one grain merged. */
function merged(pieces: readonly Piece[]): Piece[] {
  const sorted = [...pieces].sort((a, b) => a.startMs - b.startMs);
  const out: Piece[] = [];
  for (const p of sorted) {
    const last = out.at(-1);
    if (last && last.grain === p.grain && p.startMs <= last.endMs) {
      out[out.length - 1] = { ...last, endMs: Math.max(last.endMs, p.endMs) };
    } else {
      out.push(p);
    }
  }
  return out;
}

/**
 * The rollup pieces that answer [start, end): the range aligned outward to
 * whole minutes, covered by the coarsest grain up to `coarsest` whose whole
 * buckets fit, and finer grains at the edges. A piece older than its grain's
 * rollups still kept (`keptSince`, epoch ms per grain) is widened to the
 * next coarser grain's buckets, so the answer covers a little more than was
 * asked rather than leaving a hole; the pieces' span is what was answered.
 */
export function planPieces(
  span: Span,
  keptSince: Readonly<Record<Grain, number>>,
  coarsest: Grain = "day",
): Piece[] {
  const aligned = { startMs: floorTo(span.startMs, "minute"), endMs: ceilTo(span.endMs, "minute") };
  let pieces = cover(aligned, grainsFrom(coarsest));
  const order = GRAINS.map((g) => g.name);
  for (const grain of order.slice(0, -1)) {
    const coarser = order[order.indexOf(grain) + 1] as Grain;
    pieces = merged(
      pieces.map((p) =>
        p.grain === grain && p.startMs < keptSince[grain]
          ? {
              grain: coarser,
              startMs: floorTo(p.startMs, coarser),
              endMs: ceilTo(p.endMs, coarser),
            }
          : p,
      ),
    );
  }
  // Widening may overlap a coarser neighbour: the coarser piece wins.
  const out: Piece[] = [];
  for (const p of [...pieces].sort((a, b) => a.startMs - b.startMs)) {
    const last = out.at(-1);
    if (last && p.startMs < last.endMs) {
      if (p.endMs <= last.endMs) continue;
      out.push({ ...p, startMs: last.endMs });
    } else {
      out.push(p);
    }
  }
  return out;
}
