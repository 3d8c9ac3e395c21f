import { SinkClosedError } from '../errors/SinkClosedError.js';
import { Lifecycle } from '../internal/Lifecycle.js';
import { RingBuffer } from '../internal/RingBuffer.js';
import { headersFor, type MessageHeaders } from '../internal/headers.js';
import { stableId } from '../internal/messageId.js';
import {
  describe,
  expectInteger,
  expectTimeout,
  expectOptionalFunction,
} from '../internal/validate.js';
import type { CloseOptions, Sink } from '../Sink.js';
import { DATA_FIELD, ID_FIELD, isErrorReply, type RedisStreamClient } from './client.js';
import { RedisStreamPublishError, type RedisStreamPublishFailure } from './errors.js';

// The fields the sink writes itself: a header cannot take their place.
const RESERVED_FIELDS = [ID_FIELD, DATA_FIELD];

/**
 * Options for {@link RedisStreamSink}.
 *
 * @example
 * ```ts
 * const options: RedisStreamSinkOptions<Order> = {
 *   stream: 'orders',
 *   maxInFlight: 64,
 *   maxLen: 1_000_000,
 *   idOf: (order) => order.orderId,
 * };
 * ```
 */
export interface RedisStreamSinkOptions<E> {
  /** The stream key every event is appended to. */
  stream: string;
  /**
   * Most XADDs awaiting their reply at once; default 1 (each write is sent after the previous
   * one was acknowledged, so entries keep write order even across failures). Higher values
   * pipeline writes on the connection for throughput.
   */
  maxInFlight?: number;
  /**
   * Trim the stream to about this many entries on every append (`XADD … MAXLEN ~ n`). Default:
   * no trimming. Trimming drops the oldest entries whether or not every group has read them.
   */
  maxLen?: number;
  /**
   * How long a write waits for its XADD reply before rejecting, in ms; default 5000.
   * `Infinity`: no timeout. 0 is refused (it used to mean no timeout), as in every adapter.
   */
  timeout?: number;
  /**
   * The stable id stored in the entry's `id` field. Give one derived from the event (an order
   * id, an idempotency key) so that a retried write carries the same id and consumers can
   * deduplicate. Default: a random UUID generated once per event object (kept in a
   * `WeakMap`), so writing the same object again (as a `RetryingSink` does) reuses it, as the
   * NATS and AMQP sinks do; primitives get a fresh id per write.
   */
  idOf?(event: E): string;
  /** Turns an event into the entry's `data` field; default `JSON.stringify`. */
  encode?(event: E): string;
  /**
   * Headers of an event (a W3C `traceparent`, a tenant), stored as further fields of its entry
   * after `id` and `data`; `undefined` adds none. A result that is not an object of strings,
   * or that names `id` or `data`, makes `write` throw a `TypeError`.
   */
  headersOf?(event: E): MessageHeaders | undefined;
}

interface Waiting {
  id: string;
  data: string;
  headers: MessageHeaders | undefined;
  resolve(): void;
  reject(error: unknown): void;
  /** When it times out (ms since the epoch), once sent. */
  deadline: number;
  /** Settled: by its reply, an error, or the timeout. */
  done: boolean;
}

const MAX_IN_FLIGHT_DEFAULT = 1;
const TIMEOUT_DEFAULT = 5_000;
const NO_CLIENT_TIMEOUT = { timeout: 0 };

/**
 * Appends each event to a Redis stream with XADD, as an entry `{ id, data }`: `id` the event's
 * stable id, `data` the encoded event.
 *
 * `write` resolves only once Redis replied to the XADD, and rejects with
 * {@link RedisStreamPublishError} when it does not (an error reply, a disconnected or closed
 * client, no reply within `timeout`): never a silent success. A write while the client is not
 * connected rejects at once instead of waiting in node-redis's offline queue. `maxInFlight`
 * (default 1) pipelines writes; writes beyond it wait their turn, in call order.
 *
 * The sink does not own the client: `close()` waits for outstanding replies, then leaves the
 * client open for its owner to close.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * import { RedisStreamSink } from 'eventsinks/redis';
 *
 * const client = createClient({ url: 'redis://127.0.0.1:6379' });
 * client.on('error', (error) => console.error('redis', error));
 * await client.connect();
 *
 * const sink = new RedisStreamSink<Order>(client, { stream: 'orders', idOf: (o) => o.orderId });
 * await sink.write({ orderId: 'o-1', total: 42 }); // resolved: Redis has the entry
 * await sink.close();
 * await client.close();
 * ```
 */
export class RedisStreamSink<E> implements Sink<E> {
  readonly #client: RedisStreamClient;
  readonly #stream: string;
  readonly #maxInFlight: number;
  readonly #timeout: number;
  readonly #idOf: (event: E) => string;
  readonly #encode: (event: E) => string;
  readonly #headersOf: ((event: E) => MessageHeaders | undefined) | undefined;
  // The XADD arguments before the entry id and fields, built once.
  readonly #prefix: readonly string[];
  readonly #waiting = new RingBuffer<Waiting>();
  // Writes sent with a timeout, in send order (so in deadline order); settled ones are dropped
  // lazily when the timer fires.
  readonly #sent = new RingBuffer<Waiting>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight = 0;
  readonly #life = new Lifecycle(() => this.#abort());

  /**
   * @param client - a connected node-redis client (see {@link RedisStreamClient}).
   * @param options - see {@link RedisStreamSinkOptions}.
   * @throws TypeError or RangeError naming a bad option.
   */
  constructor(client: RedisStreamClient, options: RedisStreamSinkOptions<E>) {
    if (typeof client !== 'object' || client === null || typeof client.sendCommand !== 'function') {
      throw new TypeError(`Expected \`client\` to be a node-redis client, got ${describe(client)}`);
    }
    const {
      stream,
      maxInFlight = MAX_IN_FLIGHT_DEFAULT,
      maxLen,
      timeout = TIMEOUT_DEFAULT,
      idOf,
      encode,
      headersOf,
    } = options;
    if (typeof stream !== 'string' || stream.length === 0) {
      throw new TypeError(`Expected \`stream\` to be a non-empty string, got ${describe(stream)}`);
    }
    expectInteger('maxInFlight', maxInFlight);
    if (maxLen !== undefined) expectInteger('maxLen', maxLen, 0);
    expectTimeout('timeout', timeout, true);
    expectOptionalFunction('idOf', idOf);
    expectOptionalFunction('encode', encode);
    expectOptionalFunction('headersOf', headersOf);
    this.#client = client;
    this.#stream = stream;
    this.#maxInFlight = maxInFlight;
    this.#timeout = timeout;
    this.#idOf = idOf ?? stableId;
    this.#encode = encode ?? ((event) => JSON.stringify(event));
    this.#headersOf = headersOf;
    this.#prefix =
      maxLen === undefined ? ['XADD', stream] : ['XADD', stream, 'MAXLEN', '~', String(maxLen)];
  }

  /** The stream key. */
  get stream(): string {
    return this.#stream;
  }

  /** XADDs sent and not yet answered (library-wide: being written now). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Writes held, waiting for a free `maxInFlight` slot (not yet sent). Library-wide, `size` is
   * what a sink holds and has not started writing.
   */
  get size(): number {
    return this.#waiting.length;
  }

  /**
   * Writes waiting for a free `maxInFlight` slot: the same as {@link RedisStreamSink.size}.
   * @deprecated Use `size`. Everywhere else `pending` means accepted and not yet settled
   * (`size + inFlight`); this one keeps its old meaning until it is removed.
   */
  get pending(): number {
    return this.#waiting.length;
  }

  /**
   * Appends `event` to the stream. Resolves once Redis replied to the XADD.
   * @throws SinkClosedError after `close()`; whatever `idOf`, `encode` or `headersOf` throws
   * (synchronously).
   * Rejects with {@link RedisStreamPublishError} when Redis did not acknowledge the entry.
   */
  write(event: E): Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('RedisStreamSink is closed');
    const id = this.#idOf(event);
    const data = this.#encode(event);
    if (typeof data !== 'string') {
      throw new TypeError(`Expected \`encode\` to return a string, got ${describe(data)}`);
    }
    const headers = headersFor(this.#headersOf, event, RESERVED_FIELDS);
    return new Promise<void>((resolve, reject) => {
      const write: Waiting = { id, data, headers, resolve, reject, deadline: 0, done: false };
      // Earlier writes waiting for a slot go first, or this one would overtake them.
      if (this.#inFlight < this.#maxInFlight && this.#waiting.length === 0) this.#send(write);
      else this.#waiting.push(write);
    });
  }

  /**
   * Stops accepting writes and waits until every accepted write was answered (sending those
   * still waiting for a slot). With `signal`, when it aborts: writes not yet sent reject with
   * `SinkClosedError` and the promise resolves without waiting for outstanding replies (they
   * still settle their own writes, by reply or timeout). Idempotent. The client stays open.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#life.close(options, () => this.#drain());
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #drain(): Promise<void> {
    if (this.#inFlight === 0 && this.#waiting.length === 0) return;
    await this.#life.untilIdle();
  }

  #abort(): void {
    for (const write of this.#waiting.drain()) {
      write.reject(new SinkClosedError('RedisStreamSink closed before the event was sent'));
    }
  }

  #send(write: Waiting): void {
    const client = this.#client;
    if (!client.isReady) {
      // node-redis would park the command in its offline queue until a reconnect: a producer
      // must hear now that the broker is unreachable, so it can retry or shed.
      // No slot was taken, so nothing else is due: the caller's loop goes on with the next.
      write.reject(this.#error(client.isOpen ? 'disconnected' : 'closed', write.id));
      return;
    }
    this.#inFlight++;
    write.deadline = Date.now() + this.#timeout;
    if (this.#timeout !== Infinity) {
      this.#sent.push(write);
      if (this.#timer === undefined) this.#arm(this.#timeout);
    }
    const args = this.#prefix.slice();
    args.push('*', ID_FIELD, write.id, DATA_FIELD, write.data);
    if (write.headers !== undefined) {
      for (const name of Object.keys(write.headers)) args.push(name, write.headers[name]!);
    }
    let sent: Promise<unknown>;
    try {
      // The sink keeps its own `timeout`, up to the reply, with one timer for all writes.
      // node-redis's per-command timeout (5 s by default) only covers the wait to be written,
      // and costs an AbortSignal per command: turn it off.
      sent = client.sendCommand(args, NO_CLIENT_TIMEOUT);
    } catch (error) {
      this.#finish(write, this.#classify(error, write.id));
      return;
    }
    sent.then(
      () => this.#finish(write, undefined),
      (error: unknown) => this.#finish(write, this.#classify(error, write.id)),
    );
  }

  #finish(write: Waiting, error: unknown): void {
    if (write.done) return;
    write.done = true;
    this.#inFlight--;
    // Replies come in send order, so the settled writes are at the head: drop them now rather
    // than hold them (and their data) until the timer fires.
    const sent = this.#sent;
    while (sent.length > 0 && sent.peek().done) sent.shift();
    if (error === undefined) write.resolve();
    else write.reject(error);
    this.#settled();
  }

  // One timer for every write in flight, not one per write: all share the same timeout, so
  // deadlines grow in send order and only the oldest unsettled write's deadline matters.
  #arm(ms: number): void {
    this.#timer = setTimeout(this.#onTimer, ms);
    // The sockets keep the process alive while a reply is due; this timer alone must not.
    this.#timer.unref?.();
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    const now = Date.now();
    const sent = this.#sent;
    while (sent.length > 0 && (sent.peek().done || sent.peek().deadline <= now)) {
      const write = sent.shift();
      if (!write.done) this.#finish(write, this.#error('timeout', write.id));
    }
    if (sent.length > 0) this.#arm(Math.max(1, sent.peek().deadline - now));
  };

  // After any write settled: start the next waiting one, or tell a pending close we are idle.
  #settled(): void {
    while (this.#waiting.length > 0 && this.#inFlight < this.#maxInFlight) {
      this.#send(this.#waiting.shift());
    }
    if (this.#inFlight === 0 && this.#waiting.length === 0) this.#life.idle();
  }

  #classify(error: unknown, id: string): RedisStreamPublishError {
    const reason: RedisStreamPublishFailure = isErrorReply(error)
      ? 'rejected'
      : this.#client.isOpen
        ? 'disconnected'
        : 'closed';
    return this.#error(reason, id, error);
  }

  #error(reason: RedisStreamPublishFailure, id: string, cause?: unknown): RedisStreamPublishError {
    return new RedisStreamPublishError(
      reason,
      this.#stream,
      id,
      cause === undefined ? undefined : { cause },
    );
  }
}
