import { brand, hasErrorCode } from '../errors/brand.js';
import type { PublishError } from '../errors/PublishError.js';

const PUBLISH = 'ERR_REDIS_PUBLISH';
const DECODE = 'ERR_REDIS_DECODE';

/**
 * Why a {@link RedisStreamPublishError} was raised.
 * - `'timeout'`: no XADD reply within `timeout` ms. Redis may still have stored the entry.
 * - `'disconnected'`: the client was not connected, or the connection dropped before the reply.
 *   Redis may still have stored the entry.
 * - `'closed'`: the client was closed for good (`close()`/`destroy()`).
 * - `'rejected'`: Redis answered with an error (wrong key type, out of memory, …); see `cause`.
 *
 * `'timeout'` and `'disconnected'` are `retryable`; `'closed'` and `'rejected'` are not.
 *
 * @example
 * ```ts
 * const mayBeStored = (reason: RedisStreamPublishFailure) =>
 *   reason === 'timeout' || reason === 'disconnected';
 * ```
 */
export type RedisStreamPublishFailure = 'timeout' | 'disconnected' | 'closed' | 'rejected';

/**
 * A {@link RedisStreamSink} write that Redis did not acknowledge. Writing the same event again is
 * safe for consumers that deduplicate: every entry carries the event's stable id in its `id`
 * field, the same on every attempt when the sink was given `idOf`.
 *
 * @example
 * ```ts
 * try {
 *   await sink.write(event);
 * } catch (error) {
 *   if (isRedisStreamPublishError(error) && error.reason === 'timeout') metrics.slowRedis++;
 * }
 * ```
 */
export class RedisStreamPublishError extends Error implements PublishError {
  /** Stable error code: `'ERR_REDIS_PUBLISH'`. */
  readonly code = PUBLISH;
  /** What went wrong; see {@link RedisStreamPublishFailure}. */
  readonly reason: RedisStreamPublishFailure;
  /** The stream key written to. */
  readonly stream: string;
  /** The entry's stable id (its `id` field). */
  readonly messageId: string;
  /** True for `'timeout'` and `'disconnected'`: writing the event again may succeed. */
  readonly retryable: boolean;

  /**
   * @param reason - what went wrong; @param stream - where; @param messageId - which message;
   * @param options - `cause` is the client's error.
   */
  constructor(
    reason: RedisStreamPublishFailure,
    stream: string,
    messageId: string,
    options?: ErrorOptions,
  ) {
    super(`Redis did not acknowledge message ${messageId} on ${stream}: ${reason}`, options);
    this.name = 'RedisStreamPublishError';
    this.reason = reason;
    this.stream = stream;
    this.messageId = messageId;
    this.retryable = reason === 'timeout' || reason === 'disconnected';
    brand(this, PUBLISH);
  }
}

/**
 * True when `error` is a {@link RedisStreamPublishError}, from this copy of eventsinks or any
 * other.
 *
 * @example
 * ```ts
 * if (isRedisStreamPublishError(error)) metrics.unacknowledged++;
 * ```
 */
export function isRedisStreamPublishError(error: unknown): error is RedisStreamPublishError {
  return hasErrorCode(error, PUBLISH);
}

/**
 * A stream entry a {@link RedisStreamSource} could not turn into an event: no `data` field, not
 * JSON (or whatever `decode` rejects), or a value `validate` refused. The source dead-letters it
 * at once, with this error's message as the reason; it never reaches the destination sink.
 *
 * @example
 * ```ts
 * const source = new RedisStreamSource(sink, {
 *   client,
 *   stream: 'orders',
 *   group: 'billing',
 *   onDeadLetter: ({ error }) => {
 *     if (isRedisStreamDecodeError(error)) console.warn('malformed entry', error.entryId);
 *   },
 * });
 * ```
 */
export class RedisStreamDecodeError extends Error {
  /** Stable error code: `'ERR_REDIS_DECODE'`. */
  readonly code = DECODE;
  /** The Redis entry id (`1700000000000-0`) of the entry that could not be decoded. */
  readonly entryId: string;

  /**
   * @param message - what is wrong with the entry; @param entryId - which entry;
   * @param options - `cause` is the decoder's or validator's error, if it threw.
   */
  constructor(message: string, entryId: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RedisStreamDecodeError';
    this.entryId = entryId;
    brand(this, DECODE);
  }
}

/**
 * True when `error` is a {@link RedisStreamDecodeError}, from this copy of eventsinks or any
 * other.
 *
 * @example
 * ```ts
 * if (isRedisStreamDecodeError(error)) metrics.malformed++;
 * ```
 */
export function isRedisStreamDecodeError(error: unknown): error is RedisStreamDecodeError {
  return hasErrorCode(error, DECODE);
}
