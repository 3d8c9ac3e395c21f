import { brand, hasErrorCode } from '../errors/brand.js';
import type { PublishError } from '../errors/PublishError.js';

const PUBLISH = 'ERR_NATS_PUBLISH';
const DECODE = 'ERR_NATS_DECODE';

/**
 * Why a {@link JetStreamPublishError} was raised.
 * - `'timeout'`: no PubAck within `timeout` ms. The server may still have stored the message.
 * - `'disconnected'`: the connection dropped (or was down) before the PubAck arrived. The
 *   server may still have stored the message.
 * - `'no-stream'`: no stream captures the subject (the server answered "no responders"); also
 *   seen for a moment after a server restart, until JetStream has recovered its streams.
 * - `'closed'`: the NATS connection is closed for good.
 * - `'rejected'`: the server refused the message (limits, a failed expectation, …); see `cause`.
 *
 * `'timeout'`, `'disconnected'` and `'no-stream'` are `retryable`; `'closed'` and `'rejected'`
 * are not.
 *
 * @example
 * ```ts
 * const mayBeStored = (reason: JetStreamPublishFailure) =>
 *   reason === 'timeout' || reason === 'disconnected';
 * ```
 */
export type JetStreamPublishFailure =
  'timeout' | 'disconnected' | 'no-stream' | 'closed' | 'rejected';

/**
 * A {@link JetStreamSink} write that JetStream did not acknowledge. Writing the same event again
 * is safe: it carries the same `Nats-Msg-Id`, so if the first attempt was stored after all the
 * stream reports the retry as a duplicate and the sink counts that as success.
 *
 * @example
 * ```ts
 * try {
 *   await sink.write(event);
 * } catch (error) {
 *   if (isJetStreamPublishError(error) && error.reason === 'no-stream') {
 *     console.error(`no stream captures ${error.subject}`);
 *   }
 * }
 * ```
 */
export class JetStreamPublishError extends Error implements PublishError {
  /** Stable error code: `'ERR_NATS_PUBLISH'`. */
  readonly code = PUBLISH;
  /** What went wrong; see {@link JetStreamPublishFailure}. */
  readonly reason: JetStreamPublishFailure;
  /** The subject the message was published to. */
  readonly subject: string;
  /** The message's id, sent as its `Nats-Msg-Id`. */
  readonly messageId: string;
  /** True for `'timeout'`, `'disconnected'` and `'no-stream'`: writing again may succeed. */
  readonly retryable: boolean;

  /**
   * @param reason - what went wrong; @param subject - where; @param messageId - which message;
   * @param options - `cause` is the client's error.
   */
  constructor(
    reason: JetStreamPublishFailure,
    subject: string,
    messageId: string,
    options?: ErrorOptions,
  ) {
    super(`JetStream did not acknowledge message ${messageId} on ${subject}: ${reason}`, options);
    this.name = 'JetStreamPublishError';
    this.reason = reason;
    this.subject = subject;
    this.messageId = messageId;
    this.retryable = reason === 'timeout' || reason === 'disconnected' || reason === 'no-stream';
    brand(this, PUBLISH);
  }

  /** @deprecated Use {@link JetStreamPublishError.messageId}, the name every adapter uses. */
  get msgId(): string {
    return this.messageId;
  }
}

/**
 * True when `error` is a {@link JetStreamPublishError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isJetStreamPublishError(error)) metrics.unacknowledged++;
 * ```
 */
export function isJetStreamPublishError(error: unknown): error is JetStreamPublishError {
  return hasErrorCode(error, PUBLISH);
}

/**
 * A message a {@link JetStreamSource} could not turn into an event: not JSON (or whatever
 * `decode` rejects), or a value `validate` refused. The source dead-letters it at once, with
 * this error's message as the reason; it never reaches the destination sink.
 *
 * @example
 * ```ts
 * const source = new JetStreamSource(sink, {
 *   connection, stream: 'ORDERS', durable: 'billing', deadLetterSubject: 'dlq.orders',
 *   onDeadLetter: ({ error }) => {
 *     if (isJetStreamDecodeError(error)) console.warn('malformed message', error.streamSequence);
 *   },
 * });
 * ```
 */
export class JetStreamDecodeError extends Error {
  /** Stable error code: `'ERR_NATS_DECODE'`. */
  readonly code = DECODE;
  /** The stream sequence of the message that could not be decoded. */
  readonly streamSequence: number;

  /**
   * @param message - what is wrong with the payload; @param streamSequence - which message;
   * @param options - `cause` is the decoder's or validator's error, if it threw.
   */
  constructor(message: string, streamSequence: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'JetStreamDecodeError';
    this.streamSequence = streamSequence;
    brand(this, DECODE);
  }
}

/**
 * True when `error` is a {@link JetStreamDecodeError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isJetStreamDecodeError(error)) metrics.malformed++;
 * ```
 */
export function isJetStreamDecodeError(error: unknown): error is JetStreamDecodeError {
  return hasErrorCode(error, DECODE);
}
