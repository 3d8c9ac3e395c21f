import { SinkClosedError, isSinkClosedError } from './errors/SinkClosedError.js';
import { callHook, reportDefault } from './internal/report.js';
import { describe, expectOptionalFunction, expectSink } from './internal/validate.js';
import type { CloseOptions, Sink } from './Sink.js';
import { isThenable } from './internal/thenable.js';
import { closeWith } from './internal/close.js';
import { Lifecycle } from './internal/Lifecycle.js';

/**
 * Options for {@link Broadcaster}.
 *
 * @example
 * ```ts
 * const options: BroadcasterOptions<string> = {
 *   onError: (error, event) => console.warn('delivery failed', event, error),
 * };
 * ```
 */
export interface BroadcasterOptions<E> {
  /**
   * Told of every failure of a sink other than `SinkClosedError` (which removes the sink instead).
   * `event` is `undefined` when the failure came from closing the sink. Defaults to printing the
   * error with `console.error`.
   */
  onError?(error: unknown, event: E | undefined, sink: Sink<E>): void;
}

const NAME = 'Broadcaster';

function defaultOnError(error: unknown): void {
  reportDefault(NAME, 'a sink failed', error);
}

/**
 * Fans every event out to a set of sinks, one sink after the other, in order.
 *
 * A sink's failure never fails the write and never stops the other sinks: a sink that reports
 * `SinkClosedError` is removed, any other error goes to `onError`. `write`, `add`, `remove` and
 * `close` take effect strictly in call order, so every sink sees events in the order they were
 * written even when sinks are asynchronous. When every sink returns synchronously, so does
 * `write`, without allocating a promise.
 *
 * @example
 * ```ts
 * const broadcaster = new Broadcaster<string>();
 * broadcaster.add(new Queue(httpSink));
 * broadcaster.add(new Queue(auditSink));
 * await broadcaster.write('user.created');
 * await broadcaster.close();
 * ```
 */
export class Broadcaster<E> implements Sink<E> {
  // Replaced, never mutated, on add/remove: a delivery in progress iterates its own snapshot, so
  // the hot path needs no copy per event.
  #sinks: readonly Sink<E>[] = [];
  #members = new Set<Sink<E>>();
  // The last operation still in progress; undefined when everything so far finished
  // synchronously, which is what lets the next write take the synchronous path.
  #tail: Promise<void> | undefined;
  readonly #life = new Lifecycle();
  readonly #onError: (error: unknown, event: E | undefined, sink: Sink<E>) => void;

  /**
   * @param sinks - initial sinks (duplicates are added once).
   * @param options - see {@link BroadcasterOptions}.
   * @throws TypeError if a sink or a hook is not of the right shape.
   */
  constructor(sinks: Iterable<Sink<E>> = [], options: BroadcasterOptions<E> = {}) {
    if (
      sinks === null ||
      typeof (sinks as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== 'function'
    ) {
      throw new TypeError(`Expected \`sinks\` to be an iterable of sinks, got ${describe(sinks)}`);
    }
    expectOptionalFunction('onError', options.onError);
    const onError = options.onError;
    this.#onError = onError ? (e, ev, s) => callHook(NAME, onError, e, ev, s) : defaultOnError;
    // Built in place, not through #add: copying the snapshot once per sink would make this
    // quadratic (half a second for 10 000 sinks).
    const initial: Sink<E>[] = [];
    for (const sink of sinks) {
      expectSink('sink', sink);
      if (this.#members.has(sink)) continue;
      this.#members.add(sink);
      initial.push(sink);
    }
    this.#sinks = initial;
  }

  /** The number of sinks. */
  get size(): number {
    return this.#sinks.length;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Delivers `event` to every sink, one after the other. Resolves (or returns) when every sink
   * has accepted or failed; never rejects because of a sink.
   * @throws SinkClosedError after `close()`.
   */
  write(event: E): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('Broadcaster is closed');
    if (this.#tail !== undefined) return this.#after(() => this.#deliver(event, this.#sinks, 0));
    const result = this.#deliver(event, this.#sinks, 0);
    if (result !== undefined) this.#setTail(result);
    return result;
  }

  /**
   * Adds a sink; a sink already present is not added twice. Takes effect after every earlier
   * write, so an event written before `add` never reaches the new sink.
   * @throws SinkClosedError after `close()`; TypeError if `sink` is not a sink.
   */
  add(sink: Sink<E>): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('Broadcaster is closed');
    expectSink('sink', sink);
    if (this.#tail !== undefined) return this.#after(() => this.#add(sink));
    this.#add(sink);
  }

  /**
   * Removes a sink (without closing it). Takes effect after every earlier write.
   * @throws SinkClosedError after `close()`.
   */
  remove(sink: Sink<E>): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('Broadcaster is closed');
    if (this.#tail !== undefined) return this.#after(() => this.#remove(sink));
    this.#remove(sink);
  }

  /**
   * Waits for every write in progress, then closes every sink (their errors go to `onError`).
   * Idempotent. With `signal`, stops waiting when it aborts and closes the sinks at once, each
   * of which then gets the same signal if it accepts close options.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#life.close(
      options,
      () => this.#tail && this.#life.until(this.#tail),
      (signal) => this.#close(signal),
    );
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(signal: AbortSignal | undefined): Promise<void> {
    const sinks = this.#sinks;
    this.#sinks = [];
    this.#members.clear();
    const closes: Promise<void>[] = [];
    for (const sink of sinks) {
      try {
        const result = closeWith(sink, signal);
        if (isThenable(result)) {
          closes.push(
            Promise.resolve(result).then(undefined, (error: unknown) =>
              this.#onError(error, undefined, sink),
            ),
          );
        }
      } catch (error) {
        this.#onError(error, undefined, sink);
      }
    }
    await Promise.all(closes);
  }

  #after(operation: () => void | Promise<void>): Promise<void> {
    const next = this.#tail!.then(operation);
    this.#setTail(next);
    return next;
  }

  #setTail(promise: Promise<void>): void {
    this.#tail = promise;
    const clear = (): void => {
      if (this.#tail === promise) this.#tail = undefined;
    };
    promise.then(clear, clear);
  }

  #add(sink: Sink<E>): void {
    expectSink('sink', sink);
    if (this.#members.has(sink)) return;
    this.#members.add(sink);
    this.#sinks = [...this.#sinks, sink];
  }

  #remove(sink: Sink<E>): void {
    if (!this.#members.delete(sink)) return;
    this.#sinks = this.#sinks.filter((s) => s !== sink);
  }

  #deliver(event: E, sinks: readonly Sink<E>[], start: number): void | Promise<void> {
    for (let i = start; i < sinks.length; i++) {
      const sink = sinks[i] as Sink<E>;
      let result: void | Promise<void>;
      try {
        result = sink.write(event);
      } catch (error) {
        this.#failed(error, event, sink);
        continue;
      }
      if (result !== undefined && isThenable(result)) {
        return this.#deliverAsync(result, event, sinks, i);
      }
    }
  }

  async #deliverAsync(
    pending: PromiseLike<void>,
    event: E,
    sinks: readonly Sink<E>[],
    index: number,
  ): Promise<void> {
    // A loop, not recursion through #deliver: one async frame per event, whatever the fan-out.
    for (;;) {
      try {
        await pending;
      } catch (error) {
        this.#failed(error, event, sinks[index] as Sink<E>);
      }
      let next: PromiseLike<void> | undefined;
      for (index++; index < sinks.length; index++) {
        const sink = sinks[index] as Sink<E>;
        let result: void | Promise<void>;
        try {
          result = sink.write(event);
        } catch (error) {
          this.#failed(error, event, sink);
          continue;
        }
        if (result !== undefined && isThenable(result)) {
          next = result;
          break;
        }
      }
      if (next === undefined) return;
      pending = next;
    }
  }

  #failed(error: unknown, event: E, sink: Sink<E>): void {
    if (isSinkClosedError(error)) this.#remove(sink);
    else this.#onError(error, event, sink);
  }
}
