import { brand, hasErrorCode } from './brand.js';

const CODE = 'ERR_SINK_CLOSED';

/**
 * Thrown (or rejected) by every write to a sink that has been closed. It is terminal: a sink
 * that reports it will never accept an event again, so a Broadcaster removes such a sink and a
 * RetryingSink does not retry it.
 *
 * @example
 * ```ts
 * try {
 *   await sink.write(event);
 * } catch (error) {
 *   if (isSinkClosedError(error)) console.log('sink is gone');
 * }
 * ```
 */
export class SinkClosedError extends Error {
  /** Stable error code: `'ERR_SINK_CLOSED'`. */
  readonly code = CODE;

  /** @param message - what was closed; @param options - `cause` is passed through. */
  constructor(message = 'sink is closed', options?: ErrorOptions) {
    super(message, options);
    this.name = 'SinkClosedError';
    brand(this, CODE);
  }
}

/**
 * True when `error` is a {@link SinkClosedError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isSinkClosedError(error)) return; // the sink went away; not a delivery failure
 * ```
 */
export function isSinkClosedError(error: unknown): error is SinkClosedError {
  return hasErrorCode(error, CODE);
}
