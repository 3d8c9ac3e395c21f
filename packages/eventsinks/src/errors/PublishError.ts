import { ERROR_BRAND } from './brand.js';

/**
 * The shape every adapter's publish error has: a write the broker or receiver did not
 * acknowledge (`RedisStreamPublishError`, `JetStreamPublishError`, `AmqpPublishError` and its
 * four subclasses, `HttpStatusError`, `HttpTransportError`, `HttpEncodeError`). Code that retries
 * or dead-letters can look at these three fields without knowing which adapter failed.
 *
 * - `reason`: what went wrong, a short stable string from the adapter's own list (`'timeout'`
 *   means the same in every adapter: no acknowledgement within the sink's `timeout`, and the
 *   message may still have been stored).
 * - `messageId`: the stable id the message carried (what the sink's `idOf` gave, or its default
 *   id), `undefined` when the sink sent none (an `HttpSink` without `idOf` or `signing`).
 * - `retryable`: true when writing the same event again may succeed.
 *
 * @example
 * ```ts
 * import { isPublishError } from 'eventsinks';
 *
 * try {
 *   await sink.write(event);
 * } catch (error) {
 *   if (isPublishError(error) && error.retryable) console.warn('will retry', error.messageId);
 *   else throw error;
 * }
 * ```
 */
export interface PublishError extends Error {
  /** The error's stable code, such as `'ERR_REDIS_PUBLISH'`. */
  readonly code: string;
  /** What went wrong; each adapter documents its list. */
  readonly reason: string;
  /** The id the message carried, if it carried one. */
  readonly messageId: string | undefined;
  /** True when writing the same event again may succeed. */
  readonly retryable: boolean;
}

/**
 * True when `error` has the {@link PublishError} shape: an eventsinks error (from this copy of
 * the package or any other) with a string `reason` and a boolean `retryable`.
 *
 * @example
 * ```ts
 * if (isPublishError(error) && !error.retryable) await deadLetters.write(event);
 * ```
 */
export function isPublishError(error: unknown): error is PublishError {
  if (typeof error !== 'object' || error === null) return false;
  const candidate = error as {
    [ERROR_BRAND]?: unknown;
    reason?: unknown;
    retryable?: unknown;
  };
  return (
    typeof candidate[ERROR_BRAND] === 'string' &&
    typeof candidate.reason === 'string' &&
    typeof candidate.retryable === 'boolean'
  );
}
