import { SinkClosedError } from './errors/SinkClosedError.js';
import { SinkTimeoutError } from './errors/SinkTimeoutError.js';
import { callHook, reportDefault } from './internal/report.js';
import { describe, expectOptionalFunction, expectSink } from './internal/validate.js';
import { closeWith } from './internal/close.js';
import { Lifecycle } from './internal/Lifecycle.js';
import type { CloseOptions, Sink } from './Sink.js';
import { isThenable } from './internal/thenable.js';

/**
 * Options for {@link TimeoutSink}.
 *
 * @example
 * ```ts
 * new TimeoutSink(watcher, 5000, { closeOnTimeout: true });
 * ```
 */
export interface TimeoutSinkOptions {
  /**
   * Tear the sink down on the first timeout, as swarmkit's watch sinks do: the write fails with
   * `SinkClosedError` (its `cause` the {@link SinkTimeoutError}), the wrapped sink is closed, and
   * a Broadcaster above removes it. Default false: the write fails with the retryable
   * `SinkTimeoutError` and the sink stays open.
   */
  closeOnTimeout?: boolean;
  /** Told when closing the wrapped sink after a timeout fails. Defaults to printing. */
  onError?(error: unknown): void;
}

const NAME = 'TimeoutSink';

/**
 * Fails a write that the wrapped sink has not accepted within `timeout` ms, so one stuck sink
 * cannot hold up a pipeline forever. A synchronous write is never timed (it already returned).
 *
 * @example
 * ```ts
 * const sink = new RetryingSink(new TimeoutSink(httpSink, 1000), new Breaker(5, 1000));
 * ```
 */
export class TimeoutSink<E> implements Sink<E> {
  /** The limit in ms. */
  readonly timeout: number;
  readonly #sink: Sink<E>;
  readonly #closeOnTimeout: boolean;
  readonly #onError: (error: unknown) => void;
  readonly #life = new Lifecycle();

  /**
   * @param sink - the sink to guard.
   * @param timeout - ms a write may take (a positive, finite number).
   * @param options - see {@link TimeoutSinkOptions}.
   * @throws TypeError or RangeError naming a bad argument.
   */
  constructor(sink: Sink<E>, timeout: number, options: TimeoutSinkOptions = {}) {
    expectSink('sink', sink);
    if (typeof timeout !== 'number' || Number.isNaN(timeout)) {
      throw new TypeError(`Expected \`timeout\` to be a number, got ${describe(timeout)}`);
    }
    if (!(timeout > 0) || !Number.isFinite(timeout)) {
      throw new RangeError(
        `Expected \`timeout\` to be a positive finite number, got ${describe(timeout)}`,
      );
    }
    const { closeOnTimeout = false, onError } = options;
    if (typeof closeOnTimeout !== 'boolean') {
      throw new TypeError(
        `Expected \`closeOnTimeout\` to be a boolean, got ${describe(closeOnTimeout)}`,
      );
    }
    expectOptionalFunction('onError', onError);
    this.#sink = sink;
    this.timeout = timeout;
    this.#closeOnTimeout = closeOnTimeout;
    this.#onError = onError
      ? (error) => callHook(NAME, onError, error)
      : (error) => reportDefault(NAME, 'closing the sink after a timeout failed', error);
  }

  /** True once closed (by `close()` or, with `closeOnTimeout`, by a timeout). */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Writes `event`; rejects with SinkTimeoutError (or SinkClosedError under `closeOnTimeout`)
   * if the sink has not accepted it within the limit.
   * @throws SinkClosedError after close.
   */
  write(event: E): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('TimeoutSink is closed');
    const result = this.#sink.write(event);
    if (result === undefined || !isThenable(result)) return;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const timeoutError = new SinkTimeoutError(this.timeout);
        if (this.#closeOnTimeout) {
          reject(
            new SinkClosedError('TimeoutSink closed after a timeout', { cause: timeoutError }),
          );
          this.close().catch(this.#onError);
        } else {
          reject(timeoutError);
        }
      }, this.timeout);
      result.then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        (error: unknown) => {
          clearTimeout(timer);
          // Passed through untouched: the sink's own error, whatever its type.
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          reject(error);
        },
      );
    });
  }

  /** Closes the wrapped sink (passing `signal` on). Idempotent. */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#life.close(options, (signal) => closeWith(this.#sink, signal));
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
