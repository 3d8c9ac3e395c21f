import { SinkClosedError } from './errors/SinkClosedError.js';
import { expectOptionalFunction, expectSink } from './internal/validate.js';
import { closeWith } from './internal/close.js';
import { Lifecycle } from './internal/Lifecycle.js';
import type { CloseOptions, Sink } from './Sink.js';
import { isThenable } from './internal/thenable.js';
import { SinkMetrics } from './SinkMetrics.js';

/**
 * Options for {@link MeteredSink}.
 *
 * @example
 * ```ts
 * const metrics = new SinkMetrics();
 * new MeteredSink(sink, { metrics, now: () => clock.now() });
 * ```
 */
export interface MeteredSinkOptions {
  /** Counters to update; a new SinkMetrics by default. Share one with a RetryingSink below. */
  metrics?: SinkMetrics;
  /** The clock for last-success/last-error times; defaults to `Date.now`. */
  now?: () => number;
}

/**
 * Counts what passes through it — writes started, accepted, failed, pending — into a
 * {@link SinkMetrics}, and passes every write and close through unchanged. Synchronous when the
 * sink below is.
 *
 * @example
 * ```ts
 * const metered = new MeteredSink(new Queue(httpSink));
 * await metered.write(event);
 * console.log(metered.metrics.snapshot());
 * ```
 */
export class MeteredSink<E> implements Sink<E> {
  /** The counters this sink updates. */
  readonly metrics: SinkMetrics;
  readonly #sink: Sink<E>;
  readonly #now: () => number;
  readonly #life = new Lifecycle();

  /**
   * @param sink - the sink to measure.
   * @param options - see {@link MeteredSinkOptions}.
   * @throws TypeError naming a bad argument.
   */
  constructor(sink: Sink<E>, options: MeteredSinkOptions = {}) {
    expectSink('sink', sink);
    expectOptionalFunction('now', options.now);
    if (options.metrics !== undefined && !(options.metrics instanceof SinkMetrics)) {
      throw new TypeError('Expected `metrics` to be a SinkMetrics');
    }
    this.#sink = sink;
    this.metrics = options.metrics ?? new SinkMetrics();
    this.#now = options.now ?? (() => Date.now());
  }

  /**
   * Writes `event` to the sink and counts the outcome.
   * @throws SinkClosedError after `close()`; whatever the sink throws.
   */
  write(event: E): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('MeteredSink is closed');
    const metrics = this.metrics;
    metrics.events++;
    metrics.pending++;
    let result: void | Promise<void>;
    try {
      result = this.#sink.write(event);
    } catch (error) {
      this.#failure(error);
      throw error;
    }
    if (result !== undefined && isThenable(result)) {
      return Promise.resolve(result).then(this.#success, this.#rethrowFailure);
    }
    this.#success();
  }

  /** Closes the sink below (passing `signal` on). Idempotent. */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#life.close(options, (signal) => closeWith(this.#sink, signal));
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  readonly #success = (): void => {
    this.metrics.pending--;
    this.metrics.successes++;
    this.metrics.lastSuccessAt = this.#now();
  };

  readonly #rethrowFailure = (error: unknown): never => {
    this.#failure(error);
    throw error;
  };

  #failure(error: unknown): void {
    const metrics = this.metrics;
    metrics.pending--;
    metrics.failures++;
    metrics.lastError = error;
    metrics.lastErrorAt = this.#now();
  }
}
