import { SinkClosedError } from '../errors/SinkClosedError.js';
import { describe, expectInteger } from '../internal/validate.js';
import type { Sink } from '../Sink.js';
import { encodeWith, expectCodec, jsonWithErrorsCodec, type Codec } from './codec.js';
import { DecodeError } from './errors.js';
import { Store, expectDurability, expectPath, type Durability } from './Store.js';

/**
 * Options for {@link QueueFile}.
 *
 * @example
 * ```ts
 * const options: QueueFileOptions<DeadLetter<Hook>> = { path: './dead-letters.db' };
 * ```
 */
export interface QueueFileOptions<E> {
  /** The queue file (a SQLite database); created if missing. Its directory must exist. */
  path: string;
  /**
   * How events are stored; must match the queue that uses the file. Defaults to JSON, with one
   * difference from DurableQueue's default: an `Error` inside an event is stored as
   * `{ name, message, code?, cause? }` (plain JSON would store `{}`), so dead letters keep their
   * error. Both decode with `JSON.parse`, so either can read the other's file.
   */
  codec?: Codec<E>;
  /** What an append survives: `'process'` (the default) or `'power'`. */
  durability?: Durability;
}

/**
 * One stored event and its id, as {@link QueueFile.list} returns it.
 *
 * @example
 * ```ts
 * for (const { id, event } of file.list({ limit: 20 })) console.log(id, event);
 * ```
 */
export interface QueueEntry<E> {
  /** The event's id in the file: increasing in write order, never reused. */
  id: number;
  /** The decoded event. */
  event: E;
}

/**
 * A queue file opened without delivering anything: list, append and remove its events. The
 * same file a {@link DurableQueue} uses (and the same lock: one of them at a time), for tools
 * such as `dlq list` / `dlq replay`, and, being a `Sink` whose `write` stores the event
 * durably, as a persistent dead-letter sink for a `RetryingSink`.
 *
 * Every method is synchronous and durable when it returns (one transaction per call).
 *
 * @example
 * ```ts
 * // A dead-letter store: what the retries gave up on, kept on disk.
 * const dead = new QueueFile<DeadLetter<Hook>>({ path: './dead.db' });
 * const sink = new RetryingSink(httpSink, maxAttempts(new ExponentialBackoff(), 10), {
 *   deadLetter: dead,
 * });
 *
 * // Later, `dlq replay`: open the same file as a DurableQueue; it delivers what it holds.
 * dead.close();
 * const replay: Sink<DeadLetter<Hook>> = { write: (l) => httpSink.write(l.event), close() {} };
 * await new DurableQueue(replay, { path: './dead.db' }).close();
 * ```
 */
export class QueueFile<E> implements Sink<E> {
  /** The queue file's path, as given. */
  readonly path: string;
  readonly #store: Store;
  readonly #codec: Codec<E>;

  /**
   * @param options - see {@link QueueFileOptions}; `path` is required.
   * @throws TypeError naming a bad option; `QueueOpenError` when the file cannot be opened;
   *   `QueueLockedError` when a queue holds it.
   */
  constructor(options: QueueFileOptions<E>) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('Expected `options` to be an object with a `path`');
    }
    const { path, codec, durability = 'process' } = options;
    expectPath(path);
    if (codec !== undefined) expectCodec(codec);
    expectDurability(durability);
    this.#codec = codec ?? (jsonWithErrorsCodec as Codec<E>);
    this.path = path;
    this.#store = new Store(path, durability);
  }

  /** How many events the file holds. @throws SinkClosedError after `close()`. */
  get size(): number {
    this.#check();
    return this.#store.count();
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return !this.#store.open;
  }

  /**
   * Up to `limit` (default 100) events with an id greater than `after` (default 0), oldest
   * first. Page through a large file by passing the last id seen as `after`.
   * @throws DecodeError for a stored event the codec cannot decode (it names the id, so the
   *   row can be removed); SinkClosedError after `close()`.
   */
  list(options: { after?: number; limit?: number } = {}): QueueEntry<E>[] {
    this.#check();
    const { after = 0, limit = 100 } = options;
    expectInteger('after', after, 0);
    expectInteger('limit', limit, 1);
    return this.#store.page(after, limit).map(({ id, data }) => {
      let event: E;
      try {
        event = this.#codec.decode(data);
      } catch (error) {
        throw new DecodeError(id, data, { cause: error });
      }
      return { id, event };
    });
  }

  /**
   * Stores `event` after every other one; returns its id once it is committed.
   * @throws EncodeError (a TypeError) when the codec cannot encode it; nothing is stored.
   */
  append(event: E): number {
    this.#check();
    const data = encodeWith(this.#codec, event);
    return this.#store.append([data])[0]!.id;
  }

  /**
   * Stores `events` after every other one, in one transaction; returns their ids once they are
   * committed. All or nothing.
   * @throws EncodeError (a TypeError) when the codec cannot encode one of them; nothing is stored.
   */
  appendAll(events: readonly E[]): number[] {
    this.#check();
    const data = events.map((event) => encodeWith(this.#codec, event));
    if (data.length === 0) return [];
    return this.#store.append(data).map((row) => row.id);
  }

  /** Same as {@link QueueFile.append}, as a `Sink`: stored durably when it returns. */
  write(event: E): void {
    this.append(event);
  }

  /**
   * Removes the events with these ids, in one transaction; returns how many there were.
   * @throws TypeError when an id is not a positive integer.
   */
  remove(ids: number | readonly number[]): number {
    this.#check();
    const list = typeof ids === 'number' ? [ids] : ids;
    if (!Array.isArray(list)) {
      throw new TypeError(`Expected \`ids\` to be an id or an array of ids, got ${describe(ids)}`);
    }
    for (const id of list) expectInteger('ids', id, 1);
    return this.#store.delete(list);
  }

  /** Closes the file and releases its lock. Idempotent. */
  close(): void {
    this.#store.close();
  }

  /** Same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #check(): void {
    if (!this.#store.open) throw new SinkClosedError('QueueFile is closed');
  }
}
