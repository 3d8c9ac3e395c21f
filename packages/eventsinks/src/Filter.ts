import { SinkClosedError } from './errors/SinkClosedError.js';
import { describe, expectSink } from './internal/validate.js';
import { closeWith } from './internal/close.js';
import { Lifecycle } from './internal/Lifecycle.js';
import type { CloseOptions, Sink } from './Sink.js';

/**
 * Decides whether an event passes a {@link Filter}: a predicate, or an object with `match`.
 *
 * @example
 * ```ts
 * const even: Matcher<number> = (n) => n % 2 === 0;
 * const pushes: Matcher<{ action: string }> = { match: (e) => e.action === 'push' };
 * ```
 */
export type Matcher<E> =
  | ((event: E) => boolean)
  | {
      /** True if `event` should pass. */
      match(event: E): boolean;
    };

/**
 * Passes the events that match to `dst` and ignores the rest. A type-guard matcher narrows:
 * a Filter over `(e: E) => e is F` accepts a `Sink<F>` as `dst`.
 *
 * @example
 * ```ts
 * const pushes = new Filter(sink, (e: RegistryEvent): e is PushEvent => e.action === 'push');
 * await pushes.write(event);
 * ```
 */
export class Filter<E, F extends E = E> implements Sink<E> {
  readonly #dst: Sink<F>;
  readonly #match: (event: E) => boolean;
  readonly #life = new Lifecycle();

  /**
   * @param dst - where matching events go.
   * @param matcher - a predicate (a type guard narrows `dst`'s type) or `{ match }`.
   * @throws TypeError if `dst` is not a sink or `matcher` is neither form.
   */
  constructor(dst: Sink<F>, matcher: (event: E) => event is F);
  constructor(dst: Sink<F>, matcher: Matcher<E>);
  constructor(dst: Sink<F>, matcher: Matcher<E>) {
    expectSink('dst', dst);
    if (typeof matcher === 'function') {
      this.#match = matcher;
    } else if (
      typeof matcher === 'object' &&
      matcher !== null &&
      typeof matcher.match === 'function'
    ) {
      // Bound once here, so write() makes one call per event whichever form was given.
      this.#match = matcher.match.bind(matcher);
    } else {
      throw new TypeError(
        `Expected \`matcher\` to be a function or an object with match(), got ${describe(matcher)}`,
      );
    }
    this.#dst = dst;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Writes `event` to `dst` if it matches; returns what `dst.write` returns, or nothing.
   * @throws SinkClosedError after `close()`; whatever the matcher or `dst` throws.
   */
  write(event: E): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('Filter is closed');
    if (this.#match(event)) return this.#dst.write(event as F);
  }

  /** Closes `dst`, passing a deadline (`signal`) on to it. Idempotent. */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#life.close(options, (signal) => closeWith(this.#dst, signal));
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
