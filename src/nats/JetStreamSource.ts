import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { headers, nanos } from '@nats-io/transport-node';
import { isSinkClosedError } from '../errors/SinkClosedError.js';
import { onAbort } from '../internal/abort.js';
import { callHook, reportDefault } from '../internal/report.js';
import { RingBuffer } from '../internal/RingBuffer.js';
import {
  describe,
  expectFunction,
  expectInteger,
  expectNonNegative,
  expectOneOf,
  expectOptionalFunction,
  expectSignal,
  expectSink,
} from '../internal/validate.js';
import type { CloseOptions, Sink } from '../Sink.js';
import {
  resolveConnection,
  validateConnectionOptions,
  type NatsConnectionOptions,
  type ResolvedConnection,
} from './connection.js';
import { ensureWith, isApiError, validateStreamSpec, type StreamSpec } from './ensureStream.js';
import { JetStreamDecodeError } from './errors.js';

/**
 * Why a {@link JetStreamSource} dead-lettered a message: it could not be decoded (not JSON, or
 * refused by `validate`), or its write failed on delivery `maxDeliveries` or later.
 *
 * @example
 * ```ts
 * const retryable = (reason: JetStreamDeadLetterReason) => reason === 'max-deliveries';
 * ```
 */
export type JetStreamDeadLetterReason = 'decode' | 'max-deliveries';

/**
 * What a {@link JetStreamSource} tells `onDeadLetter` about each message it gives up on. The
 * same facts travel as headers of the copy published to `deadLetterSubject`
 * (see {@link DEAD_LETTER_HEADERS}).
 *
 * @example
 * ```ts
 * const onDeadLetter = (letter: JetStreamDeadLetter) =>
 *   console.error(`gave up on ${letter.stream}#${letter.streamSequence}: ${letter.reason}`, letter.error);
 * ```
 */
export interface JetStreamDeadLetter {
  /** Why it was dead-lettered. */
  reason: JetStreamDeadLetterReason;
  /** The decode error, or the error of the last failed write. */
  error: unknown;
  /** The decoded event, when decoding succeeded. */
  event: unknown;
  /** The raw payload. */
  data: Uint8Array;
  /** The subject the message was published to. */
  subject: string;
  /** The stream the message came from. */
  stream: string;
  /** The message's sequence in that stream. */
  streamSequence: number;
  /** The durable consumer that gave up. */
  durable: string;
  /** How many times JetStream delivered it (this delivery included). */
  deliveries: number;
  /** Its `Nats-Msg-Id`, if it had one. */
  msgId: string | undefined;
}

/**
 * Header names on messages published to `deadLetterSubject`. The payload is the original one,
 * byte for byte; the dead-letter copy's own `Nats-Msg-Id` is
 * `dlq:<stream>:<durable>:<sequence>`, so a dead letter published twice is stored once.
 *
 * @example
 * ```ts
 * const reason = deadLetterMsg.headers?.get(DEAD_LETTER_HEADERS.reason); // 'decode' | 'max-deliveries'
 * ```
 */
export const DEAD_LETTER_HEADERS = {
  /** `'decode'` or `'max-deliveries'` ({@link JetStreamDeadLetterReason}). */
  reason: 'Eventsinks-Dead-Letter-Reason',
  /** The error, as `Name: message` on one line (at most 1024 characters). */
  error: 'Eventsinks-Error',
  /** The stream the original came from. */
  stream: 'Eventsinks-Stream',
  /** The durable consumer that gave up. */
  durable: 'Eventsinks-Durable',
  /** The subject the original was published to. */
  subject: 'Eventsinks-Subject',
  /** The original's stream sequence. */
  sequence: 'Eventsinks-Sequence',
  /** How many times it was delivered. */
  deliveries: 'Eventsinks-Deliveries',
  /** The original's `Nats-Msg-Id`, when it had one. */
  msgId: 'Eventsinks-Msg-Id',
} as const;

/**
 * Options for {@link JetStreamSource}.
 *
 * @example
 * ```ts
 * const options: JetStreamSourceOptions<Order> = {
 *   connection,
 *   stream: 'ORDERS',
 *   durable: 'billing',
 *   filterSubject: 'orders.created',
 *   concurrency: 8,
 *   maxDeliveries: 5,
 *   retryDelay: (deliveries) => Math.min(1000 * 2 ** deliveries, 30_000),
 *   deadLetterSubject: 'dlq.orders',
 *   validate: (value): value is Order => typeof value === 'object' && value !== null && 'id' in value,
 * };
 * ```
 */
export interface JetStreamSourceOptions<E> extends NatsConnectionOptions {
  /** The stream to consume. */
  stream: string;
  /**
   * The durable pull consumer. Sources with the same durable share its messages (each message
   * goes to one of them); each durable receives every message. Created if missing (with
   * explicit acks and the options below); an existing durable is used as it is configured.
   */
  durable: string;
  /** Consume only this subject (one subject filter: NATS 2.9 has no multi-filter consumers). */
  filterSubject?: string;
  /** Where a new durable starts: `'all'` (default) or `'new'` (only messages published later). */
  deliverPolicy?: 'all' | 'new';
  /** Writes to the destination at once; default 1: each event waits for the previous write. */
  concurrency?: number;
  /**
   * Messages fetched ahead of the writes in progress; default 64. Fetched messages are held
   * (kept alive with `working()`) until written; more means fewer fetch round trips, fewer means
   * fairer sharing between the sources of one durable and less to hand back on close.
   */
  prefetch?: number;
  /**
   * The new durable's `ack_wait`, in ms; default 30 000. A message not acknowledged in time
   * (its source crashed) is redelivered to another source. While a write is slow the source
   * sends `working()` every `ackWait / 3` ms, so a live source keeps its messages. A write that
   * never settles therefore holds its message for as long as the source runs: put a
   * `TimeoutSink` in front of a destination that can hang.
   */
  ackWait?: number;
  /**
   * A write that fails on this delivery or a later one sends the message to the dead letter
   * instead of retrying; default 5. `Infinity` retries forever. JetStream counts every delivery,
   * including redeliveries after a crash or a hand-back on close; a message is dead-lettered
   * only when a write of it actually failed.
   */
  maxDeliveries?: number;
  /** Delay before a failed message is redelivered, in ms, or a function of the delivery count. Default 1000. */
  retryDelay?: number | ((deliveries: number) => number);
  /**
   * A subject a stream captures, where dead letters are published (with PubAck) before the
   * original is terminated (`term()`); see {@link DEAD_LETTER_HEADERS}. Without it dead letters
   * only go to `onDeadLetter`.
   */
  deadLetterSubject?: string;
  /** Turns a payload into a value; default UTF-8 JSON. Throwing dead-letters the message. */
  decode?: (data: Uint8Array, msg: JsMsg) => unknown;
  /** Checks a decoded value's shape; `false` or a throw dead-letters the message. */
  validate?: (value: unknown) => boolean;
  /** Aborting it closes the source, as `close()` does. */
  signal?: AbortSignal;
  /** Create the stream first if it does not exist (see {@link ensureStream}). */
  ensureStream?: StreamSpec;
  /** Told of failed writes, failed dead-letter publishes and fetch errors; defaults to printing. */
  onError?(error: unknown, event: E | undefined): void;
  /** Told of every dead letter; defaults to printing when there is no `deadLetterSubject`. */
  onDeadLetter?(letter: JetStreamDeadLetter): void;
  /** Longest a fetch waits for messages, in ms (≥ 1000); default 5000. */
  fetchExpires?: number;
}

/**
 * Counters of a {@link JetStreamSource}.
 *
 * @example
 * ```ts
 * const { acked, deadLettered } = source.stats;
 * ```
 */
export interface JetStreamSourceStats {
  /** Messages received from JetStream (redeliveries included). */
  received: number;
  /** Messages acknowledged after their write resolved. */
  acked: number;
  /** Messages handed back (`nak`): failed writes, and on close the ones never written. */
  nakked: number;
  /** Messages dead-lettered and terminated. */
  deadLettered: number;
}

interface Held {
  msg: JsMsg;
  writing: boolean;
  // close()'s deadline passed while the write was pending: the message was handed back and
  // must never be acknowledged, whatever the write does later.
  abandoned: boolean;
}

const NAME = 'JetStreamSource';
const DEFAULT_ACK_WAIT = 30_000;
const DEFAULT_PREFETCH = 64;
const DEFAULT_MAX_DELIVERIES = 5;
const DEFAULT_RETRY_DELAY = 1_000;
const DEFAULT_FETCH_EXPIRES = 5_000;
const MAX_BACKOFF = 5_000;
const STALE_MARGIN = 250;
const FLUSH_TIMEOUT = 2_000;
const DECODER = new TextDecoder('utf-8', { fatal: true });

/**
 * Consumes a JetStream stream through a durable pull consumer and writes each event into a
 * local {@link Sink}, acknowledging a message only after its write resolved (at-least-once).
 *
 * - Sources sharing a `durable` share the work; `concurrency` writes run at once (1 = in
 *   order: the next write starts only after the previous one settled). A failed message is
 *   redelivered after `retryDelay` while later ones go on, so a retry can land after them.
 * - A failed write is handed back with `nak(retryDelay)` and redelivered; a write that fails on
 *   delivery `maxDeliveries` or later, and any message that cannot be decoded, is published to
 *   `deadLetterSubject` (and `onDeadLetter`) and terminated, so a poison message never blocks
 *   the stream and never crashes the source.
 * - A slow write keeps its message with `working()`; a crashed source's unacknowledged messages
 *   are redelivered to a live one after `ackWait`.
 * - A destination that reports `SinkClosedError` stops the source.
 *
 * `start()` creates the durable if needed and begins fetching. The source never closes the
 * destination sink: several sources may share it.
 *
 * @example
 * ```ts
 * const source = new JetStreamSource(new Queue(handler), {
 *   connection,
 *   stream: 'ORDERS',
 *   durable: 'billing',
 *   deadLetterSubject: 'dlq.orders',
 * });
 * await source.start();
 * // … on shutdown: stop fetching, let writes in progress finish for up to 10 s.
 * await source.close({ signal: AbortSignal.timeout(10_000) });
 * ```
 */
export class JetStreamSource<E> {
  readonly #dst: Sink<E>;
  readonly #options: JetStreamSourceOptions<E>;
  readonly #concurrency: number;
  readonly #limit: number;
  readonly #ackWait: number;
  readonly #maxDeliveries: number;
  readonly #retryDelay: (deliveries: number) => number;
  readonly #fetchExpires: number;
  readonly #decode: (data: Uint8Array, msg: JsMsg) => unknown;
  readonly #onError: (error: unknown, event: E | undefined) => void;
  readonly #buffer = new RingBuffer<Held>();
  readonly #held = new Set<Held>();
  readonly #stats: JetStreamSourceStats = { received: 0, acked: 0, nakked: 0, deadLettered: 0 };
  #active = 0;
  #starting: Promise<void> | undefined;
  #resolved: ResolvedConnection | undefined;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #consumer: Consumer | undefined;
  #fetching: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #wake: (() => void) | undefined;
  #drained: (() => void) | undefined;
  #stopping = false;
  // When the pull request of a fetch stopped early expires at the server (ms since the epoch).
  #fetchEndsAt = 0;
  #staleUntil = 0;
  #closing: Promise<void> | undefined;
  #removeSignal: () => void = noop;

  /**
   * @param dst - where events go.
   * @param options - see {@link JetStreamSourceOptions}.
   * @throws TypeError or RangeError naming a bad option.
   */
  constructor(dst: Sink<E>, options: JetStreamSourceOptions<E>) {
    expectSink('dst', dst);
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`Expected \`options\` to be an object, got ${describe(options)}`);
    }
    validateConnectionOptions(options);
    const {
      stream,
      durable,
      filterSubject,
      deliverPolicy = 'all',
      concurrency = 1,
      prefetch = DEFAULT_PREFETCH,
      ackWait = DEFAULT_ACK_WAIT,
      maxDeliveries = DEFAULT_MAX_DELIVERIES,
      retryDelay = DEFAULT_RETRY_DELAY,
      deadLetterSubject,
      decode,
      validate,
      signal,
      onError,
      onDeadLetter,
      fetchExpires = DEFAULT_FETCH_EXPIRES,
    } = options;
    expectName('stream', stream);
    expectName('durable', durable);
    if (filterSubject !== undefined) expectSubject('filterSubject', filterSubject, true);
    expectOneOf('deliverPolicy', deliverPolicy, ['all', 'new'] as const);
    expectInteger('concurrency', concurrency);
    expectInteger('prefetch', prefetch, 0);
    expectNonNegative('ackWait', ackWait);
    if (ackWait < 100) {
      throw new RangeError(`Expected \`ackWait\` to be at least 100 ms, got ${describe(ackWait)}`);
    }
    expectInteger('maxDeliveries', maxDeliveries, 1, true);
    if (typeof retryDelay === 'function') expectFunction('retryDelay', retryDelay);
    else expectNonNegative('retryDelay', retryDelay);
    if (deadLetterSubject !== undefined)
      expectSubject('deadLetterSubject', deadLetterSubject, false);
    expectOptionalFunction('decode', decode);
    expectOptionalFunction('validate', validate);
    expectSignal('signal', signal);
    expectOptionalFunction('onError', onError);
    expectOptionalFunction('onDeadLetter', onDeadLetter);
    expectNonNegative('fetchExpires', fetchExpires);
    if (fetchExpires < 1000) {
      throw new RangeError(
        `Expected \`fetchExpires\` to be at least 1000 ms, got ${describe(fetchExpires)}`,
      );
    }
    if (options.ensureStream !== undefined) validateStreamSpec(options.ensureStream);
    this.#dst = dst;
    this.#options = options;
    this.#concurrency = concurrency;
    this.#limit = concurrency + prefetch;
    this.#ackWait = ackWait;
    this.#maxDeliveries = maxDeliveries;
    this.#retryDelay =
      typeof retryDelay === 'function' ? (n) => sanitizeDelay(retryDelay(n)) : () => retryDelay;
    this.#fetchExpires = fetchExpires;
    const decodeBytes = decode ?? decodeJson;
    this.#decode = validate
      ? (data, msg) => {
          const value = decodeBytes(data, msg);
          if (!validate(value)) throw new Error(`validate() refused ${describe(value)}`);
          return value;
        }
      : decodeBytes;
    this.#onError = onError
      ? (error, event) => callHook(NAME, onError, error, event)
      : (error) => reportDefault(NAME, 'error', error);
  }

  /** Counters since construction; see {@link JetStreamSourceStats}. */
  get stats(): JetStreamSourceStats {
    return { ...this.#stats };
  }

  /** True once `close()` was called (or `signal` aborted). */
  get closed(): boolean {
    return this.#stopping;
  }

  /**
   * Connects (unless given a connection), creates the durable if it does not exist, and begins
   * fetching. Idempotent: later calls return the first call's promise.
   * @throws rejects when the stream does not exist (and `ensureStream` is not given), when the
   *   existing durable filters another subject, or when NATS cannot be reached.
   */
  start(): Promise<void> {
    if (this.#starting) return this.#starting;
    if (this.#stopping) return Promise.reject(new Error('JetStreamSource is closed'));
    this.#starting = this.#start();
    return this.#starting;
  }

  /**
   * Stops fetching, hands back (`nak`) the messages fetched but not yet written, waits for the
   * writes in progress and acknowledges those that succeed, then releases the connection if the
   * source opened it. Idempotent. The destination sink is not closed.
   *
   * With `signal`, when it aborts the writes still pending are abandoned: their messages are
   * handed back and never acknowledged, even if the write resolves later.
   *
   * Handed-back messages become available to other sources once the pull request this source
   * had open expires (at most `fetchExpires` ms): NATS 2.9 cannot cancel a pull request and
   * would otherwise hand them straight back to its abandoned inbox, where they would wait out
   * `ackWait`.
   */
  close(options: CloseOptions = {}): Promise<void> {
    expectSignal('signal', options.signal);
    if (this.#closing) {
      if (options.signal) onAbort(options.signal, () => this.#abandon());
      return this.#closing;
    }
    this.#stopping = true;
    this.#closing = this.#close(options.signal);
    return this.#closing;
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #start(): Promise<void> {
    const resolved = await resolveConnection(this.#options);
    this.#resolved = resolved;
    try {
      const jsm = await jetstreamManager(resolved.connection);
      if (this.#options.ensureStream !== undefined)
        await ensureWith(jsm, this.#options.ensureStream);
      this.#jsm = jsm;
      this.#js = jetstream(resolved.connection);
      this.#consumer = await this.#ensureConsumer();
    } catch (error) {
      this.#resolved = undefined;
      if (resolved.owned) await resolved.connection.close().catch(noop);
      this.#starting = undefined;
      throw error;
    }
    if (this.#stopping) return;
    // working() for every message held, so neither a slow write nor a message waiting for a
    // write slot is redelivered to another source while this one is alive.
    this.#ticker = setInterval(() => this.#keepAlive(), Math.max(50, this.#ackWait / 3));
    this.#removeSignal = onAbort(this.#options.signal, () => void this.close());
    this.#loop = this.#fetchLoop();
  }

  async #ensureConsumer(): Promise<Consumer> {
    const jsm = this.#jsm!;
    const { stream, durable, filterSubject, deliverPolicy = 'all' } = this.#options;
    let info;
    try {
      info = await jsm.consumers.info(stream, durable);
    } catch (error) {
      if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
      const config: Partial<ConsumerConfig> = {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(this.#ackWait),
        // Redelivery is bounded here, not by the server: at max_deliver the server would just
        // stop delivering, leaving the message neither dead-lettered nor acknowledged.
        max_deliver: -1,
        deliver_policy: deliverPolicy === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
      };
      if (filterSubject !== undefined) config.filter_subject = filterSubject;
      try {
        info = await jsm.consumers.add(stream, config);
      } catch (addError) {
        // Another source of the same durable may have created it first.
        try {
          info = await jsm.consumers.info(stream, durable);
        } catch {
          throw addError;
        }
      }
    }
    const existing = info.config.filter_subject ?? undefined;
    if ((existing || undefined) !== filterSubject) {
      throw new Error(
        `durable ${durable} on stream ${stream} filters ${existing ? `'${existing}'` : 'no subject'}, not ${filterSubject === undefined ? 'no subject' : `'${filterSubject}'`}; delete it or use another durable name`,
      );
    }
    return this.#js!.consumers.getConsumerFromInfo(info);
  }

  async #fetchLoop(): Promise<void> {
    let failures = 0;
    while (!this.#stopping) {
      const room = this.#limit - this.#held.size;
      // Refill in halves, not one message at a time: a fetch is a round trip.
      if (room <= 0 || (this.#held.size > 0 && room < Math.ceil(this.#limit / 2))) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      try {
        if (this.#resolved!.connection.isClosed()) {
          this.#onError(new Error('the NATS connection closed; the source stops'), undefined);
          void this.close();
          return;
        }
        this.#fetchEndsAt = Date.now() + this.#fetchExpires;
        const batch = await this.#consumer!.fetch({
          max_messages: room,
          expires: this.#fetchExpires,
        });
        this.#fetching = batch;
        if (this.#stopping) quietly(() => void batch.close().catch(noop));
        for await (const msg of batch) this.#accept(msg);
        failures = 0;
      } catch (error) {
        if (this.#stopping) break;
        failures++;
        // Missed heartbeats are what a broker restart looks like: worth a line only if it lasts.
        if (failures > 1 || !isRoutine(error)) this.#onError(error, undefined);
        await this.#sleep(Math.min(100 * 2 ** failures, MAX_BACKOFF));
        if (isMissingConsumer(error) && !this.#stopping) {
          try {
            this.#consumer = await this.#ensureConsumer();
          } catch (recreateError) {
            this.#onError(recreateError, undefined);
          }
        }
      } finally {
        this.#fetching = undefined;
      }
    }
  }

  #accept(msg: JsMsg): void {
    this.#stats.received++;
    // Arrived after close() began: hand it straight back to the other sources.
    if (this.#stopping) {
      quietly(() => msg.nak(this.#handBackDelay()));
      this.#stats.nakked++;
      return;
    }
    const held: Held = { msg, writing: false, abandoned: false };
    this.#held.add(held);
    this.#buffer.push(held);
    this.#pump();
  }

  #pump(): void {
    while (this.#active < this.#concurrency && this.#buffer.length > 0 && !this.#stopping) {
      const held = this.#buffer.shift();
      this.#active++;
      held.writing = true;
      void this.#handle(held);
    }
  }

  async #handle(held: Held): Promise<void> {
    const { msg } = held;
    try {
      let event: E;
      try {
        event = this.#decode(msg.data, msg) as E;
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        await this.#deadLetter(
          held,
          'decode',
          new JetStreamDecodeError(reason, msg.seq, { cause: error }),
          undefined,
        );
        return;
      }
      let failed = false;
      let failure: unknown;
      try {
        await this.#dst.write(event);
      } catch (error) {
        failed = true;
        failure = error;
      }
      if (held.abandoned) return;
      if (!failed) {
        quietly(() => msg.ack());
        this.#stats.acked++;
        return;
      }
      if (isSinkClosedError(failure)) {
        // The destination is gone for good: stop first, so the hand-back cannot be delivered to
        // this source's own pull request.
        void this.close();
        this.#nak(held, this.#handBackDelay());
        this.#onError(failure, event);
        return;
      }
      this.#onError(failure, event);
      const deliveries = msg.info.deliveryCount;
      if (deliveries >= this.#maxDeliveries) {
        await this.#deadLetter(held, 'max-deliveries', failure, event);
      } else {
        this.#nak(held, this.#retryDelay(deliveries));
      }
    } finally {
      this.#active--;
      this.#held.delete(held);
      this.#pump();
      const wake = this.#wake;
      this.#wake = undefined;
      wake?.();
      if (this.#active === 0 && this.#drained !== undefined) this.#drained();
    }
  }

  #nak(held: Held, delay: number | undefined): void {
    quietly(() => held.msg.nak(delay !== undefined && delay > 0 ? delay : undefined));
    this.#stats.nakked++;
  }

  async #deadLetter(
    held: Held,
    reason: JetStreamDeadLetterReason,
    error: unknown,
    event: unknown,
  ): Promise<void> {
    const { msg } = held;
    const { stream, durable, deadLetterSubject, onDeadLetter } = this.#options;
    const msgId = msg.headers?.get('Nats-Msg-Id') || undefined;
    const letter: JetStreamDeadLetter = {
      reason,
      error,
      event,
      data: msg.data,
      subject: msg.subject,
      stream,
      streamSequence: msg.seq,
      durable,
      deliveries: msg.info.deliveryCount,
      msgId,
    };
    if (onDeadLetter) callHook(NAME, onDeadLetter, letter);
    else if (deadLetterSubject === undefined) {
      reportDefault(NAME, `dead-lettered a message (${reason})`, letter);
    }
    if (deadLetterSubject !== undefined) {
      const h = headers();
      h.set(DEAD_LETTER_HEADERS.reason, reason);
      h.set(DEAD_LETTER_HEADERS.error, headerValue(error));
      h.set(DEAD_LETTER_HEADERS.stream, stream);
      h.set(DEAD_LETTER_HEADERS.durable, durable);
      h.set(DEAD_LETTER_HEADERS.subject, msg.subject);
      h.set(DEAD_LETTER_HEADERS.sequence, String(msg.seq));
      h.set(DEAD_LETTER_HEADERS.deliveries, String(msg.info.deliveryCount));
      if (msgId !== undefined) h.set(DEAD_LETTER_HEADERS.msgId, msgId);
      try {
        await this.#js!.publish(deadLetterSubject, msg.data, {
          msgID: `dlq:${stream}:${durable}:${msg.seq}`,
          headers: h,
        });
      } catch (publishError) {
        // Not on record anywhere yet: keep the message and try again later.
        this.#onError(
          new Error(`could not publish a dead letter to ${deadLetterSubject}`, {
            cause: publishError,
          }),
          event as E | undefined,
        );
        if (!held.abandoned) this.#nak(held, this.#retryDelay(msg.info.deliveryCount));
        return;
      }
    }
    if (held.abandoned) return;
    quietly(() => msg.term());
    this.#stats.deadLettered++;
  }

  // A message handed back on close: at once, unless a stopped pull request could still take it.
  #handBackDelay(): number | undefined {
    const delay = this.#staleUntil - Date.now();
    return delay > 0 ? delay : undefined;
  }

  #keepAlive(): void {
    for (const held of this.#held) quietly(() => held.msg.working());
  }

  async #close(signal: AbortSignal | undefined): Promise<void> {
    this.#removeSignal();
    // Everything up to the first await runs synchronously inside close(), so a caller can rely
    // on the fetch being stopped (and #handBackDelay being meaningful) when close() returns.
    const fetching = this.#fetching;
    if (fetching !== undefined) {
      // NATS 2.9 cannot cancel a pull request: until it expires, the server may hand a message
      // nak'd now to that request's (no longer subscribed) inbox, where it would wait out
      // ack_wait. Hand-backs are delayed until the request is gone (see #handBackDelay).
      this.#staleUntil = this.#fetchEndsAt + STALE_MARGIN;
      quietly(() => void fetching.close().catch(noop));
    }
    this.#wakeLoop();
    // Fetched but never written: hand back at once rather than after ackWait.
    while (this.#buffer.length > 0) {
      const held = this.#buffer.shift();
      this.#held.delete(held);
      this.#nak(held, this.#handBackDelay());
    }
    await this.#starting?.catch(noop);
    if (this.#active > 0) {
      // Set #drained before listening: an already-aborted signal abandons synchronously.
      const drained = new Promise<void>((resolve) => (this.#drained = resolve));
      const cleanup = onAbort(signal, () => this.#abandon());
      try {
        await drained;
      } finally {
        cleanup();
      }
    }
    await this.#loop;
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#ticker = undefined;
    const resolved = this.#resolved;
    if (resolved?.owned) {
      // Flush the acks and naks just sent before letting go of the connection.
      await resolved.connection.drain().catch(noop);
    } else if (resolved !== undefined && !resolved.connection.isClosed()) {
      // A shared connection stays open, but its owner may close it right after us: make sure
      // the acks and naks reached the server. Bounded, since a disconnected client would wait
      // for its reconnect (and the server redelivers what it did not get anyway).
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        resolved.connection.flush().catch(noop),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, FLUSH_TIMEOUT))),
      ]);
      clearTimeout(timer);
    }
  }

  // close()'s deadline passed: give the pending writes' messages back, never acknowledge them.
  #abandon(): void {
    for (const held of this.#held) {
      if (held.abandoned) continue;
      held.abandoned = true;
      this.#nak(held, this.#handBackDelay());
    }
    this.#held.clear();
    const drained = this.#drained;
    this.#drained = undefined;
    drained?.();
  }

  #wakeLoop(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

function decodeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(DECODER.decode(data)) as unknown;
  } catch (error) {
    throw new Error(`not valid JSON: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
}

function sanitizeDelay(ms: number): number {
  return typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? ms : 0;
}

// Header values are one line of text; keep them short enough for any server limit.
function headerValue(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\r\n\u0000-\u001f]+/g, ' ').slice(0, 1024);
}

function isRoutine(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  return /heartbeats missed|disconnect|connection/i.test(message);
}

function isMissingConsumer(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  return (
    isApiError(error, JetStreamApiCodes.ConsumerNotFound) ||
    /consumer (not found|deleted)/i.test(message)
  );
}

function expectName(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value === '' || /[\s.*>]/.test(value)) {
    throw new TypeError(
      `Expected \`${name}\` to be a non-empty name without spaces, '.', '*' or '>', got ${describe(value)}`,
    );
  }
}

function expectSubject(name: string, value: unknown, wildcards: boolean): void {
  if (
    typeof value !== 'string' ||
    value === '' ||
    /\s/.test(value) ||
    (!wildcards && /[*>]/.test(value))
  ) {
    throw new TypeError(
      `Expected \`${name}\` to be a subject${wildcards ? '' : ' without wildcards'}, got ${describe(value)}`,
    );
  }
}

function noop(): void {}

// Acks, naks and working() are fire-and-forget publishes; on a closed connection they throw.
// Then the server redelivers after ack_wait, which is the at-least-once path anyway.
function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // The connection is gone: nothing to tell the server.
  }
}
