/**
 * A growable FIFO ring buffer: O(1) push and shift with no per-element allocation, unlike
 * `Array.prototype.shift`, which is O(n) once an array leaves V8's fast path. Capacity is a power
 * of two so that wrapping is a mask; it doubles when full and never shrinks below what was
 * needed, since a queue that once held a burst will likely hold one again.
 * @internal
 */
export class RingBuffer<T> {
  #items: (T | undefined)[];
  #head = 0;
  #length = 0;
  #mask: number;

  constructor(initialCapacity = 16) {
    let capacity = 16;
    while (capacity < initialCapacity) capacity *= 2;
    this.#items = new Array<T | undefined>(capacity);
    this.#mask = capacity - 1;
  }

  get length(): number {
    return this.#length;
  }

  push(item: T): void {
    if (this.#length > this.#mask) this.#grow();
    this.#items[(this.#head + this.#length) & this.#mask] = item;
    this.#length++;
  }

  /** Removes and returns the oldest item; the caller checks `length` first. */
  shift(): T {
    const index = this.#head;
    const item = this.#items[index] as T;
    // Release the reference now, so a drained queue does not keep its events alive.
    this.#items[index] = undefined;
    this.#head = (index + 1) & this.#mask;
    this.#length--;
    return item;
  }

  /** The item `index` places from the front (0 is the front); `index` must be < length. */
  at(index: number): T {
    return this.#items[(this.#head + index) & this.#mask] as T;
  }

  /** The oldest item without removing it; the caller checks `length` first. */
  peek(): T {
    return this.#items[this.#head] as T;
  }

  /** Removes every item, returning them oldest first. */
  drain(): T[] {
    const out: T[] = [];
    while (this.#length > 0) out.push(this.shift());
    return out;
  }

  #grow(): void {
    const old = this.#items;
    const capacity = old.length * 2;
    const items = new Array<T | undefined>(capacity);
    for (let i = 0; i < this.#length; i++) items[i] = old[(this.#head + i) & this.#mask];
    this.#items = items;
    this.#head = 0;
    this.#mask = capacity - 1;
  }
}
