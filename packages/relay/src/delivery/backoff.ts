// The delay before a delivery's next attempt: the library's ExponentialBackoff formula, computed
// from the stored attempt count (so it survives a restart) rather than from a stateful counter.

/** The retry backoff of a destination, ms. */
export interface BackoffConfig {
  /** Added to every bound. */
  base: number;
  /** Multiplied by 2^(attempt − 1). */
  factor: number;
  /** Upper bound of the delay. */
  max: number;
}

/**
 * The delay after the `attempt`-th failed attempt (1 for the first): full jitter, uniformly
 * in `[0, min(base + factor · 2^(attempt−1), max))`; 0 for an attempt below 1.
 *
 * @example
 * ```ts
 * backoffDelay(3, { base: 100, factor: 100, max: 10_000 }, Math.random); // < 500
 * ```
 */
export function backoffDelay(attempt: number, config: BackoffConfig, random: () => number): number {
  if (!(attempt >= 1)) return 0;
  const { base, factor, max } = config;
  // factor 0 must not meet an infinite power (0 · ∞ is NaN).
  const growth = factor === 0 ? 0 : factor * 2 ** (attempt - 1);
  return random() * Math.min(base + growth, max);
}
