import type { Sink } from '../Sink.js';

/**
 * Closes `sink`, handing on a deadline: composites that drain (Queue, RetryingSink, …) take
 * it, plain sinks ignore it; without a signal the sink is called with no argument at all.
 * @internal
 */
export function closeWith(
  sink: Sink<never>,
  signal: AbortSignal | undefined,
): void | Promise<void> {
  return signal ? sink.close({ signal }) : sink.close();
}

/** @internal */
export function noop(): void {}
