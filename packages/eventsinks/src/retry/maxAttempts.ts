import { describe, expectInteger } from '../internal/validate.js';
import type { RetryContext, RetryStrategy } from './RetryStrategy.js';

/**
 * Wraps a strategy so that an event is dropped after `attempts` failed attempts (the wrapped
 * strategy may drop it sooner). Pair it with RetryingSink's `deadLetter` to keep what is dropped.
 *
 * Attempts are read from the {@link RetryContext} the RetryingSink passes to `failure`, so
 * every write gets its full count (two equal primitive events too) and nothing is kept per
 * event. The context is passed on to the wrapped strategy.
 *
 * @example
 * ```ts
 * const retrying = new RetryingSink(sink, maxAttempts(new Breaker(3, 1000), 5), {
 *   deadLetter: dlqSink,
 * });
 * ```
 * @throws RangeError if `attempts` is not a positive integer. The returned strategy's `failure`
 *   throws a TypeError when called without a context (a wrapper that does not pass it on).
 */
export function maxAttempts<E>(strategy: RetryStrategy<E>, attempts: number): RetryStrategy<E> {
  expectInteger('attempts', attempts);
  return {
    proceed: (event, context) => strategy.proceed(event, context),
    failure(event, error, context?: RetryContext) {
      if (typeof context?.attempt !== 'number') {
        throw new TypeError(
          `Expected \`context\` to be a RetryContext (maxAttempts needs the attempt number), got ${describe(context)}`,
        );
      }
      // The wrapped strategy is told first so a shared breaker keeps counting.
      return strategy.failure(event, error, context) || context.attempt >= attempts;
    },
    success: (event, context) => strategy.success(event, context),
  };
}
