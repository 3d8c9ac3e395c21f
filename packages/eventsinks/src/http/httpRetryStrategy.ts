import { expectNonNegative, expectOptionalFunction } from '../internal/validate.js';
import type { RetryStrategy } from '../retry/RetryStrategy.js';

/**
 * Options for {@link httpRetryStrategy}.
 *
 * @example
 * ```ts
 * httpRetryStrategy(new Breaker(10, 1000), { maxRetryAfter: 30_000 });
 * ```
 */
export interface HttpRetryStrategyOptions {
  /**
   * The longest `Retry-After` honoured, in ms; a longer one is cut to this. Default 60 000, so
   * a receiver cannot stall the endpoint for hours with one header.
   */
  maxRetryAfter?: number;
  /** The clock, in ms; defaults to `Date.now`. */
  now?: () => number;
}

/**
 * Wraps a retry strategy for HTTP delivery:
 * - an error whose `retryable` is `false` (a 4xx other than 408/425/429, a 3xx, an encoding
 *   error) drops the event at once, so a RetryingSink sends it to its dead letter without
 *   retrying; the wrapped strategy is not told (a refused request says nothing about the
 *   receiver's health, so it must not trip a breaker);
 * - after an error with a `retryAfter` (from `Retry-After`), `proceed` waits at least that long
 *   (at most `maxRetryAfter`), or what the wrapped strategy asks if that is longer.
 *
 * Any other error goes to the wrapped strategy, with the strategy's `context` argument passed on. One instance per RetryingSink: `Retry-After` is
 * a statement about one receiver.
 *
 * @example
 * ```ts
 * const retrying = new RetryingSink(new HttpSink(url), httpRetryStrategy(new Breaker(10, 1000)), {
 *   deadLetter,
 * });
 * ```
 * @throws RangeError or TypeError naming a bad option.
 */
export function httpRetryStrategy<E>(
  strategy: RetryStrategy<E>,
  options: HttpRetryStrategyOptions = {},
): RetryStrategy<E> {
  const { maxRetryAfter = 60_000, now = () => Date.now() } = options;
  expectNonNegative('maxRetryAfter', maxRetryAfter);
  expectOptionalFunction('now', now);
  // When the receiver's Retry-After runs out, in the clock's ms; 0 when there is none.
  let until = 0;
  return {
    proceed(event, context) {
      const wait = strategy.proceed(event, context);
      if (until === 0) return wait;
      return Math.max(wait, until - now());
    },
    failure(event, error, context) {
      if (
        typeof error === 'object' &&
        error !== null &&
        (error as { retryable?: unknown }).retryable === false
      ) {
        return true;
      }
      const retryAfter = (error as { retryAfter?: unknown } | null | undefined)?.retryAfter;
      until =
        typeof retryAfter === 'number' && retryAfter > 0
          ? now() + Math.min(retryAfter, maxRetryAfter)
          : 0;
      return strategy.failure(event, error, context);
    },
    success(event, context) {
      until = 0;
      strategy.success(event, context);
    },
  };
}
