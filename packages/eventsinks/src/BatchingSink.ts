import { SinkClosedError } from './errors/SinkClosedError.js';
import { isAbandon } from './internal/abandon.js';
import { closeWith, noop } from './internal/close.js';
import { Lifecycle } from './internal/Lifecycle.js';
import {
  expectInteger,
  expectNumber,
  expectOptionalFunction,
  describe,
  expectSink,
} from './internal/validate.js';
import type { CloseOptions, Sink } from './Sink.js';

/**
 * Options for {@link BatchingSink}.
 *
 * @example
 * ```ts
 * const options: BatchingSinkOptions = { maxSize: 100, maxDelay: 50 };
 * ```
 */
export interface BatchingSinkOptions<E = unknown> {
  /** Flush when a batch holds this many events (a positive integer). */
  maxSize: number;
  /** Flush a non-empty batch this many ms after its first event (≥ 0; `Infinity`: only on size). */
  maxDelay: number;
  /**
   * For events that already belong to a batch formed earlier (re-formed after a restart, e.g.
   * from `DurableQueue.sealedKey`): that batch's key, else `undefined`. An event with a key is
   * batched only with the events of the same key, which are never split by `maxSize`, and an
   * event without one never joins a keyed batch: batches formed once keep their members.
   */
  keyOf?(event: E): string | undefined;
  /**
   * Told of every batch as it is sealed, before it goes to `dst`, with its key (`undefined`
   * for a new batch): the place to fix a new batch's membership (`DurableQueue.seal`) and
   * id. Called synchronously; if it throws, the batch fails like a failed write.
   */
  onBatch?(batch: E[], key: string | undefined): void;
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Groups events into arrays for a `Sink<E[]>`: a batch is flushed when it reaches `maxSize` or
 * `maxDelay` ms after its first event, and whatever is left is flushed on close. Batches go to
 * `dst` one at a time, in order.
 *
 * A write resolves when the batch holding it has been accepted by `dst`, and rejects with that
 * batch's error if it fails: every write in a failed batch fails. Batches form from writes that
 * are in flight together, so put a `Queue({ maxInFlight: maxSize })` in front when the writer
 * awaits each write.
 *
 * @example
 * ```ts
 * const batches = new BatchingSink(bulkHttpSink, { maxSize: 100, maxDelay: 50 });
 * const queue = new Queue(batches, { maxInFlight: 100 });
 * queue.write(event);
 * ```
 */
export class BatchingSink<E> implements Sink<E> {
  readonly #dst: Sink<E[]>;
  readonly #maxSize: number;
  readonly #maxDelay: number;
  readonly #keyOf: ((event: E) => string | undefined) | undefined;
  readonly #onBatch: ((batch: E[], key: string | undefined) => void) | undefined;
  #batch: E[] = [];
  // The key of the current batch: one formed earlier, re-formed with the same members.
  #key: string | undefined;
  #current: Deferred | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  // The last batch handed to dst; the next waits for it so batches never overtake each other.
  #tail: Promise<void> = Promise.resolve();
  readonly #life = new Lifecycle();

  /**
   * @param dst - receives each batch as an array (a fresh array per batch, yours to keep).
   * @param options - see {@link BatchingSinkOptions}.
   * @throws TypeError or RangeError naming a bad option.
   */
  constructor(dst: Sink<E[]>, options: BatchingSinkOptions<NoInfer<E>>) {
    expectSink('dst', dst);
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`Expected \`options\` to be an object, got ${describe(options)}`);
    }
    expectInteger('maxSize', options.maxSize);
    expectNumber('maxDelay', options.maxDelay);
    if (!(options.maxDelay >= 0)) {
      throw new RangeError(
        `Expected \`maxDelay\` to be a non-negative number, got ${describe(options.maxDelay)}`,
      );
    }
    expectOptionalFunction('keyOf', options.keyOf);
    expectOptionalFunction('onBatch', options.onBatch);
    this.#dst = dst;
    this.#maxSize = options.maxSize;
    this.#maxDelay = options.maxDelay;
    this.#keyOf = options.keyOf;
    this.#onBatch = options.onBatch;
  }

  /** Events waiting in the current batch. */
  get size(): number {
    return this.#batch.length;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Adds `event` to the current batch. Resolves when that batch is accepted by `dst`.
   * @throws SinkClosedError after `close()`; rejects with the batch's error if it fails.
   */
  write(event: E): Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('BatchingSink is closed');
    const key = this.#keyOf === undefined ? undefined : this.#keyOf(event);
    // A batch keeps its members: a keyed event starts its own batch, and ends a keyed one.
    if (this.#current !== undefined && key !== this.#key) this.#flush();
    this.#key = key;
    this.#batch.push(event);
    let current = this.#current;
    if (current === undefined) {
      current = this.#current = deferred();
      if (
        this.#maxDelay !== Infinity &&
        (key !== undefined || this.#batch.length < this.#maxSize)
      ) {
        this.#timer = setTimeout(this.#flush, this.#maxDelay);
      }
    }
    if (key === undefined && this.#batch.length >= this.#maxSize) this.#flush();
    return current.promise;
  }

  /** Flushes the current batch now, without waiting for size or time. */
  flush(): void {
    this.#flush();
  }

  /**
   * Flushes what is left, waits for every batch to be accepted (or `signal` to abort), then
   * closes `dst`. Idempotent.
   *
   * Under a `DurableQueue` whose deadline passed, the queue closes this sink so that it
   * abandons what it holds (the file keeps it): the current batch is not sent (its writes
   * reject with `SinkClosedError`), nothing is waited for, and `dst` is told to abandon too.
   */
  close(options: CloseOptions = {}): Promise<void> {
    const again = this.#life.closed;
    const abandon = isAbandon(options);
    const closed = this.#life.close(
      options,
      () => {
        if (abandon) return this.#discard();
        this.#flush();
        return this.#life.until(this.#tail);
      },
      (signal) => (abandon ? this.#dst.close(options) : closeWith(this.#dst, signal)),
    );
    // A deadline that passed while the first close was waiting: let dst give up now.
    if (again && abandon) void Promise.resolve(this.#dst.close(options)).catch(noop);
    return closed;
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Rejects the writes of the current batch without sending it. */
  #discard(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const current = this.#current;
    this.#batch = [];
    this.#current = undefined;
    this.#key = undefined;
    current?.reject(new SinkClosedError('BatchingSink was closed before the batch was sent'));
  }

  readonly #flush = (): void => {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const current = this.#current;
    if (current === undefined) return;
    const batch = this.#batch;
    const key = this.#key;
    this.#batch = [];
    this.#current = undefined;
    this.#key = undefined;
    if (this.#onBatch !== undefined) {
      try {
        this.#onBatch(batch, key);
      } catch (error) {
        current.reject(error);
        return;
      }
    }
    const dst = this.#dst;
    this.#tail = this.#tail.then(async () => {
      try {
        await dst.write(batch);
        current.resolve();
      } catch (error) {
        current.reject(error);
      }
    });
  };
}
