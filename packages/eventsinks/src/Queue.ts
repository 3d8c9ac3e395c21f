import { QueueFullError } from './errors/QueueFullError.js';
import { SinkClosedError } from './errors/SinkClosedError.js';
import { Lifecycle } from './internal/Lifecycle.js';
import { callHook, reportDefault } from './internal/report.js';
import { RingBuffer } from './internal/RingBuffer.js';
import {
  expectInteger,
  expectOneOf,
  expectOptionalFunction,
  expectSink,
} from './internal/validate.js';
import type { SinkMetrics } from './SinkMetrics.js';
import { closeWith } from './internal/close.js';
import type { CloseOptions, Sink } from './Sink.js';
import { isThenable } from './internal/thenable.js';

/**
 * What a bounded {@link Queue} does with a write when it already holds `capacity` events.
 * - `'block'`: the write returns a promise that resolves when there is room (backpressure).
 * - `'drop-oldest'`: the oldest waiting event is dropped to make room.
 * - `'drop-newest'`: the new event is dropped.
 * - `'reject'`: the write throws {@link QueueFullError}.
 */
export type OverflowPolicy = 'block' | 'drop-oldest' | 'drop-newest' | 'reject';

/** Why an event was handed to `onDrop`: the queue overflowed, or it was closed with a deadline. */
export type DropReason = 'overflow' | 'closed';

/**
 * Options for {@link Queue}.
 *
 * @example
 * ```ts
 * const options: QueueOptions<string> = {
 *   capacity: 10_000,
 *   overflow: 'drop-oldest',
 *   onDrop: (event, reason) => console.warn('dropped', event, reason),
 * };
 * ```
 */
export interface QueueOptions<E> {
  /** Most events waiting at once; a positive integer or `Infinity` (the default: unbounded). */
  capacity?: number;
  /** What to do when full; default `'block'`. Only meaningful with a finite `capacity`. */
  overflow?: OverflowPolicy;
  /**
   * How many writes to `dst` may be outstanding at once (a positive integer, default 1). They
   * are always issued in order; above 1 a sink that accepts them concurrently (a BatchingSink,
   * a pipelining broker sink) can work on several at a time.
   */
  maxInFlight?: number;
  /** Counts events dropped by this queue (`dropped`); see {@link SinkMetrics}. */
  metrics?: SinkMetrics;
  /** Told of every failed write to the destination; the queue goes on with the next event. */
  onError?(error: unknown, event: E): void;
  /** Told of every event the queue drops (overflow, or close with an aborted deadline). */
  onDrop?(event: E, reason: DropReason): void;
}

interface BlockedWrite<E> {
  event: E;
  resolve(): void;
  reject(error: unknown): void;
}

const NAME = 'Queue';
const POLICIES: readonly OverflowPolicy[] = ['block', 'drop-oldest', 'drop-newest', 'reject'];

/**
 * Decouples writers from a slow sink: `write` accepts the event at once and the queue delivers
 * events to `dst` one at a time, in order, each write awaited before the next.
 *
 * A failed destination write goes to `onError` and the queue goes on with the next event.
 * Unbounded by default; with `capacity` the `overflow` policy decides what a write does when
 * the queue is full, and every dropped event goes to `onDrop`.
 *
 * @example
 * ```ts
 * const queue = new Queue(slowSink, { capacity: 1000, overflow: 'block' });
 * await queue.write(event); // waits only when 1000 events are already waiting
 * await queue.close(); // delivers everything, then closes slowSink
 * ```
 */
export class Queue<E> implements Sink<E> {
  readonly #dst: Sink<E>;
  readonly #buffer = new RingBuffer<E>();
  readonly #blocked = new RingBuffer<BlockedWrite<E>>(16);
  readonly #capacity: number;
  readonly #maxInFlight: number;
  readonly #metrics: SinkMetrics | undefined;
  readonly #overflow: OverflowPolicy;
  readonly #onError: (error: unknown, event: E) => void;
  readonly #onDrop: (event: E, reason: DropReason) => void;
  // True from the moment a drain is scheduled until the buffer is empty and no write is pending.
  #running = false;
  // A drain is queued as a microtask and has not started yet.
  #scheduled = false;
  #inflight = 0;
  // Its abort drops what is still waiting (a close deadline passed).
  readonly #life = new Lifecycle(() => this.#abort());

  /**
   * @param dst - where events go.
   * @param options - see {@link QueueOptions}.
   * @throws TypeError or RangeError naming a bad option.
   */
  constructor(dst: Sink<E>, options: QueueOptions<E> = {}) {
    expectSink('dst', dst);
    const { capacity = Infinity, overflow = 'block', maxInFlight = 1, onError, onDrop } = options;
    expectInteger('capacity', capacity, 1, true);
    expectInteger('maxInFlight', maxInFlight);
    expectOneOf('overflow', overflow, POLICIES);
    expectOptionalFunction('onError', onError);
    expectOptionalFunction('onDrop', onDrop);
    this.#dst = dst;
    this.#capacity = capacity;
    this.#maxInFlight = maxInFlight;
    this.#metrics = options.metrics;
    this.#overflow = overflow;
    this.#onError = onError
      ? (error, event) => callHook(NAME, onError, error, event)
      : (error) => reportDefault(NAME, 'a write to the destination failed', error);
    this.#onDrop = onDrop
      ? (event, reason) => callHook(NAME, onDrop, event, reason)
      : (event, reason) => reportDefault(NAME, `dropped an event (${reason})`, event);
  }

  /** Events waiting to be delivered (not counting the one being delivered). */
  get size(): number {
    return this.#buffer.length;
  }

  /** The capacity (`Infinity` when unbounded). */
  get capacity(): number {
    return this.#capacity;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Accepts `event`. Returns synchronously unless the queue is full under `'block'`, in which
   * case the promise resolves once the event is in the queue.
   * @throws SinkClosedError after `close()`; QueueFullError when full under `'reject'`.
   */
  write(event: E): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('Queue is closed');
    const buffer = this.#buffer;
    // Blocked writers go first, or a new write would overtake them.
    if (buffer.length >= this.#capacity || this.#blocked.length > 0) return this.#overflowed(event);
    buffer.push(event);
    // Idle, or (with maxInFlight > 1) a slot is free while earlier writes are still pending.
    if (!this.#scheduled && this.#inflight < this.#maxInFlight) this.#schedule();
  }

  /**
   * Stops accepting, delivers every waiting event, then closes `dst`. Idempotent.
   *
   * Writes still blocked for room are rejected with `SinkClosedError` (they were never
   * accepted). With `signal`, when it aborts: every event still waiting goes to `onDrop` with
   * reason `'closed'`, `dst` is closed at once (given the same signal) and the promise resolves.
   * @throws rejects with the error of `dst.close()`, on the first call only.
   */
  close(options: CloseOptions = {}): Promise<void> {
    // A later deadline still applies to a drain in progress: the lifecycle listens to it too.
    return this.#life.close(
      options,
      () => this.#drain(),
      (signal) => closeWith(this.#dst, signal),
    );
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #drain(): Promise<void> {
    while (this.#blocked.length > 0) {
      this.#blocked
        .shift()
        .reject(new SinkClosedError('Queue closed before the event was accepted'));
    }
    // An already-aborted signal aborts as soon as this waits: untilIdle then resolves.
    if (this.#running) await this.#life.untilIdle();
  }

  // Called once by the lifecycle, which then resolves untilIdle().
  #abort(): void {
    for (const event of this.#buffer.drain()) this.#dropped(event, 'closed');
  }

  #overflowed(event: E): void | Promise<void> {
    switch (this.#overflow) {
      case 'reject':
        throw new QueueFullError(this.#capacity);
      case 'drop-newest':
        this.#dropped(event, 'overflow');
        return;
      case 'drop-oldest': {
        const oldest = this.#buffer.shift();
        this.#buffer.push(event);
        this.#dropped(oldest, 'overflow');
        return;
      }
      case 'block':
        return new Promise<void>((resolve, reject) => {
          this.#blocked.push({ event, resolve, reject });
        });
    }
  }

  #dropped(event: E, reason: DropReason): void {
    if (this.#metrics) this.#metrics.dropped++;
    this.#onDrop(event, reason);
  }

  #schedule(): void {
    this.#running = true;
    this.#scheduled = true;
    // A microtask, not a synchronous call: the writer returns before any delivery starts.
    queueMicrotask(this.#run);
  }

  // An arrow field so it can be handed to queueMicrotask without a bind per drain.
  readonly #run = (): void => {
    this.#scheduled = false;
    const buffer = this.#buffer;
    const dst = this.#dst;
    while (buffer.length > 0 && this.#inflight < this.#maxInFlight) {
      const event = buffer.shift();
      if (this.#blocked.length > 0) {
        const blocked = this.#blocked.shift();
        buffer.push(blocked.event);
        blocked.resolve();
      }
      let result: void | Promise<void>;
      try {
        result = dst.write(event);
      } catch (error) {
        this.#onError(error, event);
        continue;
      }
      if (result !== undefined && isThenable(result)) {
        this.#inflight++;
        void this.#awaitWrite(result, event);
      }
    }
    if (this.#inflight > 0) return;
    this.#running = false;
    this.#life.idle();
  };

  async #awaitWrite(pending: PromiseLike<void>, event: E): Promise<void> {
    try {
      await pending;
    } catch (error) {
      this.#onError(error, event);
    }
    this.#inflight--;
    this.#run();
  }
}
