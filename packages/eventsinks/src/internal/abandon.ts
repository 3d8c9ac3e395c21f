import type { CloseOptions } from '../Sink.js';

/**
 * The close that a DurableQueue makes once its deadline has passed: what is still
 * undelivered is kept in its file, so the sinks below must stop at once and must neither retry,
 * dead-letter nor report it as dropped. `signal` is already aborted, so a sink that does not
 * know `abandon` still stops draining (it may then report what it held to `onDrop` as
 * `'closed'`); BatchingSink and RetryingSink know it: they stop waiting, and a RetryingSink
 * rejects what it holds with `SinkClosedError` instead of dropping it. @internal
 */
export interface AbandonOptions extends CloseOptions {
  /** @internal */
  abandon?: boolean;
}

/** @internal True when a close was asked to abandon what is pending rather than drain it. */
export function isAbandon(options: CloseOptions | undefined): boolean {
  return (options as AbandonOptions | undefined)?.abandon === true;
}

/** @internal The options for an abandoning close. */
export function abandonOptions(): AbandonOptions {
  return { signal: AbortSignal.abort(), abandon: true };
}
