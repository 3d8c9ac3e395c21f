import { brand, hasErrorCode } from './brand.js';

const CODE = 'ERR_SINK_TIMEOUT';

/**
 * A write was not accepted within a {@link TimeoutSink}'s limit. It is retryable: a
 * RetryingSink above tries the event again. The timed-out write may still complete below, so
 * the event can arrive twice (at-least-once).
 *
 * @example
 * ```ts
 * if (isSinkTimeoutError(error)) console.warn(`no answer within ${error.timeout} ms`);
 * ```
 */
export class SinkTimeoutError extends Error {
  /** Stable error code: `'ERR_SINK_TIMEOUT'`. */
  readonly code = CODE;
  /** The limit that passed, in ms. */
  readonly timeout: number;

  /** @param timeout - the limit in ms; @param options - `cause` is passed through. */
  constructor(timeout: number, options?: ErrorOptions) {
    super(`write not accepted within ${timeout} ms`, options);
    this.name = 'SinkTimeoutError';
    this.timeout = timeout;
    brand(this, CODE);
  }
}

/**
 * True when `error` is a {@link SinkTimeoutError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isSinkTimeoutError(error)) retryLater();
 * ```
 */
export function isSinkTimeoutError(error: unknown): error is SinkTimeoutError {
  return hasErrorCode(error, CODE);
}
