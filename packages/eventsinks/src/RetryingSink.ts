import { SinkClosedError, isSinkClosedError } from './errors/SinkClosedError.js';
import { abandonOptions, isAbandon } from './internal/abandon.js';
import { callHook, reportDefault } from './internal/report.js';
import { RingBuffer } from './internal/RingBuffer.js';
import { describe, expectOptionalFunction, expectSink } from './internal/validate.js';
import type { RetryContext, RetryStrategy } from './retry/RetryStrategy.js';
import { closeWith } from './internal/close.js';
import { Lifecycle } from './internal/Lifecycle.js';
import { isThenable, type CloseOptions, type Sink } from './Sink.js';
import type { SinkMetrics } from './SinkMetrics.js';

/**
 * What a dead-letter sink receives for every event a {@link RetryingSink} gave up on.
 *
 * @example
 * ```ts
 * const dlq: Sink<DeadLetter<string>> = {
 *   write: ({ event, error, attempts }) => console.error(event, attempts, error),
 *   close() {},
 * };
 * ```
 */
export interface DeadLetter<E> {
  /** The event that could not be delivered. */
  event: E;
  /** The error of the last attempt. */
  error: unknown;
  /** How many attempts failed. */
  attempts: number;
  /** When the first attempt failed (ms since the epoch, from the injected clock). */
  firstFailedAt: number;
}

/**
 * Options for {@link RetryingSink}.
 *
 * @example
 * ```ts
 * const options: RetryingSinkOptions<string> = {
 *   deadLetter: dlqSink,
 *   onDrop: (event) => metrics.dropped++,
 * };
 * ```
 */
export interface RetryingSinkOptions<E> {
  /**
   * Told of every event dropped: by the strategy (`reason` is the last error) or by a close
   * whose deadline passed (`reason` is `'closed'`). Defaults to printing, unless `deadLetter`
   * is set (then the dead letter is the record).
   */
  onDrop?(event: E, reason: unknown): void;
  /** Receives a {@link DeadLetter} for every event the strategy drops. */
  deadLetter?: Sink<DeadLetter<E>>;
  /** Told when writing to `deadLetter` fails. Defaults to printing. */
  onError?(error: unknown, event: E): void;
  /** The clock for `firstFailedAt`; defaults to `Date.now`. */
  now?: () => number;
  /**
   * Counts retries (`retries`), drops (`dropped`, dead-lettered ones included) and events
   * written to `deadLetter` (`deadLettered`, once that write succeeded); see {@link SinkMetrics}.
   */
  metrics?: SinkMetrics;
}

interface PendingWrite<E> {
  event: E;
  resolve(): void;
  reject(error: unknown): void;
  // How the fast path left it: a delay already asked of the strategy, an attempt in flight, or
  // an attempt that already failed.
  delay: number | undefined;
  inflight: void | PromiseLike<void>;
  failed: boolean;
  error: unknown;
}

const NAME = 'RetryingSink';
// After this many back-to-back retries with no delay, yield a macrotask, so a strategy that
// never backs off cannot starve timers and I/O (including the close() that would stop it).
const YIELD_EVERY = 64;

/**
 * Retries writes to a sink under a {@link RetryStrategy} until they succeed or the strategy
 * drops them.
 *
 * Before every attempt it waits `strategy.proceed(event, context)` ms (if positive); after a
 * failure it asks `strategy.failure(event, error, context)` whether to drop, where `context` is
 * a {@link RetryContext} for the attempt that failed (`attempt`, 1-based; `firstFailedAt`;
 * `error`), also passed to `proceed` and `success` once the event has failed. Concurrent writes are serialized in
 * call order, so retries never reorder events. A `SinkClosedError` from the wrapped sink is
 * terminal and rejects the write. When the first attempt succeeds synchronously, `write`
 * returns synchronously.
 *
 * @example
 * ```ts
 * const sink = new RetryingSink(httpSink, new Breaker(5, 1000), { deadLetter: dlq });
 * await sink.write(event); // resolves once delivered or dead-lettered
 * ```
 */
export class RetryingSink<E> implements Sink<E> {
  readonly #sink: Sink<E>;
  readonly #strategy: RetryStrategy<E>;
  readonly #pending = new RingBuffer<PendingWrite<E>>();
  readonly #onDrop: ((event: E, reason: unknown) => void) | undefined;
  readonly #onError: (error: unknown, event: E) => void;
  readonly #deadLetter: Sink<DeadLetter<E>> | undefined;
  readonly #now: () => number;
  readonly #metrics: SinkMetrics | undefined;
  #busy = false;
  // Stopped for good: every pending write settled, no attempt starts (set by close()).
  #closed = false;
  // A close deadline aborts the drain: what is left is dropped, or rejected when abandoning.
  readonly #life = new Lifecycle(() => this.#stop(this.#life.abandoned ? 'reject' : 'drop'));
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;

  /**
   * @param sink - the sink to retry.
   * @param strategy - paces attempts and decides when to drop.
   * @param options - see {@link RetryingSinkOptions}.
   * @throws TypeError naming a bad argument.
   */
  constructor(
    sink: Sink<E>,
    strategy: RetryStrategy<NoInfer<E>>,
    options: RetryingSinkOptions<NoInfer<E>> = {},
  ) {
    expectSink('sink', sink);
    if (
      typeof strategy !== 'object' ||
      strategy === null ||
      typeof strategy.proceed !== 'function' ||
      typeof strategy.failure !== 'function' ||
      typeof strategy.success !== 'function'
    ) {
      throw new TypeError(
        `Expected \`strategy\` to be a RetryStrategy (proceed, failure, success), got ${describe(strategy)}`,
      );
    }
    const { onDrop, onError, deadLetter, now } = options;
    expectOptionalFunction('onDrop', onDrop);
    expectOptionalFunction('onError', onError);
    expectOptionalFunction('now', now);
    if (deadLetter !== undefined) expectSink('deadLetter', deadLetter);
    this.#sink = sink;
    this.#strategy = strategy;
    this.#deadLetter = deadLetter;
    this.#now = now ?? (() => Date.now());
    this.#metrics = options.metrics;
    this.#onDrop = onDrop && ((event, reason) => callHook(NAME, onDrop, event, reason));
    this.#onError = onError
      ? (error, event) => callHook(NAME, onError, error, event)
      : (error) => reportDefault(NAME, 'writing a dead letter failed', error);
  }

  /** Writes accepted but not yet delivered or dropped (including the one being attempted). */
  get size(): number {
    return this.#pending.length;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Delivers `event`, retrying under the strategy. Resolves when delivered or dropped.
   * @throws SinkClosedError after `close()`, or when the wrapped sink reports it, or when the
   *   sink is closed while this write is pending.
   */
  write(event: E): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('RetryingSink is closed');
    if (this.#busy) return this.#enqueue(event, undefined, undefined, false, undefined);
    const delay = this.#strategy.proceed(event);
    if (delay > 0) return this.#enqueue(event, delay, undefined, false, undefined);
    let result: void | Promise<void>;
    try {
      result = this.#sink.write(event);
    } catch (error) {
      if (isSinkClosedError(error)) throw error;
      return this.#enqueue(event, undefined, undefined, true, error);
    }
    if (result !== undefined && isThenable(result)) {
      return this.#enqueue(event, undefined, result, false, undefined);
    }
    this.#strategy.success(event);
  }

  /**
   * Closes the sink and then the wrapped sink. Idempotent.
   *
   * Without a signal: the write in progress and every waiting write are rejected with
   * `SinkClosedError` at once (no backoff is waited out) and timers are cancelled.
   * With `signal`: new writes are refused but pending ones keep being attempted until they are
   * done or the signal aborts; then each one left goes to `onDrop` with reason `'closed'` and
   * its write resolves.
   *
   * Under a `DurableQueue` whose deadline passed, the queue closes this sink so that it
   * abandons what it holds: every pending write is rejected with `SinkClosedError` at once,
   * none goes to `onDrop` or the dead letter (the queue's file still holds it), and an attempt
   * that fails after that is not retried.
   */
  close(options: CloseOptions = {}): Promise<void> {
    // A later close's signal (an abandoning one too) cuts a drain in progress short.
    const abandon = isAbandon(options);
    return this.#life.close(
      options,
      (signal) => this.#drain(signal, abandon),
      (signal) => this.#release(signal, abandon),
    );
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #drain(signal: AbortSignal | undefined, abandon: boolean): Promise<void> {
    // Draining: resolves when the queue empties (#run) or the deadline aborts (#stop).
    if (!abandon && signal !== undefined && this.#pending.length > 0) {
      await this.#life.untilIdle();
    }
  }

  async #release(signal: AbortSignal | undefined, abandon: boolean): Promise<void> {
    this.#stop('reject');
    // Abandoning: the sink below must let go of its attempt now too (a broker sink waiting for
    // an acknowledgement, a connection still being opened), not finish it.
    if (abandon) await this.#sink.close(abandonOptions());
    else await closeWith(this.#sink, signal);
  }

  #stop(how: 'reject' | 'drop'): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
    for (const pending of this.#pending.drain()) {
      if (how === 'drop') {
        this.#dropped(pending.event, 'closed');
        pending.resolve();
      } else {
        pending.reject(
          new SinkClosedError('RetryingSink was closed before the event was delivered'),
        );
      }
    }
    this.#life.idle();
  }

  #enqueue(
    event: E,
    delay: number | undefined,
    inflight: void | PromiseLike<void>,
    failed: boolean,
    error: unknown,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ event, resolve, reject, delay, inflight, failed, error });
      if (!this.#busy) {
        this.#busy = true;
        void this.#run();
      }
    });
  }

  async #run(): Promise<void> {
    const queue = this.#pending;
    while (queue.length > 0 && !this.#closed) {
      const pending = queue.peek();
      try {
        await this.#deliver(pending);
        pending.resolve();
      } catch (error) {
        pending.reject(error);
      }
      // close() empties the queue itself; shifting after it would take someone else's entry.
      if (this.#closed) break;
      queue.shift();
    }
    this.#busy = false;
    if (queue.length === 0) this.#life.idle();
  }

  async #deliver(pending: PendingWrite<E>): Promise<void> {
    const strategy = this.#strategy;
    const { event } = pending;
    // Where the fast path left off: a delay already asked for, an attempt in flight, or failed.
    let { delay, inflight, failed, error } = pending;
    let attempts = 0;
    let firstFailedAt = 0;
    // The last failure, told to the strategy; one object per failed attempt (slow path only).
    let context: RetryContext | undefined;
    let immediate = 0;
    for (;;) {
      if (!failed) {
        try {
          if (inflight === undefined) {
            delay ??= strategy.proceed(event, context);
            if (delay > 0) {
              immediate = 0;
              await this.#sleep(delay);
            } else if (attempts > 0 && ++immediate % YIELD_EVERY === 0) {
              await this.#sleep(0);
            }
            this.#throwIfClosed();
            inflight = this.#sink.write(event);
          }
          await inflight;
          this.#throwIfClosed();
          strategy.success(event, context);
          return;
        } catch (e) {
          if (this.#closed) throw new SinkClosedError('RetryingSink is closed');
          error = e;
        }
        inflight = undefined;
        delay = undefined;
      }
      failed = false;
      if (isSinkClosedError(error)) throw error;
      attempts++;
      if (attempts === 1) firstFailedAt = this.#now();
      context = { attempt: attempts, firstFailedAt, error };
      if (strategy.failure(event, error, context)) {
        await this.#drop(event, error, attempts, firstFailedAt);
        return;
      }
      if (this.#metrics) this.#metrics.retries++;
    }
  }

  async #drop(event: E, error: unknown, attempts: number, firstFailedAt: number): Promise<void> {
    const deadLetter = this.#deadLetter;
    // With a dead letter the drop is on record there; without one it must be seen somewhere.
    if (deadLetter === undefined || this.#onDrop) this.#dropped(event, error);
    else if (this.#metrics) this.#metrics.dropped++;
    if (deadLetter === undefined) return;
    try {
      await deadLetter.write({ event, error, attempts, firstFailedAt });
      if (this.#metrics) this.#metrics.deadLettered++;
    } catch (e) {
      this.#onError(e, event);
    }
  }

  #dropped(event: E, reason: unknown): void {
    if (this.#metrics) this.#metrics.dropped++;
    if (this.#onDrop) this.#onDrop(event, reason);
    else reportDefault(NAME, 'dropped an event', { event, reason });
  }

  #throwIfClosed(): void {
    if (this.#closed) throw new SinkClosedError('RetryingSink is closed');
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#wake = undefined;
        resolve();
      }, ms);
    });
  }
}
