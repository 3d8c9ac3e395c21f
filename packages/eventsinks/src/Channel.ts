import { SinkClosedError } from './errors/SinkClosedError.js';
import { Lifecycle } from './internal/Lifecycle.js';
import { RingBuffer } from './internal/RingBuffer.js';
import { expectInteger } from './internal/validate.js';
import type { Sink } from './Sink.js';

interface WaitingWriter<E> {
  event: E;
  resolve(): void;
  reject(error: unknown): void;
}

type Reader<E> = (result: IteratorResult<E, undefined>) => void;

const DONE: IteratorResult<never, undefined> = Object.freeze({ done: true, value: undefined });

/**
 * A sink you iterate: go-events' Channel, with `for await` in place of `<-ch.C`.
 *
 * `write` resolves when the event is buffered (buffer > 0 and not full) or taken by a consumer
 * (buffer 0, or full). Each event goes to exactly one consumer. Iteration ends when the channel
 * is closed and its buffer is empty: events buffered before close are still delivered.
 *
 * @example
 * ```ts
 * const channel = new Channel<string>(16);
 * broadcaster.add(channel);
 * for await (const event of channel) console.log(event);
 * ```
 */
export class Channel<E> implements Sink<E>, AsyncIterable<E> {
  readonly #capacity: number;
  readonly #buffer = new RingBuffer<E>();
  readonly #writers = new RingBuffer<WaitingWriter<E>>();
  readonly #readers = new RingBuffer<Reader<E>>();
  readonly #life = new Lifecycle();
  #resolveDone!: () => void;
  /** Resolves when the channel is closed. */
  readonly done: Promise<void>;

  /**
   * @param buffer - how many events may wait without a consumer (an integer ≥ 0; default 0).
   * @throws RangeError if `buffer` is not a non-negative integer.
   */
  constructor(buffer = 0) {
    expectInteger('buffer', buffer, 0, true);
    this.#capacity = buffer;
    this.done = new Promise<void>((resolve) => (this.#resolveDone = resolve));
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /** Events buffered (not counting writers still waiting). */
  get size(): number {
    return this.#buffer.length;
  }

  /**
   * Hands `event` to a waiting consumer, or buffers it, or waits until a consumer takes it.
   * @throws SinkClosedError after `close()`; a write still waiting at close rejects with it.
   */
  write(event: E): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('Channel is closed');
    if (this.#readers.length > 0) {
      this.#readers.shift()({ done: false, value: event });
      return;
    }
    if (this.#buffer.length < this.#capacity) {
      this.#buffer.push(event);
      return;
    }
    return new Promise<void>((resolve, reject) => {
      this.#writers.push({ event, resolve, reject });
    });
  }

  /**
   * Closes the channel: waiting writers are rejected with `SinkClosedError`, consumers finish
   * after the buffer is drained, `done` resolves. Idempotent.
   */
  close(): void {
    if (!this.#life.end()) return;
    for (const writer of this.#writers.drain()) {
      writer.reject(new SinkClosedError('Channel closed before the event was taken'));
    }
    // Readers only wait when the buffer is empty, so they are done now.
    for (const reader of this.#readers.drain()) reader(DONE);
    this.#resolveDone();
  }

  /** Same as `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  /** Takes the next event; resolves `{ done: true }` once closed and drained. */
  next(): Promise<IteratorResult<E, undefined>> {
    const buffer = this.#buffer;
    if (buffer.length > 0) {
      const value = buffer.shift();
      if (this.#writers.length > 0) {
        const writer = this.#writers.shift();
        buffer.push(writer.event);
        writer.resolve();
      }
      return Promise.resolve({ done: false, value });
    }
    if (this.#writers.length > 0) {
      const writer = this.#writers.shift();
      writer.resolve();
      return Promise.resolve({ done: false, value: writer.event });
    }
    if (this.#life.closed) return Promise.resolve(DONE);
    return new Promise((resolve) => this.#readers.push(resolve));
  }

  /**
   * Iterates events until the channel is closed and drained. Several iterators may run at once;
   * each event goes to one of them. Leaving a `for await` loop early does not close the channel.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<E> {
    let finished = false;
    const iterator: AsyncIterableIterator<E> = {
      // Not an async function: wrapping this.next() would cost a promise and a tick per event.
      // Once this.next() reports done it always will (closed and drained), so only return()
      // needs remembering.
      next: () => (finished ? Promise.resolve(DONE) : this.next()),
      return: () => {
        finished = true;
        return Promise.resolve(DONE);
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }
}
