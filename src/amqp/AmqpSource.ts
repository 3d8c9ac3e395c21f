import type { ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { isSinkClosedError } from '../errors/SinkClosedError.js';
import { onAbort, untilAborted } from '../internal/abort.js';
import { callHook, reportDefault } from '../internal/report.js';
import {
  describe,
  expectInteger,
  expectNonNegative,
  expectOneOf,
  expectOptionalFunction,
  expectSignal,
  expectSink,
} from '../internal/validate.js';
import type { CloseOptions, Sink } from '../Sink.js';
import { expectString } from './AmqpSink.js';
import {
  DEFAULT_URL,
  closeQuietly,
  declareQueue,
  expectUrl,
  noop,
  openConnection,
  withChannel,
  type AmqpConnectionOptions,
} from './connection.js';
import { AmqpConnectionError, AmqpDecodeError } from './errors.js';

/**
 * The queue types an {@link AmqpSource} can declare.
 *
 * @example
 * ```ts
 * const queueType: AmqpQueueType = 'quorum';
 * const source = new AmqpSource(sink, { queue: 'orders', queueType });
 * ```
 */
export type AmqpQueueType = 'classic' | 'quorum';

/**
 * Options for {@link AmqpSource}.
 *
 * @example
 * ```ts
 * const options: AmqpSourceOptions<Order> = {
 *   queue: 'orders.billing', // the group: every source on this queue shares the work
 *   exchange: 'orders',
 *   bindingKey: 'orders.#',
 *   concurrency: 8,
 *   maxDeliveries: 5,
 *   retryDelay: 2_000,
 *   validate: (value): value is Order => typeof (value as Order)?.id === 'string',
 * };
 * ```
 */
export interface AmqpSourceOptions<E> extends AmqpConnectionOptions {
  /**
   * The queue to consume: the consumer group. Every source on one queue gets a share of the
   * messages (competing consumers); each queue bound to an exchange gets every message.
   */
  queue: string;
  /** An exchange to bind `queue` to (declared durable with `exchangeType`); default none. */
  exchange?: string;
  /** The type `exchange` is declared with; default `'topic'`. */
  exchangeType?: string;
  /** The binding key of `queue` on `exchange`; default `'#'` (everything). */
  bindingKey?: string;
  /**
   * The type `queue` is declared with; default `'classic'`. `'quorum'` (RabbitMQ ≥ 3.8)
   * replicates and survives a disk's loss, at some cost in throughput.
   */
  queueType?: AmqpQueueType;
  /** Extra `x-` arguments for declaring `queue` (e.g. `x-max-length`). */
  queueArguments?: Record<string, unknown>;
  /** Declare the exchange, queues and bindings on every (re)connection; default `true`. */
  assertTopology?: boolean;
  /**
   * Events written at once (the channel's prefetch); default 1: each event is written only
   * after the previous write resolved, in queue order.
   */
  concurrency?: number;
  /**
   * Failed writes of one message before it goes to the dead-letter exchange; default 5. Counted
   * in the message's `x-attempts` header (see {@link AmqpSource}).
   */
  maxDeliveries?: number;
  /** How long a message waits before it is written again after a failed write, ms; default 1000. */
  retryDelay?: number;
  /** Where messages go that failed `maxDeliveries` times or cannot be decoded; default `<queue>.dlx`. */
  deadLetterExchange?: string;
  /**
   * A durable queue bound to `deadLetterExchange` that keeps the dead letters; default
   * `<queue>.dlq`; `false` declares none (bind your own).
   */
  deadLetterQueue?: string | false;
  /** Turns a message body into a value; default `JSON.parse` of the UTF-8 text. */
  decode?: (content: Buffer, message: ConsumeMessage) => unknown;
  /** Checks a decoded value's shape; a `false` (or a throw) dead-letters the message. */
  validate?: (value: unknown) => boolean;
  /** Aborting it closes the source, like `close()` without a deadline. */
  signal?: AbortSignal;
  /** First wait before reconnecting after the connection was lost, ms; default 100 (doubles). */
  reconnectDelay?: number;
  /** Longest wait between reconnection attempts, ms; default 5000. */
  maxReconnectDelay?: number;
  /**
   * Told of every failed write (with its event), every dead letter's cause, and every lost or
   * failed connection. Defaults to printing.
   */
  onError?(error: unknown, event?: E): void;
}

interface Subscription {
  model: ChannelModel;
  channel: ConfirmChannel;
  // False once the channel closed: its delivery tags mean nothing on any other channel.
  open: boolean;
  consumerTag: string | undefined;
  closed: Promise<void>;
}

const NAME = 'AmqpSource';
/**
 * The header counting failed writes of a message; it reaches `maxDeliveries` on dead letters.
 *
 * @example
 * ```ts
 * const attempts = deadLetter.properties.headers?.[ATTEMPTS_HEADER]; // e.g. 5
 * ```
 */
export const ATTEMPTS_HEADER = 'x-attempts';
/**
 * The header carrying why a message was dead-lettered (the decoding error, or the last write
 * error after `maxDeliveries`).
 *
 * @example
 * ```ts
 * console.warn('dead letter:', deadLetter.properties.headers?.[REASON_HEADER]);
 * ```
 */
export const REASON_HEADER = 'x-eventsinks-reason';
const QUEUE_TYPES: readonly AmqpQueueType[] = ['classic', 'quorum'];
const MAX_REASON = 1_000;
const ABORTED = AbortSignal.abort();

/**
 * Consumes a RabbitMQ queue and writes each event into a local {@link Sink}, acknowledging a
 * message only after that write resolved (at-least-once).
 *
 * - **Group**: sources on the same `queue` share its messages; the broker redelivers what a
 *   crashed or disconnected consumer held unacknowledged (on channel close) to the others.
 * - **Order**: `concurrency` is the prefetch; with 1 (the default) the next event is written only
 *   after the previous write resolved.
 * - **Retries**: a failed write republishes the message (same body, `messageId`, headers) with
 *   its `x-attempts` header incremented — to `<queue>.retry`, a queue whose messages expire
 *   after `retryDelay` back into `queue`, or straight back into `queue` with `retryDelay` 0 —
 *   and then acknowledges the original. Counting in a header works on every RabbitMQ version
 *   and queue type, and counts only failed writes, not redeliveries caused by reconnections.
 * - **Dead letters**: after `maxDeliveries` failed writes, or at once when `decode`/`validate`
 *   fails, the message is published to `deadLetterExchange` with its reason in the
 *   `x-eventsinks-reason` header and then acknowledged: a poison message never blocks the queue.
 * - **Closed destination**: a write failing with `SinkClosedError` closes the source at once,
 *   without acknowledging: the broker gives the messages to the group's other consumers.
 * - **Recovery**: when the connection or channel is lost the source reconnects with backoff,
 *   declares the topology again and resumes; writes still pending from the lost channel are
 *   not acknowledged (the broker redelivers those messages: duplicates, never losses).
 *
 * @example
 * ```ts
 * const source = new AmqpSource(new Queue(handler), { queue: 'orders', concurrency: 4 });
 * await source.ready; // consuming
 * // later
 * await source.close({ signal: AbortSignal.timeout(10_000) });
 * ```
 */
export class AmqpSource<E> {
  /** Resolves once the source consumes for the first time; rejects if closed before that. */
  readonly ready: Promise<void>;
  readonly #sink: Sink<E>;
  readonly #url: NonNullable<AmqpConnectionOptions['url']>;
  readonly #socketOptions: Record<string, unknown> | undefined;
  readonly #connectTimeout: number;
  readonly #connectFactory: (() => Promise<ChannelModel>) | undefined;
  readonly #queue: string;
  readonly #exchange: string | undefined;
  readonly #exchangeType: string;
  readonly #bindingKey: string;
  readonly #queueType: AmqpQueueType;
  readonly #queueArguments: Record<string, unknown>;
  readonly #assertTopology: boolean;
  readonly #concurrency: number;
  readonly #maxDeliveries: number;
  readonly #retryDelay: number;
  readonly #deadLetterExchange: string;
  readonly #deadLetterQueue: string | false;
  readonly #decode: (content: Buffer, message: ConsumeMessage) => unknown;
  readonly #validate: ((value: unknown) => boolean) | undefined;
  readonly #reconnectDelay: number;
  readonly #maxReconnectDelay: number;
  readonly #onError: (error: unknown, event?: E) => void;
  #subscription: Subscription | undefined;
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #stopping = false;
  // The close deadline passed: writes still pending are never acknowledged.
  #aborted = false;
  #closing: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #resolveReady!: () => void;
  #rejectReady!: (error: unknown) => void;
  #removeSignal: () => void = noop;
  readonly #loop: Promise<void>;

  /**
   * Starts consuming at once (see `ready`).
   * @param sink - where events go; it is not closed by the source (several sources may share it).
   * @param options - see {@link AmqpSourceOptions}.
   * @throws TypeError or RangeError naming a bad option.
   */
  constructor(sink: Sink<E>, options: AmqpSourceOptions<E>) {
    expectSink('sink', sink);
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`Expected \`options\` to be an object, got ${describe(options)}`);
    }
    const {
      url = DEFAULT_URL,
      socketOptions,
      connectTimeout = 10_000,
      connect,
      queue,
      exchange,
      exchangeType = 'topic',
      bindingKey = '#',
      queueType = 'classic',
      queueArguments = {},
      assertTopology = true,
      concurrency = 1,
      maxDeliveries = 5,
      retryDelay = 1000,
      decode,
      validate,
      signal,
      reconnectDelay = 100,
      maxReconnectDelay = 5000,
      onError,
    } = options;
    expectUrl(url);
    expectNonNegative('connectTimeout', connectTimeout);
    expectOptionalFunction('connect', connect);
    expectString('queue', queue);
    if (queue === '') throw new RangeError('Expected `queue` to be a non-empty string, got `""`');
    if (exchange !== undefined) expectString('exchange', exchange);
    expectString('exchangeType', exchangeType);
    expectString('bindingKey', bindingKey);
    expectOneOf('queueType', queueType, QUEUE_TYPES);
    if (typeof queueArguments !== 'object' || queueArguments === null) {
      throw new TypeError(
        `Expected \`queueArguments\` to be an object, got ${describe(queueArguments)}`,
      );
    }
    expectInteger('concurrency', concurrency);
    if (concurrency > 65_535) {
      throw new RangeError(
        `Expected \`concurrency\` to be at most 65535 (an AMQP prefetch), got ${describe(concurrency)}`,
      );
    }
    expectInteger('maxDeliveries', maxDeliveries);
    expectNonNegative('retryDelay', retryDelay);
    const deadLetterExchange = options.deadLetterExchange ?? `${queue}.dlx`;
    expectString('deadLetterExchange', deadLetterExchange);
    const deadLetterQueue = options.deadLetterQueue ?? `${queue}.dlq`;
    if (deadLetterQueue !== false) expectString('deadLetterQueue', deadLetterQueue);
    expectOptionalFunction('decode', decode);
    expectOptionalFunction('validate', validate);
    expectSignal('signal', signal);
    expectNonNegative('reconnectDelay', reconnectDelay);
    expectNonNegative('maxReconnectDelay', maxReconnectDelay);
    expectOptionalFunction('onError', onError);
    this.#sink = sink;
    this.#url = url;
    this.#socketOptions = socketOptions;
    this.#connectTimeout = connectTimeout;
    this.#connectFactory = connect;
    this.#queue = queue;
    this.#exchange = exchange === '' ? undefined : exchange;
    this.#exchangeType = exchangeType;
    this.#bindingKey = bindingKey;
    this.#queueType = queueType;
    this.#queueArguments = queueArguments;
    this.#assertTopology = assertTopology !== false;
    this.#concurrency = concurrency;
    this.#maxDeliveries = maxDeliveries;
    this.#retryDelay = retryDelay;
    this.#deadLetterExchange = deadLetterExchange;
    this.#deadLetterQueue = deadLetterQueue;
    this.#decode = decode ?? jsonDecode;
    this.#validate = validate;
    this.#reconnectDelay = Math.max(reconnectDelay, 1);
    this.#maxReconnectDelay = Math.max(maxReconnectDelay, this.#reconnectDelay);
    this.#onError = onError
      ? (error, event) => callHook(NAME, onError, error, event)
      : (error, event) =>
          reportDefault(NAME, event === undefined ? 'error' : 'a write failed', error);
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // A caller that never awaits `ready` must not get an unhandled rejection from close().
    this.ready.catch(noop);
    this.#removeSignal = onAbort(signal, () => void this.close());
    this.#loop = this.#run();
  }

  /** The queue consumed. */
  get queue(): string {
    return this.#queue;
  }

  /** Writes in progress. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** True while subscribed to the queue on a live channel. */
  get consuming(): boolean {
    return this.#subscription?.open === true && !this.#stopping;
  }

  /**
   * Stops consuming, waits for the writes in progress and acknowledges those that resolved, then
   * closes the connection. Idempotent.
   *
   * With `signal`, when it aborts: writes still pending are abandoned unacknowledged (the
   * connection closes at once, so the broker redelivers their messages) and the promise
   * resolves; a write that resolves later is never acknowledged.
   */
  close(options: CloseOptions = {}): Promise<void> {
    expectSignal('signal', options.signal);
    if (this.#closing) {
      if (options.signal) onAbort(options.signal, () => this.#abort());
      return this.#closing;
    }
    this.#stopping = true;
    this.#removeSignal();
    this.#closing = this.#close(options.signal);
    return this.#closing;
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(signal: AbortSignal | undefined): Promise<void> {
    this.#rejectReady(new AmqpConnectionError('AmqpSource closed before it was consuming'));
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
    const subscription = this.#subscription;
    const cleanup = onAbort(signal, () => this.#abort());
    try {
      if (subscription?.open && subscription.consumerTag !== undefined) {
        // Stop deliveries first; what was delivered before cancel-ok is still written.
        await untilAborted(
          subscription.channel.cancel(subscription.consumerTag).catch(noop),
          signal,
        );
      }
      if (this.#inFlight > 0 && !this.#aborted) {
        await untilAborted(new Promise<void>((resolve) => (this.#idle = resolve)), signal);
        this.#idle = undefined;
      }
    } finally {
      cleanup();
    }
    await this.#drop(this.#subscription);
    await this.#loop;
  }

  #abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    const idle = this.#idle;
    this.#idle = undefined;
    idle?.();
    // Close now, so the broker requeues the abandoned messages for the group's other consumers.
    void this.#drop(this.#subscription);
  }

  async #drop(subscription: Subscription | undefined): Promise<void> {
    if (subscription === undefined) return;
    const wasOpen = subscription.open;
    subscription.open = false;
    // The channel first: amqplib multiplexes channel frames but sends the connection's close
    // directly, so closing the connection at once could overtake the last acks, and the broker
    // would requeue messages whose writes succeeded. channel.close() follows them in order.
    // Racing `closed`: when the socket is already dead, no close-ok will ever come.
    if (wasOpen) await Promise.race([closeQuietly(subscription.channel), subscription.closed]);
    await closeQuietly(subscription.model);
  }

  async #run(): Promise<void> {
    let delay = this.#reconnectDelay;
    while (!this.#stopping) {
      let subscription: Subscription | undefined;
      try {
        subscription = await this.#subscribe();
      } catch (error) {
        if (this.#stopping) break;
        this.#onError(error);
      }
      if (subscription !== undefined) {
        if (this.#stopping) {
          await this.#drop(subscription);
          break;
        }
        this.#subscription = subscription;
        delay = this.#reconnectDelay;
        this.#resolveReady();
        await subscription.closed;
        if (this.#stopping) break;
        // Only the channel may have closed (a channel error): release its connection too.
        await this.#drop(subscription);
        this.#onError(
          new AmqpConnectionError(`lost the channel consuming '${this.#queue}'; reconnecting`),
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
      delay = Math.min(delay * 2, this.#maxReconnectDelay);
    }
  }

  async #subscribe(): Promise<Subscription> {
    const model = await openConnection(
      this.#url,
      this.#socketOptions,
      this.#connectTimeout,
      this.#connectFactory,
    );
    try {
      if (this.#assertTopology) await this.#declare(model);
      let markClosed!: () => void;
      const closed = new Promise<void>((resolve) => (markClosed = resolve));
      const channel = await model.createConfirmChannel();
      const subscription: Subscription = {
        model,
        channel,
        open: true,
        consumerTag: undefined,
        closed,
      };
      const lost = (): void => {
        subscription.open = false;
        markClosed();
      };
      channel.on('error', noop);
      channel.on('close', lost);
      model.on('close', lost);

      await channel.prefetch(this.#concurrency);
      const reply = await channel.consume(
        this.#queue,
        (message) => {
          if (message === null) {
            // The broker cancelled the consumer (queue deleted): reconnect and declare again.
            void this.#drop(subscription);
            return;
          }
          // Consuming: a delivery can arrive (and its write fail with SinkClosedError, which
          // closes the source) before the consume-ok's promise resolves in #run.
          this.#resolveReady();
          void this.#handle(message, subscription);
        },
        { noAck: false },
      );
      subscription.consumerTag = reply.consumerTag;
      return subscription;
    } catch (error) {
      await closeQuietly(model);
      throw new AmqpConnectionError(`cannot consume '${this.#queue}'`, { cause: error });
    }
  }

  async #declare(model: ChannelModel): Promise<void> {
    const queue = this.#queue;
    const dlx = this.#deadLetterExchange;
    const dlq = this.#deadLetterQueue;
    const exchange = this.#exchange;
    await withChannel(model, async (channel) => {
      await channel.assertExchange(dlx, 'fanout', { durable: true });
      if (exchange !== undefined) {
        await channel.assertExchange(exchange, this.#exchangeType, { durable: true });
      }
    });
    if (dlq !== false) {
      await declareQueue(model, dlq, { durable: true });
      await withChannel(model, (channel) => channel.bindQueue(dlq, dlx, ''));
    }
    // No broker-side dead-lettering arguments: the source publishes dead letters itself, with
    // the reason, so a plain durable declaration (the one AmqpSink makes) stays equivalent.
    const args: Record<string, unknown> = {};
    if (this.#queueType === 'quorum') args['x-queue-type'] = 'quorum';
    await declareQueue(model, queue, {
      durable: true,
      arguments: { ...args, ...this.#queueArguments },
    });
    if (this.#retryDelay > 0) {
      await declareQueue(model, retryQueue(queue), {
        durable: true,
        arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': queue },
      });
    }
    if (exchange !== undefined) {
      await withChannel(model, (channel) => channel.bindQueue(queue, exchange, this.#bindingKey));
    }
  }

  async #handle(message: ConsumeMessage, subscription: Subscription): Promise<void> {
    this.#inFlight++;
    try {
      const attempts = attemptsOf(message);
      let event: E;
      try {
        event = this.#decodeMessage(message);
      } catch (error) {
        this.#onError(error);
        await this.#deadLetter(message, subscription, reasonOf(error), attempts);
        return;
      }
      try {
        await this.#sink.write(event);
      } catch (error) {
        if (!this.#ackable(subscription)) return;
        this.#onError(error, event);
        if (isSinkClosedError(error)) {
          // The destination is gone for good: retrying would only walk every message to the
          // dead letter. Stop at once without acknowledging; the broker requeues for the group.
          void this.close({ signal: ABORTED });
          return;
        }
        const failed = attempts + 1;
        if (failed >= this.#maxDeliveries) {
          const reason = `maxDeliveries (${this.#maxDeliveries}) reached; last error: ${reasonOf(error)}`;
          await this.#deadLetter(message, subscription, reason, failed);
        } else {
          await this.#retry(message, subscription, failed, error);
        }
        return;
      }
      if (this.#ackable(subscription)) subscription.channel.ack(message);
    } catch (error) {
      // Publishing the retry or dead letter failed, or the channel closed under an ack: the
      // message stays unacknowledged and the broker redelivers it.
      if (!this.#stopping) this.#onError(error);
    } finally {
      this.#inFlight--;
      if (this.#inFlight === 0) {
        const idle = this.#idle;
        this.#idle = undefined;
        idle?.();
      }
    }
  }

  #ackable(subscription: Subscription): boolean {
    return subscription.open && !this.#aborted;
  }

  #decodeMessage(message: ConsumeMessage): E {
    const id = messageIdOf(message);
    let value: unknown;
    try {
      value = this.#decode(message.content, message);
    } catch (error) {
      throw new AmqpDecodeError(`cannot decode message: ${reasonOf(error)}`, id, { cause: error });
    }
    const validate = this.#validate;
    if (validate !== undefined) {
      let valid: boolean;
      try {
        valid = validate(value);
      } catch (error) {
        throw new AmqpDecodeError(`invalid event: ${reasonOf(error)}`, id, { cause: error });
      }
      if (!valid) {
        throw new AmqpDecodeError(`invalid event: validate() refused ${preview(value)}`, id);
      }
    }
    return value as E;
  }

  async #retry(
    message: ConsumeMessage,
    subscription: Subscription,
    attempts: number,
    error: unknown,
  ): Promise<void> {
    const delayed = this.#retryDelay > 0;
    const options = republishOptions(message, {
      [ATTEMPTS_HEADER]: attempts,
      'x-last-error': reasonOf(error),
    });
    if (delayed) options.expiration = String(Math.ceil(this.#retryDelay));
    const target = delayed ? retryQueue(this.#queue) : this.#queue;
    await publishConfirmed(subscription.channel, '', target, message.content, options);
    if (this.#ackable(subscription)) subscription.channel.ack(message);
  }

  async #deadLetter(
    message: ConsumeMessage,
    subscription: Subscription,
    reason: string,
    attempts: number,
  ): Promise<void> {
    if (!this.#ackable(subscription)) return;
    const options = republishOptions(message, {
      [ATTEMPTS_HEADER]: attempts,
      [REASON_HEADER]: reason,
      'x-original-queue': this.#queue,
      'x-original-exchange': message.fields.exchange,
      'x-original-routing-key': message.fields.routingKey,
    });
    await publishConfirmed(
      subscription.channel,
      this.#deadLetterExchange,
      this.#queue,
      message.content,
      options,
    );
    if (this.#ackable(subscription)) subscription.channel.ack(message);
  }
}

/** @internal The queue holding messages during their retry delay. */
export function retryQueue(queue: string): string {
  return `${queue}.retry`;
}

function attemptsOf(message: ConsumeMessage): number {
  const value = message.properties.headers?.[ATTEMPTS_HEADER] as unknown;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

function messageIdOf(message: ConsumeMessage): string | undefined {
  const id = message.properties.messageId as unknown;
  return typeof id === 'string' ? id : undefined;
}

// A copy of the message's properties for republishing: the same id, body type and headers,
// minus the broker's own dead-lettering history, plus `extra`.
function republishOptions(
  message: ConsumeMessage,
  extra: Record<string, unknown>,
): Options.Publish {
  const headers: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(message.properties.headers ?? {})) {
    if (!/^x-(first-|last-)?death/.test(key)) headers[key] = value;
  }
  Object.assign(headers, extra);
  const options: Options.Publish = { persistent: true, headers };
  const { messageId, contentType, contentEncoding, timestamp, type, correlationId } =
    message.properties as unknown as Record<string, unknown>;
  if (typeof messageId === 'string') options.messageId = messageId;
  if (typeof contentType === 'string') options.contentType = contentType;
  if (typeof contentEncoding === 'string') options.contentEncoding = contentEncoding;
  if (typeof timestamp === 'number') options.timestamp = timestamp;
  if (typeof type === 'string') options.type = type;
  if (typeof correlationId === 'string') options.correlationId = correlationId;
  return options;
}

function publishConfirmed(
  channel: ConfirmChannel,
  exchange: string,
  routingKey: string,
  content: Buffer,
  options: Options.Publish,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    try {
      channel.publish(exchange, routingKey, content, options, (error: unknown) => {
        if (error === null || error === undefined) resolve();
        else
          reject(
            new AmqpConnectionError('republishing a message was not confirmed', { cause: error }),
          );
      });
    } catch (error) {
      reject(new AmqpConnectionError('cannot republish a message', { cause: error }));
    }
  });
}

function jsonDecode(content: Buffer): unknown {
  return JSON.parse(content.toString('utf8'));
}

function reasonOf(error: unknown): string {
  const text =
    error instanceof Error ? `${error.name}: ${error.message}` : `thrown ${describe(error)}`;
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON)}…` : text;
}

function preview(value: unknown): string {
  const shown = describe(value);
  return shown.length > 200 ? `${shown.slice(0, 200)}…` : shown;
}
