import { expectInteger } from '../internal/validate.js';
import type { RetryStrategy } from './RetryStrategy.js';

/**
 * Wraps a strategy so that an event is dropped after `attempts` failed attempts (the wrapped
 * strategy may drop it sooner). Pair it with RetryingSink's `deadLetter` to keep what is dropped.
 *
 * Attempts are counted per event value, so two equal primitive events in flight at once through
 * sinks sharing this strategy share one count; use objects (or one strategy per sink) if that
 * matters.
 *
 * @example
 * ```ts
 * const retrying = new RetryingSink(sink, maxAttempts(new Breaker(3, 1000), 5), {
 *   deadLetter: dlqSink,
 * });
 * ```
 * @throws RangeError if `attempts` is not a positive integer.
 */
export function maxAttempts<E>(strategy: RetryStrategy<E>, attempts: number): RetryStrategy<E> {
  expectInteger('attempts', attempts);
  const counts = new Map<E, number>();
  return {
    proceed: (event) => strategy.proceed(event),
    failure(event, error) {
      const count = (counts.get(event) ?? 0) + 1;
      // The wrapped strategy is told first so a shared breaker keeps counting.
      if (strategy.failure(event, error) || count >= attempts) {
        counts.delete(event);
        return true;
      }
      counts.set(event, count);
      return false;
    },
    success(event) {
      counts.delete(event);
      strategy.success(event);
    },
  };
}
