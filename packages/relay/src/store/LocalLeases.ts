// The claim side of the Store contract for a store that one process owns (SQLite): no other
// relay can hold a delivery, so a lease is an entry in memory, gone with the process, and the
// wake-ups are calls within it. Same rules as PostgresStore's claim: pending, due, not held,
// and only the head of a key.
import type { PendingDelivery } from './Store.js';

/** How LocalLeases reads the store: `Store.pending` pages. */
export type PendingPages = (
  destination: string,
  afterSeq: number,
  limit: number,
) => Promise<PendingDelivery[]>;

const PAGE = 1_000;

/**
 * In-process leases and wake-ups, for a store with one owner. `claim` pages through `pending`
 * and skips held deliveries, those not due, and every delivery of a key behind its head; call
 * `release` when attempts are recorded and `wake` when deliveries become due.
 */
export class LocalLeases {
  readonly #pending: PendingPages;
  readonly #now: () => number;
  readonly #held = new Map<string, Set<number>>();
  readonly #listeners = new Set<(destination: string) => void>();
  readonly #onError: (error: unknown) => void;

  constructor(
    pending: PendingPages,
    options: { now?: () => number; onError?: (error: unknown) => void } = {},
  ) {
    this.#pending = pending;
    this.#now = options.now ?? Date.now;
    // Unless told where, a subscriber's failure is printed as a process warning, not lost.
    this.#onError =
      options.onError ??
      ((error) => process.emitWarning(`a store subscriber threw: ${String(error)}`));
  }

  /** See Store.claim. */
  async claim(destination: string, limit: number): Promise<PendingDelivery[]> {
    const now = this.#now();
    const held = this.#held.get(destination) ?? new Set<number>();
    this.#held.set(destination, held);
    const blocked = new Set<string>();
    const claimed: PendingDelivery[] = [];
    let after = 0;
    while (claimed.length < limit) {
      const page = await this.#pending(destination, after, PAGE);
      for (const p of page) {
        if (claimed.length >= limit) break;
        const headOfKey = p.key === undefined || !blocked.has(p.key);
        if (p.key !== undefined) blocked.add(p.key);
        if (!headOfKey || held.has(p.seq) || p.nextAt > now) continue;
        claimed.push(p);
      }
      const last = page[page.length - 1];
      if (page.length < PAGE || last === undefined) break;
      after = last.seq;
    }
    for (const p of claimed) held.add(p.seq);
    return claimed;
  }

  /** See Store.renew: the seqs still held. */
  renew(destination: string, seqs: readonly number[]): number[] {
    const held = this.#held.get(destination);
    return seqs.filter((seq) => held?.has(seq) === true);
  }

  /** Ends the leases on `seqs` (their attempt was recorded). */
  release(destination: string, seqs: readonly number[]): void {
    const held = this.#held.get(destination);
    if (held === undefined) return;
    for (const seq of seqs) held.delete(seq);
  }

  /** See Store.subscribe. */
  subscribe(listener: (destination: string) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Tells the subscribers that `destinations` may have new due deliveries. */
  wake(destinations: Iterable<string>): void {
    for (const destination of new Set(destinations)) {
      for (const listener of this.#listeners) {
        try {
          listener(destination);
        } catch (error) {
          // The other listeners still hear of it.
          this.#onError(error);
        }
      }
    }
  }
}
