/**
 * How fast a request message or body must arrive once it has begun: whole
 * within an absolute deadline, and, past a grace period, at no less than a
 * minimum data rate (Kestrel's MinRequestBodyDataRate: 240 bytes/s after 5 s).
 * Idle timers alone do not bound a slow sender: each byte it drips resets them.
 */
export interface ArrivalLimits {
  /** Longest a message or body may take from its start to its last byte. */
  readonly deadlineMillis: number;
  /** Least average rate, in bytes per second, once {@link RATE_GRACE_MILLIS} have passed; 0: none. */
  readonly minBytesPerSecond: number;
}

/** How long a message may arrive at any rate before the minimum applies. */
export const RATE_GRACE_MILLIS = 5000;

/** Why a message came too slowly: past its deadline, or under the minimum rate. */
export type Lateness =
  | { readonly kind: "deadline"; readonly deadlineMillis: number }
  | {
      readonly kind: "rate";
      readonly bytesPerSecond: number;
      readonly minBytesPerSecond: number;
    };

/**
 * Watches one message (or body) at a time arrive, and calls `onLate` once
 * when it has not arrived whole in time. One timer per message, re-armed only
 * when it fires: the bytes themselves cost an addition.
 */
export class ArrivalWatch {
  readonly #limits: ArrivalLimits;
  readonly #onLate: (lateness: Lateness) => void;
  #startedAt = 0;
  #received = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(limits: ArrivalLimits, onLate: (lateness: Lateness) => void) {
    this.#limits = limits;
    this.#onLate = onLate;
  }

  /** Whether a message is under way. */
  get watching(): boolean {
    return this.#timer !== undefined;
  }

  /** A message begins now (or at `startedAt`, on `performance.now()`'s clock). */
  begin(startedAt = performance.now()): void {
    this.end();
    this.#startedAt = startedAt;
    this.#received = 0;
    this.#arm(performance.now());
  }

  /** `bytes` more of the message arrived. */
  add(bytes: number): void {
    this.#received += bytes;
  }

  /** The message arrived whole (or the request ended): stop watching. */
  end(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** When the message is late, with what arrived so far. */
  #due(): number {
    const { deadlineMillis, minBytesPerSecond } = this.#limits;
    const byRate =
      minBytesPerSecond > 0
        ? Math.max(RATE_GRACE_MILLIS, (this.#received / minBytesPerSecond) * 1000)
        : Number.POSITIVE_INFINITY;
    return this.#startedAt + Math.min(deadlineMillis, byRate);
  }

  #arm(now: number): void {
    this.#timer = setTimeout(() => this.#check(), Math.max(0, this.#due() - now));
  }

  #check(): void {
    const now = performance.now();
    // More bytes came since the timer was set: the message has more time.
    if (now < this.#due()) {
      this.#arm(now);
      return;
    }
    this.#timer = undefined;
    const elapsed = now - this.#startedAt;
    const { deadlineMillis, minBytesPerSecond } = this.#limits;
    this.#onLate(
      elapsed >= deadlineMillis
        ? { kind: "deadline", deadlineMillis }
        : {
            kind: "rate",
            bytesPerSecond: Math.floor((this.#received / elapsed) * 1000),
            minBytesPerSecond,
          },
    );
  }
}

/** What a late message or body is told, after `what` (e.g. "a mcp.metrics.v1.IngestRequest message"). */
export function latenessText(what: string, lateness: Lateness): string {
  return lateness.kind === "deadline"
    ? `${what} took more than ${lateness.deadlineMillis / 1000} s to arrive`
    : `${what} arrived at ${lateness.bytesPerSecond} bytes/s, under the minimum of ${lateness.minBytesPerSecond} bytes/s`;
}
