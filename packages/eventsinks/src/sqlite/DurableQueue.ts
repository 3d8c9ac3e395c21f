import { SinkClosedError, isSinkClosedError } from '../errors/SinkClosedError.js';
import { abandonOptions } from '../internal/abandon.js';
import { closeWith } from '../internal/close.js';
import { Lifecycle } from '../internal/Lifecycle.js';
import { acceptsBeforeDelivery, setStoredId } from '../internal/durable.js';
import { callHook, reportDefault } from '../internal/report.js';
import { RingBuffer } from '../internal/RingBuffer.js';
import { expectInteger, expectOptionalFunction, expectSink } from '../internal/validate.js';
import type { DropReason } from '../Queue.js';
import { isThenable, type CloseOptions, type Sink } from '../Sink.js';
import { encodeWith, expectCodec, jsonCodec, type Codec } from './codec.js';
import { DecodeError } from './errors.js';
import {
  Store,
  expectDurability,
  expectPath,
  type Durability,
  type Seal,
  type StoredRow,
} from './Store.js';

/**
 * Options for {@link DurableQueue}.
 *
 * @example
 * ```ts
 * const options: DurableQueueOptions<{ id: string }> = {
 *   path: '/var/lib/relay/hooks.db',
 *   durability: 'process',
 *   onError: (error, event) => console.warn('delivery failed', event, error),
 * };
 * ```
 */
export interface DurableQueueOptions<E> {
  /** The queue file (a SQLite database); created if missing. Its directory must exist. */
  path: string;
  /** How events are stored; defaults to JSON (`JSON.stringify` / `JSON.parse`). */
  codec?: Codec<E>;
  /** What a resolved write survives: `'process'` (the default) or `'power'`. */
  durability?: Durability;
  /**
   * How many writes to `dst` may be outstanding at once (a positive integer, default 1). They
   * are issued in order, and an event is removed from the file only once it and every event
   * before it were accepted, so a crash still redelivers rather than loses. Above 1, a sink
   * that works on several at a time (a BatchingSink, a pipelining broker sink) can.
   */
  maxInFlight?: number;
  /**
   * Told of every failed write to the destination; the queue removes that event and goes on
   * with the next. `event` is `undefined` when a stored event could not be decoded (the error
   * is a `DecodeError` carrying its id and stored data). Defaults to printing.
   */
  onError?(error: unknown, event: E | undefined): void;
  /**
   * Accepted so that `QueueOptions` hooks fit, but never called: a DurableQueue drops nothing.
   * Closing with a deadline leaves undelivered events in the file, for the next open.
   */
  onDrop?(event: E, reason: DropReason): void;
}

const NAME = 'DurableQueue';

/** One delivery in issue order: its row, whether it settled, and the event handed to dst. */
interface Slot<E> {
  id: number;
  done: boolean;
  event: E | undefined;
}
// Encoded events kept in memory for delivery; beyond this the file is the only copy and
// delivery reads it back in pages, so a long outage of the destination costs disk, not memory.
const MEMORY_LIMIT = 4096;
const PAGE = 256;
const DELETE_EVERY = 10;

/**
 * A `Queue` whose events survive a crash: each write is stored in a SQLite file before
 * it resolves, and an event leaves the file only once the destination has taken it.
 *
 * - `write(event)` encodes the event at once (an event the codec cannot encode throws an
 *   `EncodeError`, a TypeError, and stores nothing) and returns a promise that resolves once it
 *   is committed to the file. Writes made in the same tick share one transaction (group commit)
 *   and one promise.
 * - Events go to `dst` in write order, each write awaited before the next (with `maxInFlight`,
 *   up to that many outstanding). On open, events left by an earlier run are delivered first:
 *   delivery is at-least-once, an event in flight at a crash may be delivered again, never zero
 *   times.
 * - A failed `dst` write (throw or rejection) goes to `onError` and the event is removed: the
 *   queue goes on, like `Queue`. To retry instead, put a `RetryingSink` below it: its
 *   write settles only once the event is delivered or given up (dead-lettered), and until then
 *   the event stays in the file. A `SinkClosedError` from `dst` is different: the destination is
 *   gone, nothing was delivered, so delivery stops and every event stays in the file.
 * - Each event it delivers carries its stored id, `msg_<file id>_<row id>`, the same on every
 *   attempt and after every restart: a sink below reads it with `durableId(event)` (HttpSink,
 *   WebhookSink and Endpoint send it as their default `webhook-id`).
 * - `dst` must settle each write on delivery: a sink that accepts into memory first would let
 *   the event leave the file undelivered. An `Endpoint` is refused (use a `WebhookSink`).
 * - The file is locked from open to `close()`: a second queue on it, in any process, fails with
 *   `QueueLockedError`. A missing directory, a directory, a non-SQLite or foreign file fail with
 *   `QueueOpenError`, naming the path.
 *
 * Opening is synchronous (better-sqlite3 is), so this is a constructor, not an async `open`.
 *
 * @example
 * ```ts
 * import { RetryingSink, ExponentialBackoff } from 'eventsinks';
 * import { DurableQueue } from 'eventsinks/sqlite';
 *
 * const queue = new DurableQueue(new RetryingSink(httpSink, new ExponentialBackoff()), {
 *   path: './hooks.db',
 * });
 * await queue.write({ action: 'push' }); // on disk now; delivered in the background
 * await queue.close({ signal: AbortSignal.timeout(10_000) }); // undelivered events stay on disk
 * ```
 */
export class DurableQueue<E> implements Sink<E> {
  /** The queue file's path, as given. */
  readonly path: string;
  readonly #store: Store;
  readonly #dst: Sink<E>;
  readonly #codec: Codec<E>;
  readonly #onError: (error: unknown, event: E | undefined) => void;
  // The prefix of every stored id handed down (see durableId): "msg_<file id>_".
  readonly #idPrefix: string;
  // Rows to deliver, in id order. While #complete, they are every row not yet taken for
  // delivery; otherwise the file holds more, after #loadedUpTo, to be read in pages.
  readonly #pending = new RingBuffer<StoredRow>(64);
  #complete: boolean;
  #loadedUpTo = 0;
  #size: number;
  // The group being collected for the next commit, and its shared promise.
  #batch: (string | Uint8Array)[] = [];
  #batchPromise: Promise<void> | undefined;
  #resolveBatch: (() => void) | undefined;
  #rejectBatch: ((error: unknown) => void) | undefined;
  // Every id ≤ #handledUpTo has been delivered (or failed and reported); the file still holds
  // those above #deletedUpTo. Deletes are lazy: losing one to a crash means a redelivery only.
  #handledUpTo = 0;
  #deletedUpTo = 0;
  #deleteTimer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  // A delivery run is queued as a microtask and has not started yet.
  #scheduled = false;
  readonly #maxInFlight: number;
  #inflight = 0;
  // Deliveries in issue order while any is outstanding: the file's watermark may only pass an
  // id once every id before it is done, whatever order the destination settles them in.
  readonly #window = new RingBuffer<Slot<E>>(16);
  // The event being handed to dst right now (its slot is pushed once dst.write returns).
  #issuing: Slot<E> | undefined;
  // Groups sealed by an earlier run and not yet passed, by `first`.
  #seals: Seal[];
  // Delivery stopped for good: close() hit its deadline, or dst reported SinkClosedError.
  #stopped = false;
  // A close deadline stops delivery; what is undelivered stays in the file.
  readonly #life = new Lifecycle(() => this.#stop());

  /**
   * Opens (or creates) the queue file and starts delivering what an earlier run left in it.
   * @param dst - where events go.
   * @param options - see {@link DurableQueueOptions}; `path` is required.
   * @throws TypeError naming a bad option, or when `dst` is an `Endpoint`; `QueueOpenError` when
   *   the file cannot be opened;
   *   `QueueLockedError` when another queue holds it.
   */
  constructor(dst: Sink<E>, options: DurableQueueOptions<E>) {
    expectSink('dst', dst);
    if (acceptsBeforeDelivery(dst)) {
      // Its write settles on acceptance: events would leave the file before delivery, and a
      // crash would lose them.
      throw new TypeError(
        'Expected `dst` to settle each write on delivery, got an Endpoint (it queues events in memory, so they would leave the file undelivered); use a WebhookSink (eventsinks/http) under a DurableQueue',
      );
    }
    if (typeof options !== 'object' || options === null) {
      throw new TypeError('Expected `options` to be an object with a `path`');
    }
    const { path, codec, durability = 'process', maxInFlight = 1, onError, onDrop } = options;
    expectPath(path);
    expectInteger('maxInFlight', maxInFlight);
    if (codec !== undefined) expectCodec(codec);
    expectDurability(durability);
    expectOptionalFunction('onError', onError);
    expectOptionalFunction('onDrop', onDrop);
    this.#dst = dst;
    this.#maxInFlight = maxInFlight;
    this.#codec = codec ?? (jsonCodec as Codec<E>);
    this.#onError = onError
      ? (error, event) => callHook(NAME, onError, error, event)
      : (error, event) =>
          reportDefault(NAME, 'a write to the destination failed', { error, event });
    this.path = path;
    this.#store = new Store(path, durability);
    try {
      this.#idPrefix = `msg_${this.#store.fileId()}_`;
    } catch (error) {
      this.#store.close();
      throw error;
    }
    this.#size = this.#store.count();
    this.#seals = this.#size > 0 ? this.#store.seals() : [];
    this.#complete = this.#size === 0;
    if (this.#size > 0) this.#start();
  }

  /**
   * Events stored and not yet delivered, including the one being delivered and those left in
   * the file by an earlier run. Writes not yet committed are not counted.
   */
  get size(): number {
    return this.#size;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Seals a group of events that this queue handed to `dst` and that are still in flight (a
   * batch about to be attempted for the first time): stores, durably before it returns, that
   * they belong together under `key`. After a restart, {@link DurableQueue.sealedKey} gives
   * each of them that key again, so a `BatchingSink` re-forms the same batch (see its `keyOf`),
   * which keeps its id. Events are known by identity (the objects the queue decoded), so this
   * works for object events only.
   * @throws TypeError when `events` is empty or holds an event not in flight from this queue;
   *   the SQLite error when the commit fails.
   */
  seal(events: readonly E[], key: string): void {
    if (typeof key !== 'string') {
      throw new TypeError(`Expected \`key\` to be a string, got ${typeof key}`);
    }
    let first = Infinity;
    let last = -Infinity;
    for (const event of events) {
      const id = this.#rowOf(event);
      if (id === undefined) {
        throw new TypeError('Expected `events` to be events in flight from this DurableQueue');
      }
      if (id < first) first = id;
      if (id > last) last = id;
    }
    if (first === Infinity) throw new TypeError('Expected `events` not to be empty');
    this.#store.seal(first, last, key);
  }

  /**
   * The key of the sealed group (see {@link DurableQueue.seal}) that `event`, in flight from
   * this queue, was part of in an earlier run; `undefined` for an event that was never sealed.
   */
  sealedKey(event: E): string | undefined {
    const seals = this.#seals;
    if (seals.length === 0) return undefined;
    const id = this.#rowOf(event);
    if (id === undefined) return undefined;
    // Rows are handed out in id order: the groups before this row are passed for good.
    while (seals.length > 0 && seals[0]!.last < id) seals.shift();
    const seal = seals[0];
    return seal !== undefined && seal.first <= id ? seal.key : undefined;
  }

  #rowOf(event: E): number | undefined {
    if (this.#issuing?.event === event) return this.#issuing.id;
    const window = this.#window;
    for (let i = window.length - 1; i >= 0; i--) {
      const slot = window.at(i);
      if (slot.event === event) return slot.id;
    }
    return undefined;
  }

  /**
   * Stores `event`. Resolves once it is committed to the file (with every other write of the
   * same tick, in one transaction); delivery follows in the background.
   * @throws SinkClosedError after `close()`; EncodeError (a TypeError) when the codec cannot
   *   encode the event, in which case nothing is stored. Rejects with the SQLite error when the
   *   commit fails (disk full, I/O error): then no write of that group was stored.
   */
  write(event: E): Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('DurableQueue is closed');
    const data = encodeWith(this.#codec, event);
    this.#batch.push(data);
    // One promise and one scheduled commit per group, not per event.
    return (this.#batchPromise ??= this.#newBatch());
  }

  /**
   * Stops accepting writes, delivers every stored event, closes the file, then closes `dst`.
   * Idempotent.
   *
   * Writes made before `close()` are still committed. With `signal`, when it aborts: delivery
   * stops, whatever is undelivered (including an event whose delivery was in progress) stays in
   * the file for the next open, and is not reported as dropped; `dst` is then closed at once
   * with an aborted signal, and a BatchingSink or RetryingSink below abandons what it holds
   * (no further attempt, no dead letter, no `onDrop`): `close()` does not wait for them.
   * @throws rejects with the error of `dst.close()`, on the first call only.
   */
  close(options: CloseOptions = {}): Promise<void> {
    // A later close's deadline applies to the drain in progress too.
    return this.#life.close(
      options,
      () => this.#drain(),
      (signal) => this.#release(signal),
    );
  }

  /**
   * Takes up to `count` of the oldest stored events that were not yet handed to the
   * destination out of the queue (a bounded queue shedding its oldest events). `keep` receives
   * them first, oldest first, to store them elsewhere (a dead letter); only once it returns are
   * they removed from the file, so a crash in between keeps them in both places rather than in
   * neither. If `keep` throws, nothing is removed and the error propagates. An event being
   * delivered is never taken. Returns how many events were removed.
   * @throws SinkClosedError after `close()`; TypeError when `count` is not a non-negative integer.
   */
  evict(count: number, keep: (events: E[]) => void): number {
    if (this.#life.closed) throw new SinkClosedError('DurableQueue is closed');
    expectInteger('count', count, 0);
    if (count === 0) return 0;
    // The oldest waiting rows are those in memory, then those after #loadedUpTo in the file.
    const inMemory = this.#pending.drain();
    const rows = inMemory.slice(0, count);
    let fromFile: StoredRow[] = [];
    if (rows.length < count && !this.#complete) {
      fromFile = this.#store.page(this.#loadedUpTo, count - rows.length);
      rows.push(...fromFile);
    }
    const events: E[] = [];
    const ids: number[] = [];
    try {
      for (const row of rows) {
        ids.push(row.id);
        try {
          events.push(this.#codec.decode(row.data));
        } catch (error) {
          // As delivery would: reported, and not kept (there is nothing to keep).
          this.#onError(new DecodeError(row.id, row.data, { cause: error }), undefined);
        }
      }
      if (events.length > 0) keep(events);
      this.#store.delete(ids);
    } catch (error) {
      for (const row of inMemory) this.#pending.push(row);
      throw error;
    }
    for (const row of inMemory.slice(rows.length - fromFile.length)) this.#pending.push(row);
    if (fromFile.length > 0) this.#loadedUpTo = fromFile[fromFile.length - 1]!.id;
    this.#size -= ids.length;
    return ids.length;
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #drain(): Promise<void> {
    if (this.#batch.length > 0) this.#commit();
    // Until idle, or until a deadline aborts (#stop, through the lifecycle).
    if (this.#running) await this.#life.untilIdle();
  }

  async #release(signal: AbortSignal | undefined): Promise<void> {
    if (this.#deleteTimer !== undefined) clearTimeout(this.#deleteTimer);
    this.#deleteTimer = undefined;
    try {
      this.#deleteHandled();
    } finally {
      this.#store.close();
    }
    // Past the deadline what is undelivered stays in the file, so the destination is told to
    // abandon it: a BatchingSink stops waiting for its batches, a RetryingSink stops retrying
    // and rejects what it holds (no dead letter, no onDrop: the file keeps those events), and
    // any other sink sees an aborted signal. Closing it without one would wait out every retry.
    if (this.#stopped) await this.#dst.close(abandonOptions());
    else await closeWith(this.#dst, signal);
  }

  #stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#becomeIdle();
  }

  #becomeIdle(): void {
    this.#running = false;
    this.#life.idle();
  }

  #newBatch(): Promise<void> {
    const promise = new Promise<void>((resolve, reject) => {
      this.#resolveBatch = resolve;
      this.#rejectBatch = reject;
    });
    // A microtask: every write of this tick joins the group, and none waits for a macrotask.
    queueMicrotask(this.#commit);
    return promise;
  }

  // An arrow field, handed to queueMicrotask without a bind per group.
  readonly #commit = (): void => {
    const batch = this.#batch;
    const resolve = this.#resolveBatch;
    const reject = this.#rejectBatch;
    if (batch.length === 0) return; // close() committed it already
    this.#batch = [];
    this.#batchPromise = this.#resolveBatch = this.#rejectBatch = undefined;
    let rows: StoredRow[];
    const deleteUpTo = this.#handledUpTo > this.#deletedUpTo ? this.#handledUpTo : 0;
    try {
      rows = this.#store.append(batch, deleteUpTo);
    } catch (error) {
      reject?.(error);
      return;
    }
    if (deleteUpTo > 0) this.#deletedUpTo = deleteUpTo;
    this.#size += rows.length;
    if (this.#complete) {
      if (this.#pending.length + rows.length <= MEMORY_LIMIT) {
        for (const row of rows) this.#pending.push(row);
        this.#loadedUpTo = rows[rows.length - 1]!.id;
      } else {
        this.#complete = false;
      }
    }
    resolve?.();
    if (!this.#stopped && !this.#scheduled && this.#inflight < this.#maxInFlight) this.#start();
  };

  #start(): void {
    this.#running = true;
    this.#scheduled = true;
    // After the writers' continuations: a writer resumes before deliveries run.
    queueMicrotask(this.#run);
  }

  #next(): StoredRow | undefined {
    const pending = this.#pending;
    if (pending.length === 0 && !this.#complete) {
      // Replaying a long backlog: remove what is done before reading on, so that a crash in
      // the middle redelivers at most a page or so, not the whole backlog.
      this.#deleteHandled();
      const rows = this.#store.page(this.#loadedUpTo, PAGE);
      for (const row of rows) pending.push(row);
      if (rows.length > 0) this.#loadedUpTo = rows[rows.length - 1]!.id;
      if (rows.length < PAGE) this.#complete = true;
    }
    return pending.length > 0 ? pending.shift() : undefined;
  }

  readonly #run = (): void => {
    this.#scheduled = false;
    const dst = this.#dst;
    while (!this.#stopped && this.#inflight < this.#maxInFlight) {
      const row = this.#next();
      if (row === undefined) break;
      let event: E;
      try {
        event = this.#codec.decode(row.data);
      } catch (error) {
        this.#onError(new DecodeError(row.id, row.data, { cause: error }), undefined);
        this.#done(row.id);
        continue;
      }
      // Handed down to the sinks below (durableId): the same on every attempt and every run.
      setStoredId(event, this.#idPrefix + String(row.id));
      let result: void | Promise<void>;
      const slot: Slot<E> = { id: row.id, done: false, event };
      this.#issuing = slot;
      try {
        result = dst.write(event);
      } catch (error) {
        this.#issuing = undefined;
        if (!this.#failed(error, event, row.id)) return;
        continue;
      }
      this.#issuing = undefined;
      if (result !== undefined && isThenable(result)) {
        this.#window.push(slot);
        this.#inflight++;
        void this.#awaitWrite(result, event, slot);
        continue;
      }
      this.#done(row.id);
    }
    if (!this.#stopped && this.#inflight === 0) this.#becomeIdle();
  };

  async #awaitWrite(pending: PromiseLike<void>, event: E, slot: Slot<E>): Promise<void> {
    let failure: { error: unknown } | undefined;
    try {
      await pending;
    } catch (error) {
      failure = { error };
    }
    this.#inflight--;
    // After a deadline the file may be closed: the event stays there, for the next open.
    if (this.#stopped) return;
    if (failure !== undefined) {
      this.#onError(failure.error, event);
      if (isSinkClosedError(failure.error)) {
        // Not delivered, and nothing after it can be: keep it all in the file.
        this.#stop();
        return;
      }
    }
    slot.done = true;
    this.#advance();
    this.#run();
  }

  /** Marks a delivery settled that never waited (no slot): in order unless others are out. */
  #done(id: number): void {
    if (this.#window.length === 0) this.#handled(id);
    else this.#window.push({ id, done: true, event: undefined });
  }

  /** Moves the watermark over every settled delivery at the front of the window. */
  #advance(): void {
    const window = this.#window;
    while (window.length > 0 && window.peek().done) this.#handled(window.shift().id);
  }

  /** Reports a failed delivery; returns false when delivery must stop (dst is closed). */
  #failed(error: unknown, event: E, id: number): boolean {
    this.#onError(error, event);
    if (isSinkClosedError(error)) {
      // Not delivered, and nothing after it can be: keep it all in the file.
      this.#stop();
      return false;
    }
    this.#done(id);
    return true;
  }

  #handled(id: number): void {
    this.#size--;
    this.#handledUpTo = id;
    // Coalesced: one delete transaction per DELETE_EVERY ms at most, however fast events go
    // (a commit also takes the deletes along). A delete lost to a crash costs a redelivery only.
    this.#deleteTimer ??= setTimeout(this.#flushDeletes, DELETE_EVERY);
  }

  readonly #flushDeletes = (): void => {
    this.#deleteTimer = undefined;
    this.#deleteHandled();
  };

  #deleteHandled(): void {
    if (this.#handledUpTo <= this.#deletedUpTo || !this.#store.open) return;
    const upTo = this.#handledUpTo;
    try {
      this.#store.deleteUpTo(upTo);
      this.#deletedUpTo = upTo;
    } catch (error) {
      // Harmless for delivery (those events may be delivered again after a restart), but seen.
      reportDefault(NAME, 'removing delivered events from the file failed', error);
    }
  }
}
