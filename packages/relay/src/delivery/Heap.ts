// A binary min-heap: the dispatcher's queues (by seq, by due time) at O(log n) per operation,
// so scheduling stays cheap with a window of 10 000 deliveries and thousands of starts a second.

/**
 * A min-heap ordered by `less`. Entries are not removed from the middle: the dispatcher checks
 * an entry when it pops it and skips stale ones.
 *
 * @example
 * ```ts
 * const heap = new Heap<number>((a, b) => a < b);
 * heap.push(3); heap.push(1); heap.pop(); // 1
 * ```
 */
export class Heap<T> {
  readonly #items: T[] = [];
  readonly #less: (a: T, b: T) => boolean;

  constructor(less: (a: T, b: T) => boolean) {
    this.#less = less;
  }

  /** How many entries it holds (stale ones included). */
  get size(): number {
    return this.#items.length;
  }

  /** The least entry, without removing it. */
  peek(): T | undefined {
    return this.#items[0];
  }

  /** Adds an entry. */
  push(item: T): void {
    const items = this.#items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as T;
      if (!this.#less(item, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = item;
  }

  /** Removes and returns the least entry. */
  pop(): T | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    const n = items.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && this.#less(items[r] as T, items[l] as T)) c = r;
      const child = items[c] as T;
      if (!this.#less(child, last)) break;
      items[i] = child;
      i = c;
    }
    items[i] = last;
    return top;
  }

  /** Removes every entry. */
  clear(): void {
    this.#items.length = 0;
  }
}
