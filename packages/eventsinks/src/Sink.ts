/// <reference lib="esnext.disposable" preserve="true" />
/**
 * The one interface of eventsinks: anything that accepts events.
 *
 * `write` returns once the event is accepted: synchronously (returning `undefined`) or through
 * the returned promise. It signals failure by throwing or rejecting. Callers `await` it either
 * way. This is the WHATWG `UnderlyingSink` shape; the synchronous case is what lets a pipeline
 * of synchronous sinks run without allocating a promise per event.
 *
 * `close` flushes and releases. After it, every `write` fails with `SinkClosedError`. The
 * library calls it with {@link CloseOptions} when it has a deadline to hand on (a Queue closing
 * its destination with the `signal` it was given); a sink that cannot drain may ignore them, and
 * `close() {}` satisfies the interface.
 *
 * @example
 * ```ts
 * const log: Sink<string> = {
 *   write(event) { console.log(event); },
 *   close() {},
 * };
 * ```
 */
export interface Sink<E> {
  /** Accept one event; throw or reject if it cannot be accepted. */
  write(event: E): void | Promise<void>;
  /**
   * Flush what is pending and release resources; stop draining when `options.signal` aborts.
   */
  close(options?: CloseOptions): void | Promise<void>;
}

/**
 * Options of `Sink.close()`: the deadline of a drain, honoured by every sink of the library.
 *
 * @example
 * ```ts
 * await queue.close({ signal: AbortSignal.timeout(5_000) });
 * ```
 */
export interface CloseOptions {
  /** When it aborts, stop draining: what is still waiting goes to `onDrop` (reason `'closed'`). */
  signal?: AbortSignal | undefined;
}

/**
 * @internal Moved to `internal/thenable.ts` (it was never public: `src/index.ts` does not export
 * it). Re-exported here only until RetryingSink, BatchingSink and DurableQueue import it from
 * there.
 */
export { isThenable } from './internal/thenable.js';
