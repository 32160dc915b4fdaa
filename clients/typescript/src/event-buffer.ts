/**
 * A fixed-capacity FIFO that drops its oldest entry when full.
 *
 * Emitters must never block and memory must never grow without bound, so a
 * full buffer makes room by discarding the oldest entry (the one least likely
 * to still matter) and reports it; the caller counts the drop. Push and shift
 * are O(1): a ring over a preallocated array, no copying.
 */
export class EventBuffer<T> {
  private readonly slots: (T | undefined)[];
  private head = 0;
  private count = 0;

  /** @param capacity the most entries held at once, at least 1 */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`buffer capacity must be a positive integer, got ${capacity}`);
    }
    this.slots = new Array<T | undefined>(capacity);
  }

  /** How many entries are buffered. */
  get length(): number {
    return this.count;
  }

  /** Appends an entry; returns the entry dropped to make room, if any. */
  push(entry: T): T | undefined {
    const cap = this.capacity;
    if (this.count < cap) {
      this.slots[(this.head + this.count) % cap] = entry;
      this.count++;
      return undefined;
    }
    const dropped = this.slots[this.head];
    this.slots[this.head] = entry;
    this.head = (this.head + 1) % cap;
    return dropped;
  }

  /** The oldest entry, without removing it. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.slots[this.head];
  }

  /** Removes and returns up to `max` of the oldest entries, oldest first. */
  take(max: number): T[] {
    const n = Math.min(max, this.count);
    const out = new Array<T>(n);
    const cap = this.capacity;
    for (let i = 0; i < n; i++) {
      out[i] = this.slots[this.head] as T;
      this.slots[this.head] = undefined;
      this.head = (this.head + 1) % cap;
    }
    this.count -= n;
    return out;
  }
}
