import { expectInteger, expectNonNegative } from '../internal/validate.js';
import { Breaker } from '../retry/Breaker.js';
import type { RetryStrategy } from '../retry/RetryStrategy.js';
import { RetryingSink, type DeadLetter } from '../RetryingSink.js';
import type { CloseOptions, Sink } from '../Sink.js';
import { HttpSink, type HttpSinkOptions } from './HttpSink.js';
import { httpRetryStrategy } from './httpRetryStrategy.js';

/**
 * Options for {@link WebhookSink}: the {@link HttpSink}'s and the retry policy's in one.
 *
 * @example
 * ```ts
 * const options: WebhookSinkOptions<Order> = {
 *   signing: { secret: process.env.WEBHOOK_SECRET! },
 *   deadLetter,
 *   threshold: 5,
 *   backoff: 2000,
 * };
 * ```
 */
export interface WebhookSinkOptions<E> extends HttpSinkOptions<E> {
  /**
   * The retry strategy; default `new Breaker(threshold, backoff)`, which never gives up (under
   * a `DurableQueue` the file holds the event meanwhile). It is always wrapped by
   * {@link httpRetryStrategy}, so a non-retryable answer gives up at once and `Retry-After`
   * is honoured.
   */
  strategy?: RetryStrategy<E>;
  /** The default Breaker's threshold: consecutive failures before backing off; default 10. */
  threshold?: number;
  /** The default Breaker's backoff in ms; default 1000. */
  backoff?: number;
  /** Longest `Retry-After` honoured, in ms; default 60 000. */
  maxRetryAfter?: number;
  /** Receives a {@link DeadLetter} for every event the strategy gives up on. */
  deadLetter?: Sink<DeadLetter<E>>;
  /**
   * Told of every event given up on (`reason` is the last error) or abandoned by a close whose
   * deadline passed (`'closed'`). Defaults to printing, unless `deadLetter` is set.
   */
  onDrop?(event: E, reason: unknown): void;
  /** Told when writing to `deadLetter` fails. Defaults to printing. */
  onError?(error: unknown, event: E): void;
}

/**
 * A signed, retrying webhook sink with no queue of its own, for use under a `DurableQueue`:
 * {@link HttpSink} under a `RetryingSink` with an {@link Endpoint}'s retry policy
 * ({@link httpRetryStrategy} around a Breaker), so that `write` settles only once the
 * receiver answered 2xx or the strategy gave up (dead-lettered).
 *
 * Under a DurableQueue the event stays in the file until then: a crash at any moment
 * redelivers it after the restart, with the same `webhook-id` (the stored id, see `durableId`
 * in eventsinks/sqlite, unless `idOf` gives one), so a receiver that drops duplicates by
 * `webhook-id` processes it once. Writes are sent one at a time, in order.
 *
 * `write` rejects with `SinkClosedError` after `close()`, or when a close abandons it (the
 * DurableQueue then keeps the event in the file).
 *
 * @example
 * ```ts
 * import { WebhookSink } from 'eventsinks/http';
 * import { DurableQueue } from 'eventsinks/sqlite';
 *
 * const queue = new DurableQueue<Order>(
 *   new WebhookSink('https://hooks.example.com/orders', {
 *     signing: { secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' },
 *     deadLetter,
 *   }),
 *   { path: './orders.db' },
 * );
 * await queue.write({ id: 1, total: 42 }); // on disk; sent, signed, until the receiver takes it
 * await queue.close({ signal: AbortSignal.timeout(10_000) });
 * ```
 */
export class WebhookSink<E> implements Sink<E> {
  /** The target URL with credentials removed and the query string hidden, for logs. */
  readonly url: string;
  readonly #retrying: RetryingSink<E>;

  /**
   * @param url - the receiver's absolute http(s) URL.
   * @param options - see {@link WebhookSinkOptions}.
   * @throws TypeError or RangeError naming a bad option (never showing a secret).
   */
  constructor(url: string | URL, options: WebhookSinkOptions<E> = {}) {
    const {
      strategy,
      threshold = 10,
      backoff = 1000,
      maxRetryAfter,
      deadLetter,
      onDrop,
      onError,
      ...http
    } = options;
    expectInteger('threshold', threshold, 0);
    expectNonNegative('backoff', backoff);
    const sender = new HttpSink<E>(url, http);
    this.url = sender.url;
    const retry = httpRetryStrategy(strategy ?? new Breaker(threshold, backoff), {
      ...(maxRetryAfter !== undefined && { maxRetryAfter }),
    });
    this.#retrying = new RetryingSink<E>(sender, retry, {
      ...(deadLetter !== undefined && { deadLetter }),
      ...(onDrop !== undefined && { onDrop }),
      ...(onError !== undefined && { onError }),
    });
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#retrying.closed;
  }

  /**
   * Sends `event`, retrying under the strategy.
   * @returns a promise that resolves once the receiver answered 2xx or the event was given up
   *   on (dead-lettered, or reported to `onDrop`).
   * @throws SinkClosedError after `close()`, or (rejects) when a close abandons the write.
   */
  write(event: E): void | Promise<void> {
    return this.#retrying.write(event);
  }

  /**
   * Stops accepting and closes the HttpSink below. Idempotent.
   *
   * Without a signal, the write in progress and those waiting reject with `SinkClosedError` at
   * once (under a DurableQueue they stay in the file). With `signal`, pending writes keep being
   * attempted until they are done or the signal aborts; then each one left goes to `onDrop`
   * with reason `'closed'`.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#retrying.close(options);
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
