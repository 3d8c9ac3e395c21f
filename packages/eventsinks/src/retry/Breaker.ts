import { expectInteger, expectNonNegative } from '../internal/validate.js';
import type { RetryStrategy } from './RetryStrategy.js';

/**
 * Options for {@link Breaker}.
 *
 * @example
 * ```ts
 * const breaker = new Breaker(3, 1000, { now: () => fakeClock.now });
 * ```
 */
export interface BreakerOptions {
  /** The clock, in milliseconds; defaults to `Date.now`. Inject one to test without waiting. */
  now?: () => number;
}

/**
 * A circuit breaker: after `threshold` consecutive failures it waits `backoff` ms after the last
 * failure before each further attempt, until a success resets it. It never drops an event.
 *
 * @example
 * ```ts
 * const retrying = new RetryingSink(httpSink, new Breaker(5, 1000));
 * ```
 */
export class Breaker implements RetryStrategy<unknown> {
  /** Consecutive failures tolerated before backing off. */
  readonly threshold: number;
  /** Milliseconds to wait after the last failure once the threshold is reached. */
  readonly backoff: number;
  readonly #now: () => number;
  #failures = 0;
  #lastFailure = 0;

  /**
   * @param threshold - consecutive failures before backing off (an integer ≥ 0).
   * @param backoff - milliseconds to back off (finite, ≥ 0).
   * @throws TypeError or RangeError naming a bad argument.
   */
  constructor(threshold: number, backoff: number, options: BreakerOptions = {}) {
    expectInteger('threshold', threshold, 0);
    expectNonNegative('backoff', backoff);
    this.threshold = threshold;
    this.backoff = backoff;
    // Looked up per call, so fake timers installed after construction still apply.
    this.#now = options.now ?? (() => Date.now());
  }

  /** Consecutive failures so far. */
  get failures(): number {
    return this.#failures;
  }

  /** 0 below the threshold, else the time left until `lastFailure + backoff` (never negative). */
  proceed(_event?: unknown): number {
    if (this.#failures < this.threshold) return 0;
    return Math.max(0, this.#lastFailure + this.backoff - this.#now());
  }

  /** Counts the failure; never drops. */
  failure(_event?: unknown, _error?: unknown): boolean {
    this.#failures++;
    this.#lastFailure = this.#now();
    return false;
  }

  /** Resets the count. */
  success(_event?: unknown): void {
    this.#failures = 0;
    this.#lastFailure = 0;
  }
}
