import type { ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { BrokerSourceEngine, validateDeliveryOptions } from '../internal/BrokerSourceEngine.js';
import { noop } from '../internal/close.js';
import { reasonOf } from '../internal/errorText.js';
import { isValid, type Validator } from '../internal/validator.js';
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
  openConnection,
  withChannel,
  type AmqpConnectionOptions,
} from './connection.js';
import { AmqpConnectionError, AmqpDecodeError, isAmqpDecodeError } from './errors.js';

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
   * Failed writes of one message before it goes to the dead-letter exchange; default 5;
   * `Infinity` retries for ever. Only failed writes count (in the message's `x-attempts`
   * header, see {@link AmqpSource}): a redelivery after a crash or a reconnection never does.
   */
  maxDeliveries?: number;
  /**
   * How long a message waits before it is written again after a failed write, ms, or a function
   * of the failed writes so far; default 1000. It waits in the retry queue, not in a write slot:
   * other messages go on meanwhile. (A per-message TTL expires at the head of the retry queue
   * only, so with a function a short delay can wait behind a longer one.)
   */
  retryDelay?: number | ((failures: number) => number);
  /** Where messages go that failed `maxDeliveries` times or cannot be decoded; default `<queue>.dlx`. */
  deadLetterExchange?: string;
  /**
   * A durable queue bound to `deadLetterExchange` that keeps the dead letters; default
   * `<queue>.dlq`; `false` declares none (bind your own).
   */
  deadLetterQueue?: string | false;
  /** Turns a message body into a value; default `JSON.parse` of the UTF-8 text. */
  decode?: (content: Buffer, message: ConsumeMessage) => unknown;
  /**
   * Checks a decoded value's shape, preferably as a type guard; a `false` (or a throw)
   * dead-letters the message. A plain boolean function is accepted too.
   */
  validate?: ((value: unknown) => value is E) | ((value: unknown) => boolean);
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
  /** Told of every message moved to the dead-letter exchange (as the other sources are). */
  onDeadLetter?(letter: AmqpDeadLetter): void;
}

/**
 * What {@link AmqpSourceOptions.onDeadLetter} is told about each message the source moved to
 * the dead-letter exchange (after the broker confirmed the dead letter).
 *
 * @example
 * ```ts
 * const onDeadLetter = (letter: AmqpDeadLetter) =>
 *   console.error(`dead-lettered ${letter.messageId} after ${letter.deliveries} failed writes`, letter.error);
 * ```
 */
export interface AmqpDeadLetter {
  /** The decode error ({@link AmqpDecodeError}), or the error of the last failed write. */
  error: unknown;
  /** The decoded event, when decoding succeeded. */
  event: unknown;
  /** The raw body, byte for byte. */
  data: Buffer;
  /** The message's `messageId`, when it had one. */
  messageId: string | undefined;
  /** The queue it was consumed from. */
  queue: string;
  /** Failed writes of the message (0 for one that could not be decoded). */
  deliveries: number;
  /** The exchange the dead letter was published to. */
  deadLetterExchange: string;
}

interface Delivery {
  message: ConsumeMessage;
  subscription: Subscription;
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

/**
 * Consumes a RabbitMQ queue and writes each event into a local {@link Sink}, acknowledging a
 * message only after that write resolved (at-least-once). Runs on the same engine as
 * `RedisStreamSource` and `JetStreamSource`, with the same option meanings.
 *
 * - **Start**: in the constructor; `ready` resolves once the source consumes.
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
 * - **Closed destination**: a write failing with `SinkClosedError` hands its message back
 *   (requeued, unacknowledged) and closes the source: the broker gives the messages to the
 *   group's other consumers.
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
  readonly #engine: BrokerSourceEngine<Delivery, E>;
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
  readonly #retryQueue: boolean;
  readonly #deadLetterExchange: string;
  readonly #deadLetterQueue: string | false;
  readonly #decode: (content: Buffer, message: ConsumeMessage) => unknown;
  readonly #validate: Validator<E> | undefined;
  readonly #onDeadLetter: ((letter: AmqpDeadLetter) => void) | undefined;
  #subscription: Subscription | undefined;
  // close() was called: the subscription in progress ends its fetch round.
  #interrupted: (() => void) | undefined;

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
      onDeadLetter,
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
    validateDeliveryOptions(maxDeliveries, retryDelay);
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
    expectOptionalFunction('onDeadLetter', onDeadLetter);
    this.#onDeadLetter = onDeadLetter;
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
    this.#retryQueue = typeof retryDelay === 'function' || retryDelay > 0;
    this.#deadLetterExchange = deadLetterExchange;
    this.#deadLetterQueue = deadLetterQueue;
    this.#decode = decode ?? jsonDecode;
    this.#validate = validate;
    const base = Math.max(reconnectDelay, 1);
    this.#engine = new BrokerSourceEngine<Delivery, E>(
      sink,
      {
        fetch: () => this.#consume(),
        recover: () => 'report',
        decode: ({ message }) => this.#decodeMessage(message),
        key: ({ message }) => `${message.fields.deliveryTag}`,
        failures: ({ message }) => attemptsOf(message),
        ack: ({ message, subscription }) => {
          if (this.#ackable(subscription)) subscription.channel.ack(message);
        },
        retry: (delivery, delay, failures, error) => this.#retry(delivery, delay, failures, error),
        deadLetter: (delivery, error, event, failures) =>
          this.#deadLetter(delivery, error, event, failures),
        handBack: (deliveries) => {
          // Requeued for the group: the consumer was cancelled first (interrupt), so the broker
          // does not hand them straight back to this source.
          for (const { message, subscription } of deliveries) {
            if (this.#ackable(subscription)) subscription.channel.nack(message, false, true);
          }
        },
        // Close now, so the broker requeues the abandoned messages for the group's other
        // consumers.
        abandon: () => void this.#drop(this.#subscription),
        interrupt: () => this.#interrupt(),
        shutdown: () => this.#drop(this.#subscription),
      },
      {
        name: NAME,
        concurrency,
        // The broker's prefetch (`concurrency`) bounds what is held.
        limit: Infinity,
        maxDeliveries,
        retryDelay,
        heartbeat: 0,
        backoff: { base, max: Math.max(maxReconnectDelay, base) },
        onError: onError
          ? (error, event) => callHook(NAME, onError, error, event)
          : (error, event) =>
              reportDefault(NAME, event === undefined ? 'error' : 'a write failed', error),
        signal,
        closedBeforeReady: () =>
          new AmqpConnectionError('AmqpSource closed before it was consuming'),
      },
    );
    this.ready = this.#engine.ready;
    this.#engine.start();
  }

  /** The queue consumed. */
  get queue(): string {
    return this.#queue;
  }

  /** Writes in progress. */
  get inFlight(): number {
    return this.#engine.writing;
  }

  /** True while subscribed to the queue on a live channel. */
  get consuming(): boolean {
    return this.#subscription?.open === true && !this.#engine.stopping;
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
    return this.#engine.close(options);
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #interrupt(): void {
    const subscription = this.#subscription;
    // Stop deliveries first; what was delivered before cancel-ok is handed back.
    if (subscription?.open && subscription.consumerTag !== undefined) {
      subscription.channel.cancel(subscription.consumerTag).catch(noop);
    }
    this.#interrupted?.();
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

  /** One fetch round: subscribes, and resolves when close() interrupts (throws when lost). */
  async #consume(): Promise<void> {
    const subscription = await this.#subscribe();
    if (this.#engine.stopping) {
      await this.#drop(subscription);
      return;
    }
    this.#subscription = subscription;
    this.#engine.connected();
    this.#engine.markReady();
    const interrupted = new Promise<void>((resolve) => (this.#interrupted = resolve));
    await Promise.race([subscription.closed, interrupted]);
    this.#interrupted = undefined;
    // Closing: the subscription stays open for the acknowledgements of the writes in progress.
    if (this.#engine.stopping) return;
    // Only the channel may have closed (a channel error): release its connection too.
    await this.#drop(subscription);
    throw new AmqpConnectionError(`lost the channel consuming '${this.#queue}'; reconnecting`);
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
          // closes the source) before the consume-ok's promise resolves in #consume.
          this.#engine.markReady();
          this.#engine.accept({ message, subscription });
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
    if (this.#retryQueue) {
      await declareQueue(model, retryQueue(queue), {
        durable: true,
        arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': queue },
      });
    }
    if (exchange !== undefined) {
      await withChannel(model, (channel) => channel.bindQueue(queue, exchange, this.#bindingKey));
    }
  }

  #ackable(subscription: Subscription): boolean {
    return subscription.open && !this.#engine.aborted;
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
    // Without `validate` the decoded value is trusted to be an E.
    if (validate === undefined) return value as E;
    try {
      if (isValid(validate, value)) return value;
    } catch (error) {
      throw new AmqpDecodeError(`invalid event: ${reasonOf(error)}`, id, { cause: error });
    }
    throw new AmqpDecodeError(`invalid event: validate() refused ${preview(value)}`, id);
  }

  async #retry(
    { message, subscription }: Delivery,
    delay: number,
    attempts: number,
    error: unknown,
  ): Promise<void> {
    if (!this.#ackable(subscription)) return;
    const delayed = this.#retryQueue && delay > 0;
    const options = republishOptions(message, {
      [ATTEMPTS_HEADER]: attempts,
      'x-last-error': reasonOf(error),
    });
    if (delayed) options.expiration = String(Math.ceil(delay));
    const target = delayed ? retryQueue(this.#queue) : this.#queue;
    await publishConfirmed(subscription.channel, '', target, message.content, options);
    if (this.#ackable(subscription)) subscription.channel.ack(message);
  }

  async #deadLetter(
    { message, subscription }: Delivery,
    error: unknown,
    event: unknown,
    attempts: number,
  ): Promise<void> {
    if (!this.#ackable(subscription)) return;
    const reason = isAmqpDecodeError(error)
      ? reasonOf(error)
      : `maxDeliveries (${this.#maxDeliveries}) reached; last error: ${reasonOf(error)}`;
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
    if (this.#onDeadLetter) {
      callHook(NAME, this.#onDeadLetter, {
        error,
        event,
        data: message.content,
        messageId: messageIdOf(message),
        queue: this.#queue,
        deliveries: attempts,
        deadLetterExchange: this.#deadLetterExchange,
      });
    }
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

function preview(value: unknown): string {
  const shown = describe(value);
  return shown.length > 200 ? `${shown.slice(0, 200)}…` : shown;
}
