import { describe, expectNonNegative } from '../internal/validate.js';
import type { RetryStrategy } from './RetryStrategy.js';

/**
 * Configuration of {@link ExponentialBackoff}, in milliseconds.
 *
 * @example
 * ```ts
 * const config: ExponentialBackoffConfig = { base: 100, factor: 100, max: 10_000 };
 * ```
 */
export interface ExponentialBackoffConfig {
  /** Added to every backoff. */
  base: number;
  /** Multiplied by 2^(failures − 1). */
  factor: number;
  /** Upper bound of the backoff. */
  max: number;
}

/**
 * go-events' defaults: 1 s base, 1 s factor, at most 20 s.
 *
 * @example
 * ```ts
 * new ExponentialBackoff({ ...DEFAULT_EXPONENTIAL_BACKOFF, max: 60_000 });
 * ```
 */
export const DEFAULT_EXPONENTIAL_BACKOFF: Readonly<ExponentialBackoffConfig> = Object.freeze({
  base: 1000,
  factor: 1000,
  max: 20000,
});

/**
 * Options for {@link ExponentialBackoff} beyond its config.
 *
 * @example
 * ```ts
 * new ExponentialBackoff({ base: 10 }, { random: () => 0.5 });
 * ```
 */
export interface ExponentialBackoffOptions {
  /** A source of uniform numbers in [0, 1); defaults to `Math.random`. */
  random?: () => number;
}

/**
 * Exponential backoff with full jitter: after `f` consecutive failures, `proceed` returns a
 * uniformly random delay in `[0, min(base + factor · 2^(f−1), max))`; 0 when `f = 0`. It never
 * drops an event; a success resets it.
 *
 * @example
 * ```ts
 * const retrying = new RetryingSink(sink, new ExponentialBackoff({ base: 100, max: 5000 }));
 * ```
 */
export class ExponentialBackoff implements RetryStrategy<unknown> {
  /** The effective configuration (defaults filled in). */
  readonly config: Readonly<ExponentialBackoffConfig>;
  readonly #random: () => number;
  #failures = 0;

  /**
   * @param config - any of `base`, `factor`, `max` (ms, finite, ≥ 0); the rest default to
   *   {@link DEFAULT_EXPONENTIAL_BACKOFF}.
   * @throws TypeError or RangeError naming a bad value.
   */
  constructor(
    config: Partial<ExponentialBackoffConfig> = {},
    options: ExponentialBackoffOptions = {},
  ) {
    if (typeof config !== 'object' || config === null) {
      throw new TypeError(`Expected \`config\` to be an object, got ${describe(config)}`);
    }
    const merged = { ...DEFAULT_EXPONENTIAL_BACKOFF };
    for (const key of ['base', 'factor', 'max'] as const) {
      const value = config[key];
      if (value !== undefined) {
        expectNonNegative(key, value);
        merged[key] = value;
      }
    }
    this.config = Object.freeze(merged);
    this.#random = options.random ?? Math.random;
  }

  /** Consecutive failures so far. */
  get failures(): number {
    return this.#failures;
  }

  /** 0 with no failures, else a random delay below the current bound. */
  proceed(_event?: unknown): number {
    const failures = this.#failures;
    if (failures === 0) return 0;
    const { base, factor, max } = this.config;
    // factor 0 must not meet an infinite power (0 · ∞ is NaN).
    const growth = factor === 0 ? 0 : factor * 2 ** (failures - 1);
    const bound = Math.min(base + growth, max);
    return this.#random() * bound;
  }

  /** Counts the failure; never drops. */
  failure(_event?: unknown, _error?: unknown): boolean {
    this.#failures++;
    return false;
  }

  /** Resets the count. */
  success(_event?: unknown): void {
    this.#failures = 0;
  }
}
