import type { ChannelModel, ConfirmChannel, Message } from 'amqplib';
import { SinkClosedError } from '../errors/SinkClosedError.js';
import { Lifecycle } from '../internal/Lifecycle.js';
import { headersFor, type MessageHeaders } from '../internal/headers.js';
import { stableId } from '../internal/messageId.js';
import { RingBuffer } from '../internal/RingBuffer.js';
import {
  describe,
  expectInteger,
  expectNonNegative,
  expectTimeout,
  expectOptionalFunction,
} from '../internal/validate.js';
import type { CloseOptions, Sink } from '../Sink.js';
import {
  DEFAULT_URL,
  closeQuietly,
  declareQueue,
  expectUrl,
  openConnection,
  withChannel,
  type AmqpConnectionOptions,
} from './connection.js';
import {
  AmqpConnectionError,
  AmqpNackError,
  AmqpTimeoutError,
  AmqpUnroutableError,
} from './errors.js';

/**
 * Options for {@link AmqpSink}.
 *
 * @example
 * ```ts
 * const options: AmqpSinkOptions<Order> = {
 *   url: 'amqp://127.0.0.1',
 *   exchange: 'orders',
 *   routingKey: (order) => `orders.${order.region}`,
 *   maxInFlight: 64,
 *   idOf: (order) => order.id,
 * };
 * ```
 */
export interface AmqpSinkOptions<E> extends AmqpConnectionOptions {
  /** The exchange to publish to; default `''` (the default exchange: routing key = queue name). */
  exchange?: string;
  /** The type `exchange` is declared with (durable) when `assertTopology`; default `'topic'`. */
  exchangeType?: string;
  /**
   * The routing key, or a function of the event; default `queue` (or `''` without a queue).
   */
  routingKey?: string | ((event: E) => string);
  /**
   * A durable queue to declare (and, with a named `exchange`, bind with `routingKey`, or `'#'`
   * when `routingKey` is a function) before the first publish.
   */
  queue?: string;
  /** Declare `exchange` and `queue` (durable) on every (re)connection; default `true`. */
  assertTopology?: boolean;
  /**
   * Most messages published and not yet confirmed; default 1 (each write waits for the previous
   * confirm, so the broker receives events in write order). Raise it for throughput.
   */
  maxInFlight?: number;
  /**
   * How long a write waits for its publisher confirm, in ms; default 30 000. `Infinity`: no
   * timeout. 0 is refused (it used to mean no timeout), as in every adapter.
   */
  timeout?: number;
  /**
   * @deprecated Use {@link AmqpSinkOptions.timeout}, the name every sink uses for the wait for
   * its acknowledgement; give one or the other.
   */
  confirmTimeout?: number;
  /**
   * Publish with `mandatory`, so a message that matches no queue rejects the write with
   * `AmqpUnroutableError` instead of being confirmed and discarded; default `true`.
   */
  mandatory?: boolean;
  /** Turns an event into the message body; default `JSON.stringify` (UTF-8). */
  encode?: (event: E) => Buffer | string;
  /** The message's `contentType`; default `'application/json'`. */
  contentType?: string;
  /**
   * The message id of an event, sent as its `messageId` property, so consumers can deduplicate
   * a retried write. Default: a random UUID generated once per event object (kept in a
   * `WeakMap`, the same mechanism as every other sink's), so writing the same object again (a
   * retry) reuses its id; a primitive event gets a new id on every write.
   */
  idOf?: (event: E) => string;
  /**
   * @deprecated Use {@link AmqpSinkOptions.idOf}, the name every adapter uses; give one or the
   * other.
   */
  messageId?: (event: E) => string;
  /**
   * Headers of an event's message, sent as its `headers` property (a W3C `traceparent`, a
   * tenant); `undefined` sends none. A result that is not an object of strings rejects that
   * write with a `TypeError`.
   */
  headersOf?: (event: E) => MessageHeaders | undefined;
}

interface PendingWrite<E> {
  event: E;
  id: string;
  resolve(): void;
  reject(error: unknown): void;
  // When its confirm is overdue (ms since the epoch); set when published.
  deadline: number;
  settled: boolean;
}

const NACKED = 'message nacked';

/**
 * A sink that publishes each event to RabbitMQ (or any AMQP 0-9-1 broker) as a persistent
 * message on a confirm channel.
 *
 * `write` resolves only once the broker has confirmed the message (`basic.ack`); it rejects
 * with `AmqpNackError` on `basic.nack`, `AmqpTimeoutError` after `timeout`,
 * `AmqpUnroutableError` when a `mandatory` message matched no queue, and `AmqpConnectionError`
 * when the broker is unreachable or the channel closes first: never a silent success. Every
 * message carries a stable `messageId`. With `maxInFlight` 1 (the default) writes are published
 * one after the other in call order; above 1 up to that many wait for confirms at once.
 *
 * The connection is opened on the first write and reopened on the first write after it was
 * lost (topology is declared again each time); writes made while the broker is down reject.
 *
 * @example
 * ```ts
 * const sink = new AmqpSink<Order>({ queue: 'orders', maxInFlight: 16 });
 * await sink.write({ id: 'o-1', total: 42 }); // resolves on the publisher confirm
 * await sink.close(); // waits for outstanding confirms, then closes the connection
 * ```
 */
export class AmqpSink<E> implements Sink<E> {
  readonly #url: NonNullable<AmqpConnectionOptions['url']>;
  readonly #socketOptions: Record<string, unknown> | undefined;
  readonly #connectTimeout: number;
  readonly #connectFactory: (() => Promise<ChannelModel>) | undefined;
  readonly #exchange: string;
  readonly #exchangeType: string;
  readonly #routingKey: string | ((event: E) => string);
  readonly #queue: string | undefined;
  readonly #assertTopology: boolean;
  readonly #maxInFlight: number;
  readonly #confirmTimeout: number;
  readonly #mandatory: boolean;
  readonly #encode: (event: E) => Buffer | string;
  readonly #contentType: string;
  readonly #messageId: (event: E) => string;
  readonly #headersOf: ((event: E) => MessageHeaders | undefined) | undefined;
  readonly #waiting = new RingBuffer<PendingWrite<E>>();
  // messageId → reply text of a basic.return; RabbitMQ sends the return before the confirm.
  readonly #returned = new Map<string, string>();
  #inFlight = 0;
  // Published writes in publish order, for the confirm timeout; settled ones are skipped lazily.
  readonly #timeline = new RingBuffer<PendingWrite<E>>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #model: ChannelModel | undefined;
  #channel: ConfirmChannel | undefined;
  #connecting: Promise<void> | undefined;
  #lastChannelError: unknown;
  readonly #life = new Lifecycle();

  /**
   * @param options - see {@link AmqpSinkOptions}.
   * @throws TypeError or RangeError naming a bad option.
   */
  constructor(options: AmqpSinkOptions<E> = {}) {
    const {
      url = DEFAULT_URL,
      socketOptions,
      connectTimeout = 10_000,
      exchange = '',
      exchangeType = 'topic',
      queue,
      assertTopology = true,
      maxInFlight = 1,
      timeout,
      confirmTimeout,
      mandatory = true,
      encode,
      contentType = 'application/json',
      idOf,
      messageId,
      headersOf,
      connect,
    } = options;
    expectUrl(url);
    expectOptionalFunction('connect', connect);
    expectNonNegative('connectTimeout', connectTimeout);
    expectString('exchange', exchange);
    expectString('exchangeType', exchangeType);
    if (queue !== undefined) expectString('queue', queue);
    const routingKey = options.routingKey ?? queue ?? '';
    if (typeof routingKey !== 'function') expectString('routingKey', routingKey);
    expectInteger('maxInFlight', maxInFlight);
    if (timeout !== undefined && confirmTimeout !== undefined) {
      throw new TypeError('Expected one of `timeout` and `confirmTimeout` (deprecated), got both');
    }
    if (confirmTimeout !== undefined) expectTimeout('confirmTimeout', confirmTimeout, true);
    const confirmWait = timeout ?? confirmTimeout ?? 30_000;
    expectTimeout('timeout', confirmWait, true);
    expectOptionalFunction('encode', encode);
    expectOptionalFunction('idOf', idOf);
    expectOptionalFunction('messageId', messageId);
    expectOptionalFunction('headersOf', headersOf);
    if (idOf !== undefined && messageId !== undefined) {
      throw new TypeError('Expected one of `idOf` and `messageId` (deprecated), got both');
    }
    expectString('contentType', contentType);
    this.#url = url;
    this.#socketOptions = socketOptions;
    this.#connectTimeout = connectTimeout;
    this.#connectFactory = connect;
    this.#exchange = exchange;
    this.#exchangeType = exchangeType;
    this.#routingKey = routingKey;
    this.#queue = queue;
    this.#assertTopology = assertTopology !== false;
    this.#maxInFlight = maxInFlight;
    this.#confirmTimeout = confirmWait;
    this.#mandatory = mandatory !== false;
    this.#encode = encode ?? jsonEncode;
    this.#contentType = contentType;
    this.#messageId = idOf ?? messageId ?? stableId;
    this.#headersOf = headersOf;
  }

  /** Writes published and not yet confirmed (library-wide: being written now). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Writes held, waiting for a channel or a free `maxInFlight` slot (not yet published).
   * Library-wide, `size` is what a sink holds and has not started writing.
   */
  get size(): number {
    return this.#waiting.length;
  }

  /** Writes accepted and not yet settled: `size + inFlight`. */
  get pending(): number {
    return this.#waiting.length + this.#inFlight;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Publishes `event`; the promise resolves when the broker confirms it.
   * @throws SinkClosedError after `close()` (synchronously); the promise rejects with
   * `AmqpConnectionError`, `AmqpNackError`, `AmqpTimeoutError` or `AmqpUnroutableError`, or with
   * what `encode`/`idOf`/`routingKey`/`headersOf` threw.
   */
  write(event: E): Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('AmqpSink is closed');
    return new Promise<void>((resolve, reject) => {
      // A throwing idOf() rejects this promise: the executor turns throws into rejections.
      const id = this.#messageId(event);
      this.#waiting.push({ event, id, resolve, reject, deadline: 0, settled: false });
      this.#pump();
    });
  }

  /**
   * Stops accepting writes, publishes those already accepted, waits for every outstanding
   * confirm, then closes the connection. Idempotent.
   *
   * With `signal`, when it aborts: writes not yet published reject with `SinkClosedError`, the
   * connection is closed at once and unconfirmed writes reject with `AmqpConnectionError`.
   */
  close(options: CloseOptions = {}): Promise<void> {
    // A later close's signal cuts the wait short too.
    return this.#life.close(
      options,
      () => (this.#busy() ? this.#life.untilIdle() : undefined),
      () => this.#release(),
    );
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #release(): Promise<void> {
    const error = new SinkClosedError('AmqpSink closed before the event was published');
    for (const pending of this.#waiting.drain()) this.#settle(pending, error);
    const model = this.#model;
    this.#model = undefined;
    this.#channel = undefined;
    // Closing the connection fails every unconfirmed publish through amqplib's callbacks.
    await closeQuietly(model);
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#waiting.length > 0) {
      const channel = this.#channel;
      if (channel === undefined) {
        this.#connect();
        return;
      }
      this.#publish(channel, this.#waiting.shift());
    }
    this.#checkIdle();
  }

  #busy(): boolean {
    return this.#inFlight > 0 || this.#waiting.length > 0 || this.#connecting !== undefined;
  }

  #checkIdle(): void {
    if (!this.#busy()) this.#life.idle();
  }

  #connect(): void {
    if (this.#connecting) return;
    this.#connecting = this.#open().then(
      (channel) => {
        this.#connecting = undefined;
        this.#channel = channel;
        this.#pump();
      },
      (error: unknown) => {
        this.#connecting = undefined;
        // The broker is unreachable: every write waiting for a channel fails now rather than
        // hanging; the next write tries again.
        const failure =
          error instanceof AmqpConnectionError
            ? error
            : new AmqpConnectionError('cannot open a confirm channel', { cause: error });
        for (const pending of this.#waiting.drain()) this.#settle(pending, failure);
        this.#checkIdle();
      },
    );
  }

  async #open(): Promise<ConfirmChannel> {
    let model = this.#model;
    if (model === undefined) {
      model = await openConnection(
        this.#url,
        this.#socketOptions,
        this.#connectTimeout,
        this.#connectFactory,
      );
      // close() gave up (its deadline passed) while this connection was being opened.
      if (this.#life.closed && this.#waiting.length === 0) {
        await closeQuietly(model);
        throw new SinkClosedError('AmqpSink is closed');
      }
      this.#model = model;
      const opened = model;
      model.on('close', () => {
        if (this.#model === opened) {
          this.#model = undefined;
          this.#channel = undefined;
        }
      });
    }
    if (this.#assertTopology) {
      try {
        await this.#declare(model);
      } catch (error) {
        throw new AmqpConnectionError('declaring the topology failed', { cause: error });
      }
    }
    let channel: ConfirmChannel;
    try {
      channel = await model.createConfirmChannel();
    } catch (error) {
      // The connection is unusable: drop it so the next attempt starts afresh.
      if (this.#model === model) this.#model = undefined;
      await closeQuietly(model);
      throw new AmqpConnectionError('cannot open a confirm channel', { cause: error });
    }
    this.#lastChannelError = undefined;
    channel.on('error', (error: unknown) => (this.#lastChannelError = error));
    channel.on('return', (message: Message) => {
      const id = message.properties.messageId as unknown;
      const fields = message.fields as { replyText?: string };
      if (typeof id === 'string') this.#returned.set(id, fields.replyText ?? 'NO_ROUTE');
    });
    channel.on('close', () => {
      if (this.#channel === channel) this.#channel = undefined;
    });
    return channel;
  }

  async #declare(model: ChannelModel): Promise<void> {
    const exchange = this.#exchange;
    const queue = this.#queue;
    if (exchange !== '') {
      await withChannel(model, (channel) =>
        channel.assertExchange(exchange, this.#exchangeType, { durable: true }),
      );
    }
    if (queue === undefined) return;
    await declareQueue(model, queue, { durable: true });
    if (exchange !== '') {
      const key = typeof this.#routingKey === 'string' ? this.#routingKey : '#';
      await withChannel(model, (channel) => channel.bindQueue(queue, exchange, key));
    }
  }

  #publish(channel: ConfirmChannel, pending: PendingWrite<E>): void {
    const { event, id } = pending;
    let content: Buffer;
    let routingKey: string;
    let headers: MessageHeaders | undefined;
    try {
      const encoded = this.#encode(event);
      content = typeof encoded === 'string' ? Buffer.from(encoded) : encoded;
      routingKey =
        typeof this.#routingKey === 'string' ? this.#routingKey : this.#routingKey(event);
      headers = headersFor(this.#headersOf, event);
    } catch (error) {
      this.#settle(pending, error);
      return;
    }
    this.#inFlight++;
    const exchange = this.#exchange;
    if (this.#confirmTimeout !== Infinity) {
      // One timer for all in-flight writes, not one per write: the timeout is the same for
      // every write, so deadlines grow in publish order and the oldest one is the next due.
      pending.deadline = Date.now() + this.#confirmTimeout;
      this.#timeline.push(pending);
      this.#timer ??= setTimeout(this.#expire, this.#confirmTimeout);
    }
    try {
      channel.publish(
        exchange,
        routingKey,
        content,
        {
          persistent: true,
          messageId: id,
          mandatory: this.#mandatory,
          contentType: this.#contentType,
          timestamp: Date.now(),
          ...(headers !== undefined ? { headers } : {}),
        },
        (error: unknown) => {
          if (error === null || error === undefined) {
            const returned = this.#returned.get(id);
            if (returned === undefined) return this.#finish(pending, undefined);
            this.#returned.delete(id);
            return this.#finish(
              pending,
              new AmqpUnroutableError(id, exchange, routingKey, returned),
            );
          }
          this.#returned.delete(id);
          const nacked = error instanceof Error && error.message === NACKED;
          this.#finish(
            pending,
            nacked
              ? new AmqpNackError(id, { cause: error })
              : new AmqpConnectionError(`the channel closed before message ${id} was confirmed`, {
                  cause: this.#lastChannelError ?? error,
                  messageId: id,
                }),
          );
        },
      );
    } catch (error) {
      // amqplib throws synchronously when the channel is already closing or closed.
      if (this.#channel === channel) this.#channel = undefined;
      this.#finish(
        pending,
        new AmqpConnectionError(`cannot publish message ${id}: the channel is closed`, {
          cause: error,
          messageId: id,
        }),
      );
    }
  }

  // Fails every in-flight write whose confirm is overdue, then waits for the next deadline.
  readonly #expire = (): void => {
    this.#timer = undefined;
    const timeline = this.#timeline;
    const now = Date.now();
    while (timeline.length > 0) {
      const oldest = timeline.peek();
      if (!oldest.settled && oldest.deadline > now) break;
      timeline.shift();
      if (!oldest.settled)
        this.#finish(oldest, new AmqpTimeoutError(oldest.id, this.#confirmTimeout));
    }
    if (timeline.length > 0) {
      this.#timer = setTimeout(this.#expire, Math.max(timeline.peek().deadline - now, 1));
    }
  };

  // Settles an in-flight write once (a timed-out message may still be confirmed later).
  #finish(pending: PendingWrite<E>, error: unknown): void {
    if (pending.settled) return;
    this.#inFlight--;
    this.#settle(pending, error);
    // Confirms come in publish order, so this usually empties the timeline's head at once and
    // settled writes (and their events) are not kept until the timer fires.
    const timeline = this.#timeline;
    while (timeline.length > 0 && timeline.peek().settled) timeline.shift();
    this.#pump();
  }

  #settle(pending: PendingWrite<E>, error: unknown): void {
    if (pending.settled) return;
    pending.settled = true;
    if (error === undefined) pending.resolve();
    else pending.reject(error);
  }
}

function jsonEncode(event: unknown): Buffer {
  const json = JSON.stringify(event);
  if (json === undefined) {
    throw new TypeError(`Cannot encode ${describe(event)} as JSON`);
  }
  return Buffer.from(json);
}

/** @internal */
export function expectString(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') {
    throw new TypeError(`Expected \`${name}\` to be a string, got ${describe(value)}`);
  }
}
