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

/**
 * The close of a sink that wraps one other sink: the first call closes the wrapped sink (handing
 * on the deadline) and later calls resolve when that is done, never rejecting; `closed` turns
 * true at the first call, so writes after it can fail with SinkClosedError.
 * @internal
 */
export class WrappedClose {
  #closing: Promise<void> | undefined;

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  close(inner: Sink<never>, signal: AbortSignal | undefined): Promise<void> {
    if (this.#closing) return this.#closing.then(noop, noop);
    this.#closing = Promise.resolve().then(() => closeWith(inner, signal));
    return this.#closing;
  }
}
