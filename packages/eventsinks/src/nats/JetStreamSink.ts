import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { SinkClosedError } from '../errors/SinkClosedError.js';
import { noop } from '../internal/close.js';
import { Lifecycle } from '../internal/Lifecycle.js';
import { headersFor, type MessageHeaders } from '../internal/headers.js';
import { stableId } from '../internal/messageId.js';
import { RingBuffer } from '../internal/RingBuffer.js';
import {
  describe,
  expectFunction,
  expectInteger,
  expectTimeout,
  expectOptionalFunction,
} from '../internal/validate.js';
import type { CloseOptions, Sink } from '../Sink.js';
import { SinkMetrics } from '../SinkMetrics.js';
import {
  ConnectionWatch,
  resolveConnection,
  validateConnectionOptions,
  type NatsConnectionOptions,
  type ResolvedConnection,
} from './connection.js';
import { ensureStream, validateStreamSpec, type StreamSpec } from './ensureStream.js';
import { JetStreamPublishError, type JetStreamPublishFailure } from './errors.js';

/**
 * Options for {@link JetStreamSink}.
 *
 * @example
 * ```ts
 * const options: JetStreamSinkOptions<Order> = {
 *   connection,
 *   subject: (order) => `orders.${order.region}`,
 *   idOf: (order) => order.id,
 *   maxInFlight: 64,
 * };
 * ```
 */
export interface JetStreamSinkOptions<E> extends NatsConnectionOptions {
  /** The subject to publish to, or a function of the event. A stream must capture it. */
  subject: string | ((event: E) => string);
  /**
   * The message id of an event, sent as its `Nats-Msg-Id`, which JetStream deduplicates within
   * the stream's `duplicate_window` (default 2 minutes). Give one when events carry their own id.
   * Default: a random UUID generated once per event object (kept in a `WeakMap`, the same
   * mechanism as every other sink's), so writing the same object again (as a `RetryingSink`
   * does) reuses it; primitives get a fresh id per write.
   */
  idOf?: (event: E) => string;
  /**
   * @deprecated Use {@link JetStreamSinkOptions.idOf}, the name every adapter uses; give one or
   * the other.
   */
  msgId?: (event: E) => string;
  /** Turns an event into the payload; default `JSON.stringify`. */
  encode?: (event: E) => Uint8Array | string;
  /**
   * Headers of an event's message (a W3C `traceparent`, a tenant), sent as NATS headers besides
   * `Nats-Msg-Id`; `undefined` sends none. A result that is not an object of strings, or a name
   * NATS refuses, makes `write` throw a `TypeError`.
   */
  headersOf?: (event: E) => MessageHeaders | undefined;
  /** Publishes allowed to await their PubAck at once; default 1 (each waits for the previous). */
  maxInFlight?: number;
  /** How long to wait for each PubAck, in ms (positive and finite; 0 is refused); default 5000. */
  timeout?: number;
  /**
   * Create this stream on first use if it does not exist (see {@link ensureStream}). By default
   * the sink expects the stream to exist, and a write to a subject no stream captures rejects
   * with reason `'no-stream'`.
   */
  ensureStream?: StreamSpec;
}

/**
 * Counters of a {@link JetStreamSink}, as its deprecated `stats` returns them.
 *
 * @deprecated Read `sink.metrics.successes` (the library's {@link SinkMetrics}) and
 * `sink.duplicates` instead.
 *
 * @example
 * ```ts
 * const { acked, duplicates } = sink.stats;
 * ```
 */
export interface JetStreamSinkStats {
  /** Writes the stream acknowledged (duplicates included). */
  acked: number;
  /** Of those, how many the stream reported as duplicates of an earlier message. */
  duplicates: number;
}

interface PendingPublish {
  subject: string;
  payload: Uint8Array | string;
  msgId: string;
  headers: MsgHdrs | undefined;
  resolve(): void;
  reject(error: unknown): void;
  settled: boolean;
}

const DEFAULT_TIMEOUT = 5_000;

/**
 * A sink that publishes each event to NATS JetStream and resolves its `write` only once the
 * stream acknowledged it (PubAck). It rejects with {@link JetStreamPublishError} when no PubAck
 * arrives within `timeout`, when the connection drops (at once, not after the timeout), when it
 * is down at write time, or when no stream captures the subject: never a silent success.
 *
 * Every message carries a stable `Nats-Msg-Id`, so writing the same event again after a failure
 * (for example through a `RetryingSink`) is deduplicated by the stream; a PubAck that reports a
 * duplicate counts as success. With `maxInFlight` 1 (the default) publishes go one at a time in
 * write order; a larger value pipelines them (still sent in write order) for throughput.
 *
 * The sink expects its stream to exist unless `ensureStream` is given. It uses the
 * `connection` you pass and never closes it, or opens (and on `close()` closes) its own.
 *
 * @example
 * ```ts
 * import { connect } from '@nats-io/transport-node';
 * import { JetStreamSink, ensureStream } from 'eventsinks/nats';
 *
 * const connection = await connect({ servers: '127.0.0.1:4222' });
 * await ensureStream(connection, { name: 'ORDERS', subjects: ['orders.>'] });
 * const sink = new JetStreamSink<Order>({ connection, subject: 'orders.created', idOf: (o) => o.id });
 * await sink.write({ id: 'o-1', total: 42 }); // resolved: the stream has it
 * await sink.close();
 * ```
 */
export class JetStreamSink<E> implements Sink<E> {
  /**
   * The sink's counters in the library's one metrics shape, live: `events` written,
   * `pending` awaiting their PubAck or a slot, `successes` acknowledged (duplicates included),
   * `failures` rejected, with `lastError`, `lastErrorAt` and `lastSuccessAt`.
   *
   * @example
   * ```ts
   * console.log(sink.metrics.toPrometheus('orders_sink'));
   * ```
   */
  readonly metrics = new SinkMetrics();
  readonly #options: JetStreamSinkOptions<E>;
  readonly #subject: (event: E) => string;
  readonly #encode: (event: E) => Uint8Array | string;
  readonly #idOf: (event: E) => string;
  readonly #headersOf: ((event: E) => MessageHeaders | undefined) | undefined;
  // The option's name as given (`idOf` or the deprecated `msgId`), for error messages.
  readonly #idOption: string;
  readonly #maxInFlight: number;
  readonly #timeout: number;
  readonly #waiting = new RingBuffer<PendingPublish>();
  readonly #inFlight = new Set<PendingPublish>();
  #ready: Promise<void> | undefined;
  #resolved: ResolvedConnection | undefined;
  #js: JetStreamClient | undefined;
  #watch: ConnectionWatch | undefined;
  readonly #life = new Lifecycle(() => this.#abort());
  #pumping = false;
  #duplicates = 0;

  /**
   * @param options - see {@link JetStreamSinkOptions}.
   * @throws TypeError or RangeError naming a bad option.
   */
  constructor(options: JetStreamSinkOptions<E>) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`Expected \`options\` to be an object, got ${describe(options)}`);
    }
    validateConnectionOptions(options);
    const {
      subject,
      idOf,
      msgId,
      encode,
      headersOf,
      maxInFlight = 1,
      timeout = DEFAULT_TIMEOUT,
    } = options;
    if (typeof subject === 'string') {
      if (subject === '' || /[\s*>]/.test(subject)) {
        throw new TypeError(
          `Expected \`subject\` to be a subject without spaces or wildcards, got ${describe(subject)}`,
        );
      }
    } else expectFunction('subject', subject);
    expectOptionalFunction('idOf', idOf);
    expectOptionalFunction('msgId', msgId);
    if (idOf !== undefined && msgId !== undefined) {
      throw new TypeError('Expected one of `idOf` and `msgId` (deprecated), got both');
    }
    expectOptionalFunction('encode', encode);
    expectOptionalFunction('headersOf', headersOf);
    expectInteger('maxInFlight', maxInFlight);
    expectTimeout('timeout', timeout, false);
    if (options.ensureStream !== undefined) validateStreamSpec(options.ensureStream);
    this.#options = options;
    this.#subject = typeof subject === 'string' ? () => subject : subject;
    this.#encode = encode ?? encodeJson;
    this.#headersOf = headersOf;
    this.#idOf = idOf ?? msgId ?? stableId;
    this.#idOption = msgId !== undefined ? 'msgId' : 'idOf';
    this.#maxInFlight = maxInFlight;
    this.#timeout = timeout;
  }

  /**
   * Writes held, waiting for a free `maxInFlight` slot (not yet published). Library-wide, `size`
   * is what a sink holds and has not started writing.
   */
  get size(): number {
    return this.#waiting.length;
  }

  /** Publishes sent and awaiting their PubAck (library-wide: being written now). */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Writes accepted and not yet settled: `size + inFlight`. */
  get pending(): number {
    return this.#inFlight.size + this.#waiting.length;
  }

  /** Of the writes acknowledged, how many the stream reported as duplicates of an earlier one. */
  get duplicates(): number {
    return this.#duplicates;
  }

  /**
   * Writes acknowledged so far, and how many of those the stream reported as duplicates.
   * @deprecated Read `metrics.successes` and `duplicates`; `stats` is a view of them.
   */
  get stats(): JetStreamSinkStats {
    return { acked: this.metrics.successes, duplicates: this.#duplicates };
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Publishes `event`; resolves when JetStream acknowledged it (or reported it a duplicate).
   * @throws SinkClosedError after `close()`, and (synchronously) the error of `subject`,
   *   `idOf`, `encode` or `headersOf`. Rejects with {@link JetStreamPublishError} when the
   *   message was not acknowledged.
   */
  write(event: E): Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('JetStreamSink is closed');
    // Computed before anything is queued, so a bad event fails alone and at once.
    const subject = this.#subject(event);
    const msgId = this.#idOf(event);
    if (typeof msgId !== 'string' || msgId === '') {
      throw new TypeError(
        `Expected \`${this.#idOption}\` to return a non-empty string, got ${describe(msgId)}`,
      );
    }
    const payload = this.#encode(event);
    const headers = natsHeadersOf(headersFor(this.#headersOf, event, [MSG_ID_HEADER]));
    return new Promise<void>((resolve, reject) => {
      const pending: PendingPublish = {
        subject,
        payload,
        msgId,
        headers,
        resolve,
        reject,
        settled: false,
      };
      this.metrics.events++;
      this.metrics.pending++;
      if (
        this.#js !== undefined &&
        this.#inFlight.size < this.#maxInFlight &&
        this.#waiting.length === 0
      ) {
        this.#send(pending);
      } else {
        this.#waiting.push(pending);
        if (this.#js === undefined) void this.#start();
      }
    });
  }

  /**
   * Stops accepting writes and waits for every outstanding PubAck (waiting writes are still
   * published), then releases the connection if the sink opened it. Idempotent.
   *
   * With `signal`, when it aborts every write still unacknowledged is rejected with
   * `SinkClosedError` (its message may or may not be stored; a retry elsewhere is deduplicated)
   * and the promise resolves.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#life.close(
      options,
      () => (this.pending > 0 ? this.#life.untilIdle() : undefined),
      () => this.#release(),
    );
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #release(): Promise<void> {
    // A connection still being opened for writes that an abort rejected must be closed too.
    await this.#ready?.catch(noop);
    this.#watch?.stop();
    const resolved = this.#resolved;
    if (resolved?.owned) {
      try {
        await resolved.connection.close();
      } catch {
        // Already closed: released either way.
      }
    }
  }

  #abort(): void {
    const error = (): SinkClosedError =>
      new SinkClosedError('JetStreamSink was closed before the message was acknowledged');
    for (const pending of this.#waiting.drain()) this.#settle(pending, error());
    for (const pending of [...this.#inFlight]) this.#settle(pending, error());
  }

  // Connects (if the sink owns its connection) and ensures the stream, once; a failure rejects
  // the writes waiting for it and lets the next write try again.
  #start(): Promise<void> {
    let connectFailed = false;
    this.#ready ??= (async () => {
      const resolved = await resolveConnection(this.#options).catch((error: unknown) => {
        connectFailed = true;
        throw error;
      });
      try {
        if (this.#options.ensureStream !== undefined) {
          await ensureStream(resolved.connection, this.#options.ensureStream);
        }
      } catch (error) {
        if (resolved.owned) await resolved.connection.close().catch(noop);
        throw error;
      }
      this.#resolved = resolved;
      this.#watch = new ConnectionWatch(resolved.connection, () => this.#disconnected());
      this.#js = jetstream(resolved.connection, { timeout: this.#timeout });
    })().then(
      () => this.#pump(),
      (error: unknown) => {
        this.#ready = undefined;
        for (const pending of this.#waiting.drain()) {
          // Not reaching NATS at all is a publish failure like any other; a failed
          // ensureStream (a configuration problem) is passed through as it is.
          if (connectFailed) this.#fail(pending, 'disconnected', error);
          else this.#settle(pending, error);
        }
      },
    );
    return this.#ready;
  }

  #pump(): void {
    // A publish that fails synchronously (disconnected) settles inside #send and calls back
    // here: the flag turns that recursion into the loop's next turn.
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#waiting.length > 0 && this.#inFlight.size < this.#maxInFlight) {
        this.#send(this.#waiting.shift());
      }
    } finally {
      this.#pumping = false;
    }
  }

  #send(pending: PendingPublish): void {
    const js = this.#js!;
    this.#inFlight.add(pending);
    const connection = this.#resolved!.connection;
    if (connection.isClosed()) {
      this.#fail(pending, 'closed', undefined);
      return;
    }
    // Fail fast while disconnected: nats.js would buffer the request and let it time out.
    if (!this.#watch!.connected) {
      this.#fail(pending, 'disconnected', undefined);
      return;
    }
    js.publish(pending.subject, pending.payload, {
      msgID: pending.msgId,
      timeout: this.#timeout,
      ...(pending.headers !== undefined ? { headers: pending.headers } : {}),
    }).then(
      (ack) => {
        if (pending.settled) return;
        if (ack.duplicate) this.#duplicates++;
        this.#settle(pending, undefined);
      },
      (error: unknown) => this.#fail(pending, this.#classify(error), error),
    );
  }

  #classify(error: unknown): JetStreamPublishFailure {
    const name = (error as { name?: unknown } | null)?.name;
    if (name === 'TimeoutError')
      return this.#watch?.connected === false ? 'disconnected' : 'timeout';
    if (name === 'JetStreamNotEnabled' || name === 'NoRespondersError') return 'no-stream';
    if (name === 'ClosedConnectionError' || name === 'DrainingConnectionError') return 'closed';
    if (this.#resolved?.connection.isClosed()) return 'closed';
    if (this.#watch?.connected === false) return 'disconnected';
    return 'rejected';
  }

  #fail(pending: PendingPublish, reason: JetStreamPublishFailure, cause: unknown): void {
    if (pending.settled) return;
    this.#settle(
      pending,
      new JetStreamPublishError(
        reason,
        pending.subject,
        pending.msgId,
        cause === undefined ? undefined : { cause },
      ),
    );
  }

  // Every outstanding publish fails the moment the connection drops: its PubAck may never come.
  #disconnected(): void {
    for (const pending of [...this.#inFlight]) this.#fail(pending, 'disconnected', undefined);
  }

  #settle(pending: PendingPublish, error: unknown): void {
    if (pending.settled) return;
    pending.settled = true;
    this.#inFlight.delete(pending);
    const metrics = this.metrics;
    metrics.pending--;
    if (error === undefined) {
      metrics.successes++;
      metrics.lastSuccessAt = Date.now();
      pending.resolve();
    } else {
      metrics.failures++;
      metrics.lastError = error;
      metrics.lastErrorAt = Date.now();
      pending.reject(error);
    }
    if (this.#js !== undefined) this.#pump();
    if (this.pending === 0) this.#life.idle();
  }
}

// JetStream's own deduplication header: the sink sets it from `idOf`.
const MSG_ID_HEADER = 'Nats-Msg-Id';

/** `headers` as nats.js headers; a name NATS refuses is a TypeError naming it. */
function natsHeadersOf(headers: MessageHeaders | undefined): MsgHdrs | undefined {
  if (headers === undefined) return undefined;
  const result = natsHeaders();
  for (const [name, value] of Object.entries(headers)) {
    try {
      result.set(name, value);
    } catch (error) {
      throw new TypeError(
        `Expected \`headersOf\` to return valid NATS headers, got ${describe(name)}: ${describe(value)}`,
        { cause: error },
      );
    }
  }
  return result;
}

function encodeJson(event: unknown): string {
  const json = JSON.stringify(event);
  if (json === undefined) {
    throw new TypeError(`Cannot encode ${describe(event)} as JSON`);
  }
  return json;
}
