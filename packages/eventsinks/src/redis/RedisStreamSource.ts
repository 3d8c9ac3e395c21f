import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { SinkClosedError } from '../errors/SinkClosedError.js';
import { untilAborted } from '../internal/abort.js';
import {
  BrokerSourceEngine,
  validateDeliveryOptions,
  type Recovery,
} from '../internal/BrokerSourceEngine.js';
import { callHook, reportDefault } from '../internal/report.js';
import {
  describe,
  expectInteger,
  expectOptionalFunction,
  expectSignal,
  expectSink,
} from '../internal/validate.js';
import type { CloseOptions, Sink } from '../Sink.js';
import {
  DATA_FIELD,
  ID_FIELD,
  fieldOf,
  parseEntry,
  parseReadReply,
  type RawEntry,
  type RedisStreamClient,
} from './client.js';
import { noop } from '../internal/close.js';
import { messageOf } from '../internal/errorText.js';
import { isValid, type Validator } from '../internal/validator.js';
import { RedisStreamDecodeError } from './errors.js';

/**
 * What {@link RedisStreamSourceOptions.onDeadLetter} is told about each entry the source moved
 * to the dead-letter stream.
 *
 * @example
 * ```ts
 * const onDeadLetter = (letter: RedisDeadLetter<Order>) =>
 *   console.error(`dead-lettered ${letter.id} after ${letter.deliveries} deliveries`, letter.error);
 * ```
 */
export interface RedisDeadLetter<E> {
  /** The Redis entry id in the source stream. */
  entryId: string;
  /** The entry's stable `id` field (its message id), when it had one. */
  messageId: string | undefined;
  /** @deprecated Use {@link RedisDeadLetter.messageId}, the name every adapter uses. */
  id: string | undefined;
  /** The decoded event, when decoding succeeded (absent for decoding failures). */
  event: E | undefined;
  /**
   * The `data` field as text (or, when missing, the entry's fields as JSON). The dead-letter
   * stream entry keeps the field's exact bytes, even where they are not valid UTF-8 (here each
   * bad byte reads as U+FFFD).
   */
  data: string;
  /** Why: a {@link RedisStreamDecodeError}, or the last write error. */
  error: unknown;
  /** Failed writes of the entry (0 for an entry that could not be decoded). */
  deliveries: number;
  /** The stream the dead letter was appended to. */
  deadLetterStream: string;
}

/**
 * Options for {@link RedisStreamSource}. Durations are in milliseconds.
 *
 * @example
 * ```ts
 * const options: RedisStreamSourceOptions<Order> = {
 *   stream: 'orders',
 *   group: 'billing',
 *   concurrency: 8,
 *   maxDeliveries: 5,
 *   retryDelay: 1_000,
 *   minIdle: 30_000,
 *   validate: (value): value is Order => typeof (value as Order).orderId === 'string',
 * };
 * ```
 */
export interface RedisStreamSourceOptions<E> {
  /**
   * The connected node-redis client (see {@link RedisStreamClient}), not owned by the source.
   * Required with the `(dst, options)` shape, the one every source has; with the deprecated
   * `(client, dst, options)` shape it must be left out.
   */
  client?: RedisStreamClient;
  /** The stream key to consume. */
  stream: string;
  /** The consumer group. Sources in one group share the entries; each group gets all of them. */
  group: string;
  /**
   * This consumer's name in the group; default `<hostname>-<pid>-<random>`, unique per source.
   * Give a stable name to have a restarted process resume its own pending entries at once.
   */
  consumer?: string;
  /** Writes to the destination in flight at once; default 1 (in stream order). */
  concurrency?: number;
  /** Entries fetched per XREADGROUP; default `max(16, 2 × concurrency)`. */
  batchSize?: number;
  /** How long one XREADGROUP blocks waiting for new entries; default 2000. */
  block?: number;
  /**
   * After this many failed writes of one entry it goes to the dead-letter stream instead;
   * default 5. `Infinity` retries for ever. Only failed writes count: an entry redelivered after
   * a crash, a reconnection or a close is never dead-lettered for that. Counted by this source
   * (a peer that takes the entry over starts from 0).
   */
  maxDeliveries?: number;
  /**
   * Wait between a failed write and the next attempt of the same entry, in ms, or a function of
   * the failed writes so far; default 1000. The entry waits on a timer of its own: other entries
   * go on meanwhile (so with `concurrency` 1 a retry can land after later entries).
   */
  retryDelay?: number | ((failures: number) => number);
  /**
   * An entry another consumer took and has not acknowledged for this long is taken over
   * (XAUTOCLAIM): that consumer crashed or hangs. Default 30 000. The source keeps its own
   * entries fresh while it works on them (a heartbeat every `minIdle / 3`), so a slow healthy
   * write is not taken over.
   */
  minIdle?: number;
  /** How often to look for entries to take over; default `min(minIdle / 2, 10 000)`. */
  claimInterval?: number;
  /** Where dead letters go; default `<stream>:dlq`. */
  deadLetterStream?: string;
  /**
   * Where a newly created group starts: `'0'` (default: every entry in the stream) or `'$'`
   * (only entries added from now on). A group recreated after NOGROUP always starts at `'0'`,
   * so nothing is lost (entries already processed are delivered again).
   */
  startId?: string;
  /** Turns an entry's `data` field into a value; default `JSON.parse`. A throw dead-letters it. */
  decode?(data: string): unknown;
  /**
   * Checks the decoded value's shape, preferably as a type guard; false (or a throw)
   * dead-letters the entry. A plain boolean function is accepted too.
   */
  validate?: ((value: unknown) => value is E) | ((value: unknown) => boolean);
  /**
   * The connection for blocking reads. Default: `client.duplicate()`, connected by the source
   * and closed with it. Must not be `client` itself: a blocking XREADGROUP holds its connection.
   */
  blockingClient?: RedisStreamClient;
  /** Aborting it closes the source (as `close()` without a deadline). */
  signal?: AbortSignal;
  /**
   * Told of every failed write to the destination (with the event) and every broker error
   * (without). The source goes on either way. Defaults to printing.
   */
  onError?(error: unknown, event: E | undefined): void;
  /** Told of every entry moved to the dead-letter stream. */
  onDeadLetter?(letter: RedisDeadLetter<E>): void;
}

const NAME = 'RedisStreamSource';
// XADD to the dead-letter stream and XACK in one step: an entry is never both acknowledged and
// missing from the dead letter, nor dead-lettered twice by one consumer. The `id` and `data`
// fields are copied inside Redis from the entry itself (ARGV[4] and ARGV[6] are only fallbacks):
// Lua strings are bytes, so a payload that is not valid UTF-8 reaches the dead letter unchanged,
// where a round trip through a JavaScript string would replace each bad byte with U+FFFD.
const DEAD_LETTER_SCRIPT = `
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
if entry then
  local fields = entry[2]
  for i = 1, #fields - 1, 2 do
    if fields[i] == ARGV[3] then ARGV[4] = fields[i + 1] end
    if fields[i] == ARGV[5] then ARGV[6] = fields[i + 1] end
  end
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])`;
// Forget this consumer on a clean close, but only if it holds no pending entry: deleting a
// consumer drops its pending entries from the group, which would lose them.
const FORGET_CONSUMER_SCRIPT =
  "if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end return -1";
// XCLAIM … IDLE with this makes released entries immediately claimable by any peer.
const RELEASE_IDLE = String(1_000_000_000);

/**
 * Consumes a Redis stream as a member of a consumer group and writes each event into a local
 * {@link Sink}, acknowledging (XACK) each entry only after that write resolved: at-least-once.
 * Runs on the same engine as `JetStreamSource` and `AmqpSource`, with the same option meanings.
 *
 * - Starts in the constructor; `ready` resolves once the group exists and the source reads.
 * - Blocking reads (XREADGROUP … BLOCK) run on a connection of their own; everything else
 *   (XACK, XAUTOCLAIM, dead letters) on `client`.
 * - `concurrency` writes run at once (default 1: in stream order, each write resolved before the
 *   next starts).
 * - A failed write is retried after `retryDelay`, on a timer that does not hold a write slot;
 *   after `maxDeliveries` failed writes the entry goes to the dead-letter stream
 *   (`<stream>:dlq`) with the reason, and is acknowledged. Redeliveries that follow a crash or a
 *   close are not failures and never dead-letter an entry.
 * - An entry that cannot be decoded (no `data`, not JSON, refused by `validate`) goes to the
 *   dead letter at once: it never reaches the sink, never stops the source, never blocks the
 *   stream.
 * - Entries another consumer left unacknowledged for `minIdle` are taken over (XAUTOCLAIM).
 * - A group deleted under the source (NOGROUP) is recreated.
 * - A destination that answers `SinkClosedError` is gone for good: the source hands the entry
 *   back unacknowledged and closes itself.
 *
 * `close({ signal })` stops fetching, waits for the writes in flight and acknowledges those that
 * resolved, hands entries it fetched but never started back to the group, and never acknowledges
 * a write still running when `signal` aborted. The destination sink and `client` stay open: the
 * caller owns them.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * import { Queue } from 'eventsinks';
 * import { RedisStreamSource } from 'eventsinks/redis';
 *
 * const client = createClient({ url: 'redis://127.0.0.1:6379' });
 * client.on('error', (error) => console.error('redis', error));
 * await client.connect();
 *
 * const source = new RedisStreamSource<Order>(billingSink, {
 *   client,
 *   stream: 'orders',
 *   group: 'billing',
 *   maxDeliveries: 5,
 * });
 * await source.ready;
 * // … on shutdown:
 * await source.close({ signal: AbortSignal.timeout(10_000) });
 * await client.close();
 * ```
 */
export class RedisStreamSource<E> {
  /**
   * Resolves once the group exists and the source is reading; rejects with `SinkClosedError`
   * if the source was closed first (or with the client's error if the client was closed).
   */
  readonly ready: Promise<void>;

  readonly #engine: BrokerSourceEngine<RawEntry, E>;
  readonly #client: RedisStreamClient;
  readonly #blocking: RedisStreamClient;
  readonly #ownsBlocking: boolean;
  readonly #stream: string;
  readonly #group: string;
  readonly #consumer: string;
  readonly #generatedConsumer: boolean;
  readonly #batchSize: number;
  readonly #block: number;
  readonly #minIdle: number;
  readonly #claimInterval: number;
  readonly #deadLetterStream: string;
  readonly #startId: string;
  readonly #decode: (data: string) => unknown;
  readonly #validate: Validator<E> | undefined;
  readonly #onError: (error: unknown, event: E | undefined) => void;
  readonly #onDeadLetter: ((letter: RedisDeadLetter<E>) => void) | undefined;

  #acks: string[] = [];
  // Entries whose write resolved and whose XACK Redis has not confirmed yet: still pending in the
  // group, so a claim or backlog read may return them; they must not be delivered again.
  readonly #unconfirmed = new Set<string>();
  #acking: Promise<void> | undefined;
  #backlog: string | undefined = '0';
  #claimCursor = '0-0';
  #nextClaim = 0;
  #reading = false;
  #blockingId: string | undefined;
  // The clients were closed under the source: nothing more can be sent.
  #terminated = false;
  readonly #onBlockingReady = (): void => {
    // A reconnect gives the blocking connection a new CLIENT ID.
    this.#blockingId = undefined;
  };
  readonly #onBlockingError = (error: unknown): void => {
    if (!this.#engine.stopping) this.#onError(error, undefined);
  };

  /**
   * Starts consuming at once; see {@link RedisStreamSource.ready}. The shape is that of every
   * source, `(dst, options)`, with the client in `options.client`.
   * @param dst - where events go; not closed by the source (several sources may share it).
   * @param options - see {@link RedisStreamSourceOptions}; `client` is required.
   * @throws TypeError or RangeError naming a bad option.
   */
  constructor(dst: Sink<E>, options: RedisStreamSourceOptions<E> & { client: RedisStreamClient });
  /**
   * The old shape, still accepted (told apart by the first argument: a client has
   * `sendCommand`, a sink does not).
   * @deprecated Use `new RedisStreamSource(dst, { client, ... })`, the shape of every source.
   * @param client - a connected node-redis client (see {@link RedisStreamClient}), not owned.
   * @param dst - where events go; not closed by the source.
   * @param options - see {@link RedisStreamSourceOptions}, without `client`.
   */
  constructor(client: RedisStreamClient, dst: Sink<E>, options: RedisStreamSourceOptions<E>);
  constructor(
    first: RedisStreamClient | Sink<E>,
    second: Sink<E> | RedisStreamSourceOptions<E>,
    third?: RedisStreamSourceOptions<E>,
  ) {
    let client: unknown;
    let dst: Sink<E>;
    let options: RedisStreamSourceOptions<E>;
    if (isRedisClient(first)) {
      // Deprecated (client, dst, options).
      client = first;
      dst = second as Sink<E>;
      options = third as RedisStreamSourceOptions<E>;
      if (typeof options === 'object' && options !== null && options.client !== undefined) {
        throw new TypeError(
          'Expected `client` either as the first argument (deprecated) or in `options`, got both',
        );
      }
    } else {
      dst = first;
      options = second as RedisStreamSourceOptions<E>;
      if (typeof options !== 'object' || options === null) {
        throw new TypeError(`Expected \`options\` to be an object, got ${describe(options)}`);
      }
      client = options.client;
    }
    if (!isRedisClient(client)) {
      throw new TypeError(`Expected \`client\` to be a node-redis client, got ${describe(client)}`);
    }
    expectSink('dst', dst);
    const {
      stream,
      group,
      consumer,
      concurrency = 1,
      batchSize,
      block = 2_000,
      maxDeliveries = 5,
      retryDelay = 1_000,
      minIdle = 30_000,
      claimInterval,
      deadLetterStream,
      startId = '0',
      decode,
      validate,
      blockingClient,
      signal,
      onError,
      onDeadLetter,
    } = options;
    expectName('stream', stream);
    expectName('group', group);
    if (consumer !== undefined) expectName('consumer', consumer);
    expectInteger('concurrency', concurrency);
    if (batchSize !== undefined) expectInteger('batchSize', batchSize);
    expectInteger('block', block, 1);
    validateDeliveryOptions(maxDeliveries, retryDelay);
    expectInteger('minIdle', minIdle, 1);
    if (claimInterval !== undefined) expectInteger('claimInterval', claimInterval, 1);
    if (deadLetterStream !== undefined) expectName('deadLetterStream', deadLetterStream);
    expectName('startId', startId);
    expectOptionalFunction('decode', decode);
    expectOptionalFunction('validate', validate);
    expectOptionalFunction('onError', onError);
    expectOptionalFunction('onDeadLetter', onDeadLetter);
    expectSignal('signal', signal);
    if (blockingClient === (client as unknown)) {
      throw new TypeError(
        'Expected `blockingClient` to be a connection of its own, got `client` itself',
      );
    }
    this.#client = client;
    this.#ownsBlocking = blockingClient === undefined;
    this.#blocking = blockingClient ?? client.duplicate();
    this.#stream = stream;
    this.#group = group;
    this.#generatedConsumer = consumer === undefined;
    this.#consumer = consumer ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.#batchSize = batchSize ?? Math.max(16, 2 * concurrency);
    this.#block = block;
    this.#minIdle = minIdle;
    this.#claimInterval = claimInterval ?? Math.max(1, Math.min(Math.floor(minIdle / 2), 10_000));
    this.#deadLetterStream = deadLetterStream ?? `${stream}:dlq`;
    if (this.#deadLetterStream === stream) {
      throw new TypeError(
        `Expected \`deadLetterStream\` to differ from \`stream\`, got ${describe(stream)}`,
      );
    }
    this.#startId = startId;
    this.#decode = decode ?? ((data) => JSON.parse(data) as unknown);
    this.#validate = validate;
    this.#onError = onError
      ? (error, event) => callHook(NAME, onError, error, event)
      : (error, event) =>
          reportDefault(
            NAME,
            event === undefined ? 'a Redis command failed' : 'a write to the destination failed',
            error,
          );
    this.#onDeadLetter = onDeadLetter;
    this.#engine = new BrokerSourceEngine<RawEntry, E>(
      dst,
      {
        connect: () => this.#setup(),
        fetch: (room) => this.#fetch(room),
        recover: (error) => this.#recover(error),
        decode: (entry) => this.#decodeEntry(entry),
        key: (entry) => entry.entryId,
        ack: (entry) => this.#ack(entry.entryId),
        deadLetter: (entry, error, event, failures) =>
          this.#deadLetter(entry, event as E | undefined, error, failures),
        handBack: (entries) => this.#release(entries),
        extend: (entries) => this.#touch(entries),
        interrupt: () => {
          if (this.#reading && !this.#terminated) void this.#unblock();
        },
        shutdown: (aborted, closeSignal) => this.#shutdown(aborted, closeSignal),
      },
      {
        name: NAME,
        concurrency,
        // Half the window refills at a time: the next batch arrives while the workers finish
        // this one.
        limit: this.#batchSize + concurrency,
        maxDeliveries,
        retryDelay,
        heartbeat: Math.max(1, Math.floor(minIdle / 3)),
        backoff: { base: 100, max: 2_000 },
        onError: this.#onError,
        signal,
        closedBeforeReady: () =>
          new SinkClosedError('RedisStreamSource closed before it was ready'),
      },
    );
    this.ready = this.#engine.ready;
    this.#blocking.on('ready', this.#onBlockingReady);
    if (this.#ownsBlocking) this.#blocking.on('error', this.#onBlockingError);
    this.#engine.start();
  }

  /** This source's consumer name in the group. */
  get consumer(): string {
    return this.#consumer;
  }

  /** The dead-letter stream key. */
  get deadLetterStream(): string {
    return this.#deadLetterStream;
  }

  /** Writes to the destination in progress (including entries waiting for a retry). */
  get active(): number {
    return this.#engine.active;
  }

  /** Writes to the destination in progress now (not counting entries waiting for a retry). */
  get inFlight(): number {
    return this.#engine.writing;
  }

  /** True once `close()` was called or the clients were closed under the source. */
  get closed(): boolean {
    return this.#engine.stopping;
  }

  /**
   * Stops fetching; waits for the writes in flight and acknowledges those that resolved; hands
   * entries fetched but not started (and retries still waiting) back to the group (a peer can
   * claim them at once); then closes the blocking connection if the source opened it. With
   * `signal`, when it aborts, the source stops waiting: writes still running are never
   * acknowledged, and their entries are redelivered (to a peer after `minIdle`). Idempotent;
   * never rejects.
   */
  close(options: CloseOptions = {}): Promise<void> {
    expectSignal('signal', options.signal);
    return this.#engine.close(options);
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // -------------------------------------------------------------------------------------------
  // The driver

  /** Connects the blocking client and creates the group. */
  async #setup(): Promise<void> {
    if (this.#ownsBlocking && !this.#blocking.isOpen) await this.#blocking.connect();
    await this.#createGroup(this.#startId);
  }

  async #createGroup(startId: string): Promise<void> {
    try {
      await this.#client.sendCommand([
        'XGROUP',
        'CREATE',
        this.#stream,
        this.#group,
        startId,
        'MKSTREAM',
      ]);
    } catch (error) {
      if (!messageOf(error).startsWith('BUSYGROUP')) throw error;
    }
  }

  async #recover(error: unknown): Promise<Recovery> {
    this.#reading = false;
    if (!this.#client.isOpen || (!this.#ownsBlocking && !this.#blocking.isOpen)) {
      // The clients were closed under the source (a crash, or the owner shut down first).
      this.#terminated = true;
      if (this.#ownsBlocking) this.#destroyBlocking();
      return 'fatal';
    }
    if (messageOf(error).startsWith('NOGROUP')) {
      // The group (or the whole stream) was deleted: recreate it and read on. Starting at '0'
      // redelivers what is still in the stream rather than risk losing anything.
      try {
        await this.#createGroup('0');
        this.#backlog = undefined;
        this.#claimCursor = '0-0';
        return 'again';
      } catch {
        return 'report';
      }
    }
    return 'report';
  }

  async #fetch(room: number): Promise<void> {
    // Our own backlog first: a claim before it would hand us entries the backlog read returns
    // again.
    if (this.#backlog === undefined && Date.now() >= this.#nextClaim) await this.#claim(room);
    if (this.#engine.stopping) return;
    const count = String(Math.min(room, this.#batchSize));
    const head = ['XREADGROUP', 'GROUP', this.#group, this.#consumer, 'COUNT', count];
    if (this.#backlog !== undefined) {
      // Our own pending entries first (a restart under the same consumer name): reading history
      // does not block.
      const reply = await this.#blocking.sendCommand([
        ...head,
        'STREAMS',
        this.#stream,
        this.#backlog,
      ]);
      const entries = parseReadReply(reply);
      const last = entries[entries.length - 1];
      this.#backlog = last === undefined ? undefined : last.entryId;
      this.#accept(entries);
      return;
    }
    if (this.#blockingId === undefined) {
      this.#blockingId = String(await this.#blocking.sendCommand(['CLIENT', 'ID']));
      if (this.#engine.stopping) return;
    }
    this.#reading = true;
    let reply: unknown;
    try {
      const block = String(this.#block);
      reply = await this.#blocking.sendCommand([
        ...head,
        'BLOCK',
        block,
        'STREAMS',
        this.#stream,
        '>',
      ]);
    } finally {
      this.#reading = false;
    }
    this.#accept(parseReadReply(reply));
  }

  /** Looks for entries idle for `minIdle` (a crashed or stuck consumer's) and takes them over. */
  async #claim(room: number): Promise<void> {
    const reply = await this.#client.sendCommand([
      'XAUTOCLAIM',
      this.#stream,
      this.#group,
      this.#consumer,
      String(this.#minIdle),
      this.#claimCursor,
      'COUNT',
      String(Math.max(1, room)),
    ]);
    const [cursor, raw] = Array.isArray(reply) ? (reply as unknown[]) : [];
    this.#claimCursor = typeof cursor === 'string' ? cursor : '0-0';
    // A full scan is done when the cursor wraps to 0-0; otherwise go on at the next fetch.
    this.#nextClaim = this.#claimCursor === '0-0' ? Date.now() + this.#claimInterval : 0;
    const entries: RawEntry[] = [];
    if (Array.isArray(raw)) {
      for (const item of raw as unknown[]) {
        const entry = parseEntry(item);
        if (entry) entries.push(entry);
      }
    }
    this.#accept(entries);
  }

  #accept(entries: RawEntry[]): void {
    for (const entry of entries) {
      // Entries we already hold came back through XAUTOCLAIM (a write slower than minIdle):
      // they are ours already, and writing them twice at once would only make duplicates.
      if (this.#unconfirmed.has(entry.entryId) || this.#engine.holds(entry.entryId)) continue;
      // An entry deleted from the stream (XDEL, MAXLEN) while pending: nothing to deliver.
      if (entry.fields === null) this.#ack(entry.entryId);
      else this.#engine.accept(entry);
    }
  }

  #decodeEntry(entry: RawEntry): E {
    const fields = entry.fields ?? [];
    const data = fieldOf(fields, DATA_FIELD);
    if (data === undefined) {
      throw new RedisStreamDecodeError(
        `entry ${entry.entryId} has no \`${DATA_FIELD}\` field`,
        entry.entryId,
      );
    }
    let value: unknown;
    try {
      value = this.#decode(data);
    } catch (error) {
      throw new RedisStreamDecodeError(
        `cannot decode entry ${entry.entryId}: ${messageOf(error)}`,
        entry.entryId,
        { cause: error },
      );
    }
    // Without `validate` the decoded value is trusted to be an E.
    if (this.#validate === undefined) return value as E;
    try {
      if (isValid(this.#validate, value)) return value;
    } catch (error) {
      throw new RedisStreamDecodeError(
        `entry ${entry.entryId} failed validation: ${messageOf(error)}`,
        entry.entryId,
        { cause: error },
      );
    }
    throw new RedisStreamDecodeError(
      `entry ${entry.entryId} failed validation: unexpected shape`,
      entry.entryId,
    );
  }

  async #deadLetter(
    entry: RawEntry,
    event: E | undefined,
    error: unknown,
    failures: number,
  ): Promise<void> {
    if (this.#terminated) return;
    const fields = entry.fields ?? [];
    const id = fieldOf(fields, ID_FIELD);
    const data = fieldOf(fields, DATA_FIELD) ?? JSON.stringify(fields);
    const reason = messageOf(error);
    await this.#client.sendCommand([
      'EVAL',
      DEAD_LETTER_SCRIPT,
      '2',
      this.#stream,
      this.#deadLetterStream,
      this.#group,
      entry.entryId,
      ID_FIELD,
      id ?? '',
      DATA_FIELD,
      data,
      'reason',
      reason,
      'stream',
      this.#stream,
      'group',
      this.#group,
      'consumer',
      this.#consumer,
      'entry',
      entry.entryId,
      'deliveries',
      String(failures),
    ]);
    if (this.#onDeadLetter) {
      callHook(NAME, this.#onDeadLetter, {
        entryId: entry.entryId,
        messageId: id,
        id,
        event,
        data,
        error,
        deliveries: failures,
        deadLetterStream: this.#deadLetterStream,
      });
    }
  }

  /** Queues an XACK; acknowledgements due while one is in flight go out together. */
  #ack(entryId: string): void {
    if (this.#terminated) return;
    this.#acks.push(entryId);
    this.#unconfirmed.add(entryId);
    this.#acking ??= this.#flushAcks();
  }

  async #flushAcks(): Promise<void> {
    // Yield first: `#acking` must be set before this can finish, and writes resolving in the
    // same tick join this batch.
    await Promise.resolve();
    try {
      while (this.#acks.length > 0 && !this.#terminated) {
        const ids = this.#acks;
        this.#acks = [];
        for (let attempt = 0; ; attempt++) {
          try {
            await this.#client.sendCommand(['XACK', this.#stream, this.#group, ...ids]);
            break;
          } catch (error) {
            // Unacknowledged entries are redelivered: a lost XACK costs a duplicate, not data.
            if (attempt >= 3 || this.#terminated || !this.#client.isOpen) {
              this.#onError(error, undefined);
              break;
            }
            if (attempt === 0 && messageOf(error).startsWith('NOGROUP')) break;
            await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)));
          }
        }
        for (const id of ids) this.#unconfirmed.delete(id);
      }
    } finally {
      this.#acking = undefined;
    }
  }

  /** Hands entries back to the group: idle enough for any peer's next XAUTOCLAIM to take. */
  async #release(entries: RawEntry[]): Promise<void> {
    if (this.#terminated) return;
    await this.#client.sendCommand([
      'XCLAIM',
      this.#stream,
      this.#group,
      this.#consumer,
      '0',
      ...entries.map((entry) => entry.entryId),
      'IDLE',
      RELEASE_IDLE,
      'JUSTID',
    ]);
  }

  /** Resets the idle time of every entry this source holds, so no peer takes them over. */
  async #touch(entries: RawEntry[]): Promise<void> {
    if (!this.#client.isReady) return;
    // Only entries idle for a quarter of minIdle: one a peer claimed a moment ago (after a stall
    // here) is left to that peer.
    await this.#client.sendCommand([
      'XCLAIM',
      this.#stream,
      this.#group,
      this.#consumer,
      String(Math.floor(this.#minIdle / 4)),
      ...entries.map((entry) => entry.entryId),
      'JUSTID',
    ]);
  }

  /**
   * Ends the blocking read now rather than after `block` ms. UNBLOCK makes it return as if it
   * timed out, so no entry is handed out and lost. It goes over another connection, so it can
   * reach Redis before the read itself does (then it answers 0): try again until the read ended.
   */
  async #unblock(): Promise<void> {
    const deadline = Date.now() + this.#block;
    while (this.#reading && !this.#terminated && Date.now() < deadline) {
      const id = this.#blockingId;
      if (id !== undefined) {
        try {
          if ((await this.#client.sendCommand(['CLIENT', 'UNBLOCK', id])) === 1) return;
        } catch {
          return; // the read ends within `block` anyway
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  async #shutdown(aborted: boolean, signal: AbortSignal | undefined): Promise<void> {
    try {
      // Acknowledgements already due are sent.
      if (this.#acking) await untilAborted(this.#acking, signal);
      if (!this.#terminated && !aborted && this.#generatedConsumer) {
        await untilAborted(this.#forgetConsumer(), signal);
      }
    } finally {
      if (this.#ownsBlocking) this.#destroyBlocking();
      this.#blocking.off('ready', this.#onBlockingReady);
    }
  }

  #destroyBlocking(): void {
    this.#blocking.off('error', this.#onBlockingError);
    // Keep a listener: a late socket error on a destroyed client must not crash the process.
    this.#blocking.on('error', noop);
    try {
      if (this.#blocking.isOpen) this.#blocking.destroy();
    } catch {
      // already closed
    }
  }

  async #forgetConsumer(): Promise<void> {
    try {
      await this.#client.sendCommand([
        'EVAL',
        FORGET_CONSUMER_SCRIPT,
        '1',
        this.#stream,
        this.#group,
        this.#consumer,
      ]);
    } catch {
      // Best effort: a leftover idle consumer costs nothing but a line in XINFO CONSUMERS.
    }
  }
}

function expectName(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`Expected \`${name}\` to be a non-empty string, got ${describe(value)}`);
  }
}

function isRedisClient(value: unknown): value is RedisStreamClient {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { sendCommand?: unknown }).sendCommand === 'function'
  );
}
