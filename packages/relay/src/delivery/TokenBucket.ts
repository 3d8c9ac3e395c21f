// A destination's rate limit: requests started per second, with a burst of at most 5 % of a
// second's worth (at least one token) so a limit holds over any one-second window, not only on
// average.

/** Options of {@link TokenBucket}. */
export interface TokenBucketOptions {
  /** Tokens added per second (> 0). */
  perSecond: number;
  /** The most tokens it holds; default max(1, ceil(perSecond × 0.05)). */
  burst?: number;
  /** The time, ms; default Date.now. */
  now?: () => number;
}

/**
 * Hands out tokens at `perSecond`; starts full. {@link TokenBucket.take} never waits: it says
 * how long until the next token, so the caller sets one timer instead of polling.
 *
 * @example
 * ```ts
 * const bucket = new TokenBucket({ perSecond: 10 });
 * const wait = bucket.take(); // 0: go; else try again in `wait` ms
 * ```
 */
export class TokenBucket {
  /** The most tokens held at once. */
  readonly burst: number;
  readonly #perMs: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  /** @throws RangeError naming a `perSecond` or `burst` that is not a positive finite number. */
  constructor(options: TokenBucketOptions) {
    const { perSecond } = options;
    if (!(perSecond > 0) || !Number.isFinite(perSecond)) {
      throw new RangeError(`Expected \`perSecond\` to be a positive number, got ${perSecond}`);
    }
    this.burst = options.burst ?? Math.max(1, Math.ceil(perSecond * 0.05));
    if (!(this.burst >= 1) || !Number.isFinite(this.burst)) {
      throw new RangeError(`Expected \`burst\` to be at least 1, got ${this.burst}`);
    }
    this.#perMs = perSecond / 1000;
    this.#now = options.now ?? Date.now;
    this.#tokens = this.burst;
    this.#at = this.#now();
  }

  /** 0 when a token is there, else the ms until one is (> 0); takes nothing. */
  wait(): number {
    const now = this.#now();
    if (now > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#at) * this.#perMs);
      this.#at = now;
    }
    if (this.#tokens >= 1) return 0;
    return Math.max(1, Math.ceil((1 - this.#tokens) / this.#perMs));
  }

  /** Takes a token and returns 0, or takes none and returns the ms until one is there (> 0). */
  take(): number {
    const wait = this.wait();
    if (wait === 0) this.#tokens -= 1;
    return wait;
  }
}
