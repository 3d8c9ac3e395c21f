import { SinkClosedError } from './errors/SinkClosedError.js';
import { closeWith } from './internal/close.js';
import { Lifecycle } from './internal/Lifecycle.js';
import { expectFunction, expectSink } from './internal/validate.js';
import type { CloseOptions, Sink } from './Sink.js';

/**
 * Transforms each event before passing it on, e.g. to wrap it in an envelope the way Docker's
 * registry wraps each event in `{ events: [...] }`. Synchronous when `dst` is.
 *
 * @example
 * ```ts
 * const enveloped = new MapSink(httpSink, (event: RegistryEvent) => ({ events: [event] }));
 * await enveloped.write(event);
 * ```
 */
export class MapSink<E, F> implements Sink<E> {
  readonly #dst: Sink<F>;
  readonly #fn: (event: E) => F;
  readonly #life = new Lifecycle();

  /**
   * @param dst - receives `fn(event)`.
   * @param fn - the transformation; if it throws, the write throws and nothing is passed on.
   * @throws TypeError naming a bad argument.
   */
  constructor(dst: Sink<F>, fn: (event: E) => F) {
    expectSink('dst', dst);
    expectFunction('fn', fn);
    this.#dst = dst;
    this.#fn = fn;
  }

  /**
   * Writes `fn(event)` to `dst`.
   * @throws SinkClosedError after `close()`; whatever `fn` or `dst` throws.
   */
  write(event: E): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('MapSink is closed');
    return this.#dst.write(this.#fn(event));
  }

  /** Closes `dst` (passing `signal` on). Idempotent. */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#life.close(options, (signal) => closeWith(this.#dst, signal));
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
