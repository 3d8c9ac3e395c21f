import { brand, hasErrorCode } from './brand.js';

const CODE = 'ERR_QUEUE_FULL';

/**
 * Thrown by `Queue.write` when the queue holds `capacity` events and its overflow policy is
 * `'reject'`. The event was not accepted; the caller still owns it.
 *
 * @example
 * ```ts
 * const queue = new Queue(sink, { capacity: 1000, overflow: 'reject' });
 * try {
 *   queue.write(event);
 * } catch (error) {
 *   if (isQueueFullError(error)) respondBusy();
 * }
 * ```
 */
export class QueueFullError extends Error {
  /** Stable error code: `'ERR_QUEUE_FULL'`. */
  readonly code = CODE;
  /** The capacity that was reached. */
  readonly capacity: number;

  /** @param capacity - the queue's capacity; @param options - `cause` is passed through. */
  constructor(capacity: number, options?: ErrorOptions) {
    super(`queue is full (capacity ${capacity})`, options);
    this.name = 'QueueFullError';
    this.capacity = capacity;
    brand(this, CODE);
  }
}

/**
 * True when `error` is a {@link QueueFullError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isQueueFullError(error)) console.warn('shedding load');
 * ```
 */
export function isQueueFullError(error: unknown): error is QueueFullError {
  return hasErrorCode(error, CODE);
}
