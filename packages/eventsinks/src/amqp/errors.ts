import { brand, hasErrorCode } from '../errors/brand.js';

const CONNECTION = 'ERR_AMQP_CONNECTION';
const NACK = 'ERR_AMQP_NACK';
const TIMEOUT = 'ERR_AMQP_TIMEOUT';
const UNROUTABLE = 'ERR_AMQP_UNROUTABLE';
const DECODE = 'ERR_AMQP_DECODE';

/**
 * The broker could not be reached, or the connection or channel closed before the broker
 * confirmed a message. The message may or may not have been stored: retry it (its `messageId`
 * lets consumers deduplicate).
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
export class AmqpConnectionError extends Error {
  /** Stable error code: `'ERR_AMQP_CONNECTION'`. */
  readonly code = CONNECTION;

  /** @param message - what failed; @param options - `cause` is the client's error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AmqpConnectionError';
    brand(this, CONNECTION);
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
 * The broker answered a publish with a negative confirm (`basic.nack`): it did not take
 * responsibility for the message (for example a queue with `x-overflow: reject-publish` is full).
 *
 * @example
 * ```ts
 * if (isAmqpNackError(error)) console.warn('broker refused', error.messageId);
 * ```
 */
export class AmqpNackError extends Error {
  /** Stable error code: `'ERR_AMQP_NACK'`. */
  readonly code = NACK;
  /** The `messageId` of the refused message. */
  readonly messageId: string;

  /** @param messageId - the refused message; @param options - `cause` is the client's error. */
  constructor(messageId: string, options?: ErrorOptions) {
    super(`the broker nacked message ${messageId}`, options);
    this.name = 'AmqpNackError';
    this.messageId = messageId;
    brand(this, NACK);
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
 * No publisher confirm arrived within `confirmTimeout` ms. The broker may still store the
 * message: retry with the same event (same `messageId`) and deduplicate downstream.
 *
 * @example
 * ```ts
 * if (isAmqpTimeoutError(error)) console.warn(`no confirm after ${error.timeout} ms`);
 * ```
 */
export class AmqpTimeoutError extends Error {
  /** Stable error code: `'ERR_AMQP_TIMEOUT'`. */
  readonly code = TIMEOUT;
  /** The `messageId` of the unconfirmed message. */
  readonly messageId: string;
  /** The timeout that passed, in ms. */
  readonly timeout: number;

  /** @param messageId - the unconfirmed message; @param timeout - ms waited. */
  constructor(messageId: string, timeout: number) {
    super(`no publisher confirm for message ${messageId} within ${timeout} ms`);
    this.name = 'AmqpTimeoutError';
    this.messageId = messageId;
    this.timeout = timeout;
    brand(this, TIMEOUT);
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
 * A `mandatory` message matched no queue and the broker returned it (`basic.return`): the
 * broker confirms such a message although nobody will ever read it, so the sink reports it.
 *
 * @example
 * ```ts
 * if (isAmqpUnroutableError(error)) console.error('no queue bound for', error.routingKey);
 * ```
 */
export class AmqpUnroutableError extends Error {
  /** Stable error code: `'ERR_AMQP_UNROUTABLE'`. */
  readonly code = UNROUTABLE;
  /** The `messageId` of the returned message. */
  readonly messageId: string;
  /** The exchange it was published to (`''` is the default exchange). */
  readonly exchange: string;
  /** The routing key it was published with. */
  readonly routingKey: string;

  /** @param messageId - the message; @param exchange - its exchange; @param routingKey - its key. */
  constructor(messageId: string, exchange: string, routingKey: string, replyText?: string) {
    super(
      `message ${messageId} to exchange '${exchange}' with routing key '${routingKey}' matched no queue` +
        (replyText ? ` (${replyText})` : ''),
    );
    this.name = 'AmqpUnroutableError';
    this.messageId = messageId;
    this.exchange = exchange;
    this.routingKey = routingKey;
    brand(this, UNROUTABLE);
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
