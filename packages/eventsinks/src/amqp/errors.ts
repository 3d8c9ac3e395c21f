import { brand, causeOnly, hasErrorCode } from '../errors/brand.js';
import type { PublishError } from '../errors/PublishError.js';

const CONNECTION = 'ERR_AMQP_CONNECTION';
const NACK = 'ERR_AMQP_NACK';
const TIMEOUT = 'ERR_AMQP_TIMEOUT';
const UNROUTABLE = 'ERR_AMQP_UNROUTABLE';
const DECODE = 'ERR_AMQP_DECODE';
const PUBLISH_CODES: readonly string[] = [CONNECTION, NACK, TIMEOUT, UNROUTABLE];

/**
 * Why an {@link AmqpPublishError} was raised; each reason has its own subclass (and guard).
 * - `'connection'` ({@link AmqpConnectionError}): the broker could not be reached, or the
 *   channel closed before it confirmed the message. It may have been stored.
 * - `'nack'` ({@link AmqpNackError}): the broker refused the message (`basic.nack`).
 * - `'timeout'` ({@link AmqpTimeoutError}): no confirm within `timeout`. It may have
 *   been stored.
 * - `'unroutable'` ({@link AmqpUnroutableError}): a `mandatory` message matched no queue.
 *
 * All but `'unroutable'` are `retryable`.
 *
 * @example
 * ```ts
 * const mayBeStored = (reason: AmqpPublishFailure) =>
 *   reason === 'connection' || reason === 'timeout';
 * ```
 */
export type AmqpPublishFailure = 'connection' | 'nack' | 'timeout' | 'unroutable';

/**
 * An {@link AmqpSink} write (or an {@link AmqpSource}'s connection) the broker did not
 * acknowledge: one class with a `reason`, like `RedisStreamPublishError` and
 * `JetStreamPublishError`. What is thrown is always one of its four subclasses
 * ({@link AmqpConnectionError}, {@link AmqpNackError}, {@link AmqpTimeoutError},
 * {@link AmqpUnroutableError}), whose `code` and guards stay as they were.
 *
 * @example
 * ```ts
 * try {
 *   await sink.write(event);
 * } catch (error) {
 *   if (isAmqpPublishError(error) && error.retryable) console.warn(error.reason, error.messageId);
 * }
 * ```
 */
export class AmqpPublishError extends Error implements PublishError {
  /** Stable error code: that of the subclass (`'ERR_AMQP_NACK'`, …). */
  readonly code: string;
  /** What went wrong; see {@link AmqpPublishFailure}. */
  readonly reason: AmqpPublishFailure;
  /** The `messageId` of the message, when the failure concerns one. */
  readonly messageId: string | undefined;
  /** True for every reason but `'unroutable'`: writing the event again may succeed. */
  readonly retryable: boolean;

  /**
   * @param reason - what went wrong; @param code - the subclass's code; @param message - the
   * text; @param messageId - which message, if one; @param options - `cause`.
   */
  protected constructor(
    reason: AmqpPublishFailure,
    code: string,
    message: string,
    messageId: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.reason = reason;
    this.messageId = messageId;
    this.retryable = reason !== 'unroutable';
    brand(this, code);
  }
}

/**
 * True when `error` is an {@link AmqpPublishError} (any of its four subclasses), from this copy
 * of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isAmqpPublishError(error)) metrics.unconfirmed.inc({ reason: error.reason });
 * ```
 */
export function isAmqpPublishError(error: unknown): error is AmqpPublishError {
  return PUBLISH_CODES.some((code) => hasErrorCode(error, code));
}

/**
 * The broker could not be reached, or the connection or channel closed before the broker
 * confirmed a message (reason `'connection'`). The message may or may not have been stored:
 * retry it (its `messageId` lets consumers deduplicate).
 *
 * @example
 * ```ts
 * try {
 *   await sink.write(event);
 * } catch (error) {
 *   if (isAmqpConnectionError(error)) console.warn('broker unreachable, will retry', error.cause);
 * }
 * ```
 */
export class AmqpConnectionError extends AmqpPublishError {
  /** Stable error code: `'ERR_AMQP_CONNECTION'`. */
  declare readonly code: typeof CONNECTION;

  /**
   * @param message - what failed; @param options - `cause` is the client's error,
   * `messageId` the message concerned, if one.
   */
  constructor(message: string, options?: ErrorOptions & { messageId?: string | undefined }) {
    super('connection', CONNECTION, message, options?.messageId, causeOnly(options));
    this.name = 'AmqpConnectionError';
  }
}

/**
 * True when `error` is an {@link AmqpConnectionError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isAmqpConnectionError(error)) scheduleRetry();
 * ```
 */
export function isAmqpConnectionError(error: unknown): error is AmqpConnectionError {
  return hasErrorCode(error, CONNECTION);
}

/**
 * The broker answered a publish with a negative confirm (`basic.nack`, reason `'nack'`): it did
 * not take responsibility for the message (for example a queue with `x-overflow: reject-publish`
 * is full).
 *
 * @example
 * ```ts
 * if (isAmqpNackError(error)) console.warn('broker refused', error.messageId);
 * ```
 */
export class AmqpNackError extends AmqpPublishError {
  /** Stable error code: `'ERR_AMQP_NACK'`. */
  declare readonly code: typeof NACK;
  /** The `messageId` of the refused message. */
  declare readonly messageId: string;

  /** @param messageId - the refused message; @param options - `cause` is the client's error. */
  constructor(messageId: string, options?: ErrorOptions) {
    super('nack', NACK, `the broker nacked message ${messageId}`, messageId, options);
    this.name = 'AmqpNackError';
  }
}

/**
 * True when `error` is an {@link AmqpNackError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isAmqpNackError(error)) metrics.nacks++;
 * ```
 */
export function isAmqpNackError(error: unknown): error is AmqpNackError {
  return hasErrorCode(error, NACK);
}

/**
 * No publisher confirm arrived within the sink's `timeout` ms (reason `'timeout'`). The broker may
 * still store the message: retry with the same event (same `messageId`) and deduplicate
 * downstream.
 *
 * @example
 * ```ts
 * if (isAmqpTimeoutError(error)) console.warn(`no confirm after ${error.timeout} ms`);
 * ```
 */
export class AmqpTimeoutError extends AmqpPublishError {
  /** Stable error code: `'ERR_AMQP_TIMEOUT'`. */
  declare readonly code: typeof TIMEOUT;
  /** The `messageId` of the unconfirmed message. */
  declare readonly messageId: string;
  /** The timeout that passed, in ms. */
  readonly timeout: number;

  /** @param messageId - the unconfirmed message; @param timeout - ms waited. */
  constructor(messageId: string, timeout: number) {
    super(
      'timeout',
      TIMEOUT,
      `no publisher confirm for message ${messageId} within ${timeout} ms`,
      messageId,
    );
    this.name = 'AmqpTimeoutError';
    this.timeout = timeout;
  }
}

/**
 * True when `error` is an {@link AmqpTimeoutError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isAmqpTimeoutError(error)) scheduleRetry();
 * ```
 */
export function isAmqpTimeoutError(error: unknown): error is AmqpTimeoutError {
  return hasErrorCode(error, TIMEOUT);
}

/**
 * A `mandatory` message matched no queue and the broker returned it (`basic.return`, reason
 * `'unroutable'`, not `retryable`): the broker confirms such a message although nobody will
 * ever read it, so the sink reports it.
 *
 * @example
 * ```ts
 * if (isAmqpUnroutableError(error)) console.error('no queue bound for', error.routingKey);
 * ```
 */
export class AmqpUnroutableError extends AmqpPublishError {
  /** Stable error code: `'ERR_AMQP_UNROUTABLE'`. */
  declare readonly code: typeof UNROUTABLE;
  /** The `messageId` of the returned message. */
  declare readonly messageId: string;
  /** The exchange it was published to (`''` is the default exchange). */
  readonly exchange: string;
  /** The routing key it was published with. */
  readonly routingKey: string;

  /** @param messageId - the message; @param exchange - its exchange; @param routingKey - its key. */
  constructor(messageId: string, exchange: string, routingKey: string, replyText?: string) {
    super(
      'unroutable',
      UNROUTABLE,
      `message ${messageId} to exchange '${exchange}' with routing key '${routingKey}' matched no queue` +
        (replyText ? ` (${replyText})` : ''),
      messageId,
    );
    this.name = 'AmqpUnroutableError';
    this.exchange = exchange;
    this.routingKey = routingKey;
  }
}

/**
 * True when `error` is an {@link AmqpUnroutableError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isAmqpUnroutableError(error)) await declareQueues();
 * ```
 */
export function isAmqpUnroutableError(error: unknown): error is AmqpUnroutableError {
  return hasErrorCode(error, UNROUTABLE);
}

/**
 * A consumed message could not be turned into an event (not JSON, or `validate` refused its
 * shape). An {@link AmqpSource} dead-letters such a message at once, with this error's message
 * as the reason, and goes on.
 *
 * @example
 * ```ts
 * const source = new AmqpSource(sink, {
 *   queue: 'orders',
 *   onError: (error) => {
 *     if (isAmqpDecodeError(error)) console.warn('dead-lettered', error.messageId, error.message);
 *   },
 * });
 * ```
 */
export class AmqpDecodeError extends Error {
  /** Stable error code: `'ERR_AMQP_DECODE'`. */
  readonly code = DECODE;
  /** The `messageId` of the undecodable message, if it had one. */
  readonly messageId: string | undefined;

  /** @param message - why decoding failed; @param messageId - the message; @param options - `cause`. */
  constructor(message: string, messageId: string | undefined, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AmqpDecodeError';
    this.messageId = messageId;
    brand(this, DECODE);
  }
}

/**
 * True when `error` is an {@link AmqpDecodeError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isAmqpDecodeError(error)) metrics.poison++;
 * ```
 */
export function isAmqpDecodeError(error: unknown): error is AmqpDecodeError {
  return hasErrorCode(error, DECODE);
}
