import type { CloseOptions, Sink } from '../Sink.js';

type DrainableSink = { close(options?: CloseOptions): void | Promise<void> };

/**
 * Closes `sink`, handing on a deadline: composites that drain (Queue, RetryingSink, …) take
 * it, plain sinks ignore the argument because they are called without one.
 * @internal
 */
export function closeWith(
  sink: Sink<never>,
  signal: AbortSignal | undefined,
): void | Promise<void> {
  return signal ? (sink as DrainableSink).close({ signal }) : sink.close();
}

/** @internal */
export function noop(): void {}
