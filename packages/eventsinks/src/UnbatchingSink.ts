import { SinkClosedError } from './errors/SinkClosedError.js';
import { closeWith } from './internal/close.js';
import { Lifecycle } from './internal/Lifecycle.js';
import { expectSink } from './internal/validate.js';
import type { CloseOptions, Sink } from './Sink.js';
import { isThenable } from './internal/thenable.js';

/**
 * The inverse of a BatchingSink: takes arrays and writes every element to a `Sink<E>`, all in
 * the same tick and in array order, then resolves once `dst` has accepted every one of them. A
 * sink that groups what arrives together — a DurableQueue's group commit — stores a whole array
 * in one transaction this way, where awaiting element by element would pay one per element.
 *
 * The writes are issued without waiting for each other, so `dst` must accept concurrent writes
 * in order (Queue, DurableQueue, Channel, a pipelining broker sink); a sink that needs one write
 * at a time belongs behind a Queue. If any element fails, the write rejects with the first
 * error, after every element's write has settled.
 *
 * @example
 * ```ts
 * const perRequest = new UnbatchingSink(durableQueue);
 * await perRequest.write(eventsOfOneRequest); // one commit for the whole request
 * ```
 */
export class UnbatchingSink<E> implements Sink<readonly E[]> {
  readonly #dst: Sink<E>;
  readonly #life = new Lifecycle();

  /**
   * @param dst - receives every element.
   * @throws TypeError if `dst` is not a sink.
   */
  constructor(dst: Sink<E>) {
    expectSink('dst', dst);
    this.#dst = dst;
  }

  /**
   * Writes each element of `events` to `dst`. Synchronous when every element's write is.
   * @throws SinkClosedError after `close()`; TypeError if `events` is not an array.
   */
  write(events: readonly E[]): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('UnbatchingSink is closed');
    if (!Array.isArray(events)) {
      throw new TypeError(`Expected an array of events, got ${typeof events}`);
    }
    const dst = this.#dst;
    let pending: PromiseLike<void>[] | undefined;
    let firstError: { error: unknown } | undefined;
    for (const event of events as readonly E[]) {
      let result: void | Promise<void>;
      try {
        result = dst.write(event);
      } catch (error) {
        firstError ??= { error };
        continue;
      }
      if (result !== undefined && isThenable(result)) (pending ??= []).push(result);
    }
    if (pending === undefined) {
      if (firstError) throw firstError.error;
      return;
    }
    return Promise.allSettled(pending).then((results) => {
      if (firstError) throw firstError.error;
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    });
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
