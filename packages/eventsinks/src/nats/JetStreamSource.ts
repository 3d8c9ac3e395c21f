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
import {
  BrokerSourceEngine,
  validateDeliveryOptions,
  type Recovery,
} from '../internal/BrokerSourceEngine.js';
import { noop } from '../internal/close.js';
import { messageOf, reasonOf } from '../internal/errorText.js';
import { callHook, reportDefault } from '../internal/report.js';
import { isValid } from '../internal/validator.js';
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
import {
  resolveConnection,
  validateConnectionOptions,
  type NatsConnectionOptions,
  type ResolvedConnection,
} from './connection.js';
import { ensureWith, isApiError, validateStreamSpec, type StreamSpec } from './ensureStream.js';
import { JetStreamDecodeError, isJetStreamDecodeError } from './errors.js';

/**
 * Why a {@link JetStreamSource} dead-lettered a message: it could not be decoded (not JSON, or
 * refused by `validate`), or its write failed `maxDeliveries` times.
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
  /** Its `Nats-Msg-Id` (its message id), if it had one. */
  messageId: string | undefined;
  /** @deprecated Use {@link JetStreamDeadLetter.messageId}, the name every adapter uses. */
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
 *   retryDelay: (failures) => Math.min(1000 * 2 ** failures, 30_000),
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
   * After this many failed writes of one message it goes to the dead letter instead of being
   * retried; default 5. `Infinity` retries forever. Only failed writes count, not JetStream's
   * delivery count: a redelivery after a crash or a hand-back on close never dead-letters a
   * message. Counted by this source (a message redelivered to another source of the durable
   * starts from 0 there).
   */
  maxDeliveries?: number;
  /**
   * Delay before a failed message is redelivered (`nak(delay)`), in ms, or a function of the
   * failed writes so far (1 after the first). Default 1000. Other messages go on meanwhile.
   */
  retryDelay?: number | ((failures: number) => number);
  /**
   * A subject a stream captures, where dead letters are published (with PubAck) before the
   * original is terminated (`term()`); see {@link DEAD_LETTER_HEADERS}. Without it dead letters
   * only go to `onDeadLetter`.
   */
  deadLetterSubject?: string;
  /** Turns a payload into a value; default UTF-8 JSON. Throwing dead-letters the message. */
  decode?: (data: Uint8Array, msg: JsMsg) => unknown;
  /**
   * Checks a decoded value's shape, preferably as a type guard; `false` or a throw
   * dead-letters the message. A plain boolean function is accepted too.
   */
  validate?: ((value: unknown) => value is E) | ((value: unknown) => boolean);
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
 * Runs on the same engine as `RedisStreamSource` and `AmqpSource`, with the same option
 * meanings.
 *
 * - Starts in the constructor (connects unless given a connection, creates the durable if
 *   needed, begins fetching); `ready` resolves once it fetches. `start()` is a deprecated alias
 *   that returns `ready`.
 * - Sources sharing a `durable` share the work; `concurrency` writes run at once (1 = in
 *   order: the next write starts only after the previous one settled). A failed message is
 *   redelivered after `retryDelay` while later ones go on, so a retry can land after them.
 * - A failed write is handed back with `nak(retryDelay)` and redelivered; after `maxDeliveries`
 *   failed writes, and at once for a message that cannot be decoded, it is published to
 *   `deadLetterSubject` (and `onDeadLetter`) and terminated, so a poison message never blocks
 *   the stream and never crashes the source. Redeliveries after a crash or a close are not
 *   failed writes and never dead-letter a message.
 * - A slow write keeps its message with `working()`; a crashed source's unacknowledged messages
 *   are redelivered to a live one after `ackWait`.
 * - A destination that reports `SinkClosedError` stops the source.
 *
 * The source never closes the destination sink: several sources may share it.
 *
 * @example
 * ```ts
 * const source = new JetStreamSource(new Queue(handler), {
 *   connection,
 *   stream: 'ORDERS',
 *   durable: 'billing',
 *   deadLetterSubject: 'dlq.orders',
 * });
 * await source.ready;
 * // … on shutdown: stop fetching, let writes in progress finish for up to 10 s.
 * await source.close({ signal: AbortSignal.timeout(10_000) });
 * ```
 */
export class JetStreamSource<E> {
  /**
   * Resolves once the durable exists and the source fetches; rejects when the stream does not
   * exist (and `ensureStream` is not given), when the existing durable filters another
   * subject, when NATS cannot be reached, or when the source is closed first.
   */
  readonly ready: Promise<void>;
  readonly #engine: BrokerSourceEngine<JsMsg, E>;
  readonly #options: JetStreamSourceOptions<E>;
  readonly #ackWait: number;
  readonly #fetchExpires: number;
  // How long a message whose dead letter could not be published waits before it comes back.
  readonly #deadLetterRetry: number;
  readonly #decode: (data: Uint8Array, msg: JsMsg) => unknown;
  readonly #onError: (error: unknown, event: E | undefined) => void;
  readonly #stats: JetStreamSourceStats = { received: 0, acked: 0, nakked: 0, deadLettered: 0 };
  #resolved: ResolvedConnection | undefined;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #consumer: Consumer | undefined;
  #fetching: ConsumerMessages | undefined;
  #fetchFailures = 0;
  // When the pull request of a fetch stopped early expires at the server (ms since the epoch).
  #fetchEndsAt = 0;
  #staleUntil = 0;

  /**
   * Starts consuming at once (see `ready`).
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
    validateDeliveryOptions(maxDeliveries, retryDelay);
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
    this.#options = options;
    this.#ackWait = ackWait;
    this.#fetchExpires = fetchExpires;
    this.#deadLetterRetry = typeof retryDelay === 'number' ? retryDelay : DEFAULT_RETRY_DELAY;
    const decodeBytes = decode ?? decodeJson;
    this.#decode = validate
      ? (data, msg) => {
          const value = decodeBytes(data, msg);
          if (!isValid(validate, value)) {
            throw new Error(`validate() refused ${describe(value)}`);
          }
          return value;
        }
      : decodeBytes;
    this.#onError = onError
      ? (error, event) => callHook(NAME, onError, error, event)
      : (error) => reportDefault(NAME, 'error', error);
    const handBack = (msgs: JsMsg[]): void => {
      for (const msg of msgs) this.#nak(msg, this.#handBackDelay());
    };
    this.#engine = new BrokerSourceEngine<JsMsg, E>(
      dst,
      {
        connect: () => this.#start(),
        fetch: (room) => this.#fetch(room),
        recover: (error) => this.#recover(error),
        decode: (msg) => {
          try {
            return this.#decode(msg.data, msg);
          } catch (error) {
            throw new JetStreamDecodeError(messageOf(error), msg.seq, { cause: error });
          }
        },
        key: (msg) => String(msg.seq),
        ack: (msg) => {
          quietly(() => msg.ack());
          this.#stats.acked++;
        },
        retry: (msg, delay) => Promise.resolve(this.#nak(msg, delay)),
        deadLetter: (msg, error, event) => this.#deadLetter(msg, error, event),
        handBack,
        // close()'s deadline passed: give the pending writes' messages back.
        abandon: handBack,
        // working() for every message held, so neither a slow write nor a message waiting for
        // a write slot is redelivered to another source while this one is alive.
        extend: (msgs) => {
          for (const msg of msgs) quietly(() => msg.working());
        },
        interrupt: () => this.#interrupt(),
        shutdown: () => this.#shutdown(),
      },
      {
        name: NAME,
        concurrency,
        limit: concurrency + prefetch,
        maxDeliveries,
        retryDelay,
        heartbeat: Math.max(50, ackWait / 3),
        backoff: { base: 100, max: MAX_BACKOFF },
        onError: this.#onError,
        signal,
        closedBeforeReady: () => new Error('JetStreamSource is closed'),
      },
    );
    this.ready = this.#engine.ready;
    this.#engine.start();
  }

  /** Counters since construction; see {@link JetStreamSourceStats}. */
  get stats(): JetStreamSourceStats {
    return { ...this.#stats };
  }

  /** Writes to the destination in progress now (not counting messages waiting for a retry). */
  get inFlight(): number {
    return this.#engine.writing;
  }

  /** True once `close()` was called (or `signal` aborted). */
  get closed(): boolean {
    return this.#engine.stopping;
  }

  /**
   * The source starts in its constructor; this returns {@link JetStreamSource.ready}.
   * @deprecated Await `ready` instead.
   */
  start(): Promise<void> {
    return this.ready;
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
    return this.#engine.close(options);
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
      throw error;
    }
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

  async #fetch(room: number): Promise<void> {
    if (this.#resolved!.connection.isClosed()) {
      throw new Error('the NATS connection closed; the source stops');
    }
    this.#fetchEndsAt = Date.now() + this.#fetchExpires;
    try {
      const batch = await this.#consumer!.fetch({
        max_messages: room,
        expires: this.#fetchExpires,
      });
      this.#fetching = batch;
      if (this.#engine.stopping) quietly(() => void batch.close().catch(noop));
      for await (const msg of batch) {
        this.#stats.received++;
        this.#engine.accept(msg);
      }
      this.#fetchFailures = 0;
    } finally {
      this.#fetching = undefined;
    }
  }

  async #recover(error: unknown): Promise<Recovery> {
    // Setting up (stream missing, durable filtering another subject, NATS unreachable): final.
    if (this.#consumer === undefined) return 'fatal';
    if (this.#resolved?.connection.isClosed() !== false) return 'fatal';
    this.#fetchFailures++;
    if (isMissingConsumer(error)) {
      try {
        this.#consumer = await this.#ensureConsumer();
      } catch (recreateError) {
        this.#onError(recreateError, undefined);
      }
    }
    // Missed heartbeats are what a broker restart looks like: worth a line only if it lasts.
    return this.#fetchFailures > 1 || !isRoutine(error) ? 'report' : 'quiet';
  }

  #nak(msg: JsMsg, delay: number | undefined): void {
    quietly(() => msg.nak(delay !== undefined && delay > 0 ? delay : undefined));
    this.#stats.nakked++;
  }

  async #deadLetter(msg: JsMsg, error: unknown, event: unknown): Promise<void> {
    const reason: JetStreamDeadLetterReason = isJetStreamDecodeError(error)
      ? 'decode'
      : 'max-deliveries';
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
      messageId: msgId,
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
        if (!this.#engine.aborted) this.#nak(msg, this.#deadLetterRetry);
        return;
      }
    }
    if (this.#engine.aborted) return;
    quietly(() => msg.term());
    this.#stats.deadLettered++;
  }

  // A message handed back on close: at once, unless a stopped pull request could still take it.
  #handBackDelay(): number | undefined {
    const delay = this.#staleUntil - Date.now();
    return delay > 0 ? delay : undefined;
  }

  // Runs synchronously inside close(), so a caller can rely on the fetch being stopped (and
  // #handBackDelay being meaningful) when close() returns.
  #interrupt(): void {
    const fetching = this.#fetching;
    if (fetching === undefined) return;
    // NATS 2.9 cannot cancel a pull request: until it expires, the server may hand a message
    // nak'd now to that request's (no longer subscribed) inbox, where it would wait out
    // ack_wait. Hand-backs are delayed until the request is gone (see #handBackDelay).
    this.#staleUntil = this.#fetchEndsAt + STALE_MARGIN;
    quietly(() => void fetching.close().catch(noop));
  }

  async #shutdown(): Promise<void> {
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
}

function decodeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(DECODER.decode(data)) as unknown;
  } catch (error) {
    throw new Error(`not valid JSON: ${messageOf(error)}`, { cause: error });
  }
}

// Header values are one line of ASCII-safe text; keep them short enough for any server limit.
function headerValue(error: unknown): string {
  return reasonOf(error, 1024, '');
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

// Acks, naks and working() are fire-and-forget publishes; on a closed connection they throw.
// Then the server redelivers after ack_wait, which is the at-least-once path anyway.
function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // The connection is gone: nothing to tell the server.
  }
}
