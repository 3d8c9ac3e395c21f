// The one engine behind RedisStreamSource, JetStreamSource and AmqpSource: it owns the policy
// (decode → write → ack / retry / dead-letter, what maxDeliveries and retryDelay mean, the
// concurrency pump, heartbeats, reconnect backoff, close/abort, `ready`); each adapter supplies a
// small driver with the broker's verbs. Internal: not exported from the core's index.
import { isSinkClosedError } from '../errors/SinkClosedError.js';
import { ExponentialBackoff } from '../retry/ExponentialBackoff.js';
import type { CloseOptions, Sink } from '../Sink.js';
import { onAbort } from './abort.js';
import { Lifecycle } from './Lifecycle.js';
import { RingBuffer } from './RingBuffer.js';
import { expectFunction, expectInteger, expectNonNegative } from './validate.js';

/**
 * How long a message waits after a failed write, in ms, or a function of the number of failed
 * writes so far (1 after the first).
 * @internal
 */
export type RetryDelay = number | ((failures: number) => number);

/**
 * What a driver tells the engine about an error of `connect()` or `fetch()`:
 * - `'again'`: the driver repaired it (a recreated group): fetch again at once, say nothing;
 * - `'quiet'`: routine (a broker restart in progress): back off, say nothing;
 * - `'report'`: back off and tell `onError`;
 * - `'fatal'`: stop for good (tell `onError`, reject `ready` with the error, close).
 * @internal
 */
export type Recovery = 'again' | 'quiet' | 'report' | 'fatal';

/**
 * The broker's verbs, for one source. `M` is the broker's message. Every method is called by
 * the engine only; none of them needs to know the policy.
 * @internal
 */
export interface BrokerDriver<M> {
  /**
   * Connects and declares (group, durable, queue); resolves when messages can be fetched. The
   * engine retries it with backoff, and resolves `ready` after it. Absent: `fetch` connects and
   * the driver calls {@link BrokerSourceEngine.markReady}.
   */
  connect?(): Promise<void>;
  /**
   * One round of fetching: hands each message to {@link BrokerSourceEngine.accept} and resolves
   * when the round is over (a read returned; a subscription ended). At most `room` messages.
   */
  fetch(room: number): Promise<void>;
  /** What an error of `connect` or `fetch` means (see {@link Recovery}). */
  recover(error: unknown): Recovery | Promise<Recovery>;
  /** Turns a message into an event; a throw dead-letters the message at once. */
  decode(message: M): unknown;
  /** A key that stays the same across redeliveries of one message (counts failed writes). */
  key(message: M): string;
  /** Failed writes the broker recorded on the message (a header); absent: counted locally. */
  failures?(message: M): number;
  /** The write resolved: acknowledge. */
  ack(message: M): void;
  /**
   * Have the broker redeliver the message after `delay` ms (`nak(delay)`, a TTL queue). Absent:
   * the engine keeps the message and writes it again after `delay` on a timer that holds no
   * write slot.
   */
  retry?(message: M, delay: number, failures: number, error: unknown): Promise<void>;
  /** Moves the message to the dead letter and acknowledges it; a throw leaves it unacknowledged. */
  deadLetter(message: M, error: unknown, event: unknown, failures: number): Promise<void>;
  /** Gives messages back unacknowledged, without counting a failure, for a peer to take now. */
  handBack(messages: M[]): void | Promise<void>;
  /** The close deadline passed while these were being written: never acknowledge them. */
  abandon?(messages: M[]): void;
  /** A heartbeat: keeps the messages held from being redelivered to a peer. */
  extend?(messages: M[]): void | Promise<void>;
  /** The source is stopping: end a blocking fetch now. */
  interrupt?(): void;
  /** After the drain: flush and release connections (within `signal`). */
  shutdown(aborted: boolean, signal: AbortSignal | undefined): Promise<void>;
}

/** @internal */
export interface BrokerSourceEngineOptions<E> {
  /** The adapter's name, for messages. */
  name: string;
  concurrency: number;
  /** Messages held at most (buffered + being written + waiting for a retry). */
  limit: number;
  maxDeliveries: number;
  retryDelay: RetryDelay;
  /** How often to call `extend`, ms; 0 for never. */
  heartbeat: number;
  /** Reconnect backoff (full jitter), ms. */
  backoff: { base: number; max: number };
  onError(error: unknown, event: E | undefined): void;
  /** Aborting it closes the source (as `close()` without a deadline). */
  signal?: AbortSignal | undefined;
  /** The rejection of `ready` when the source closes before it consumed. */
  closedBeforeReady(): unknown;
}

interface Held<M> {
  message: M;
  key: string;
  failures: number;
  abandoned: boolean;
  writing: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

// Failed-write counts kept for messages the broker redelivers (nak): bounded, oldest dropped.
const MAX_COUNTED = 10_000;

/**
 * Validates `maxDeliveries` (a positive integer or `Infinity`) and `retryDelay` (ms ≥ 0 or a
 * function), the same way for every adapter.
 * @internal
 */
export function validateDeliveryOptions(maxDeliveries: unknown, retryDelay: unknown): void {
  expectInteger('maxDeliveries', maxDeliveries, 1, true);
  if (typeof retryDelay === 'function') expectFunction('retryDelay', retryDelay);
  else expectNonNegative('retryDelay', retryDelay);
}

/**
 * Runs one broker source. Meanings, the same for every adapter:
 * - `maxDeliveries` counts failed writes only: a message is dead-lettered when its write failed
 *   that many times; a redelivery caused by a crash, a reconnection or a close never counts.
 * - `retryDelay` never blocks other messages: the failed message is redelivered later by the
 *   broker (`driver.retry`) or rewritten after a timer that holds no write slot.
 * - A write failing with `SinkClosedError` hands its message back and closes the source.
 * @internal
 */
export class BrokerSourceEngine<M, E> {
  /** Resolves once consuming; rejects if the source closed (or failed) before that. */
  readonly ready: Promise<void>;
  readonly #dst: Sink<E>;
  readonly #driver: BrokerDriver<M>;
  readonly #options: BrokerSourceEngineOptions<E>;
  readonly #retryDelay: (failures: number) => number;
  readonly #backoff: ExponentialBackoff;
  readonly #buffer = new RingBuffer<Held<M>>();
  // Retries whose delay passed: written before the buffer, since they are older.
  readonly #due: Held<M>[] = [];
  readonly #held = new Set<Held<M>>();
  readonly #counted = new Map<string, number>();
  #writing = 0;
  #waiting = 0;
  #stopping = false;
  // A close deadline: the writes still running are never acknowledged.
  readonly #life = new Lifecycle(() => this.#abort());
  #loop: Promise<void> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #wake: (() => void) | undefined;
  #resolveReady!: () => void;
  #rejectReady!: (error: unknown) => void;
  #removeSignal: () => void = noop;

  constructor(dst: Sink<E>, driver: BrokerDriver<M>, options: BrokerSourceEngineOptions<E>) {
    this.#dst = dst;
    this.#driver = driver;
    this.#options = options;
    const { retryDelay } = options;
    this.#retryDelay =
      typeof retryDelay === 'function' ? (n) => sanitize(retryDelay(n)) : () => retryDelay;
    this.#backoff = new ExponentialBackoff({
      base: options.backoff.base,
      factor: options.backoff.base,
      max: options.backoff.max,
    });
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // A caller that never awaits `ready` must not get an unhandled rejection from close().
    this.ready.catch(noop);
  }

  /** Starts connecting and fetching, after the adapter's constructor has finished. */
  start(): void {
    this.#removeSignal = onAbort(this.#options.signal, () => void this.close());
    this.#loop = Promise.resolve().then(() => this.#run());
  }

  /** True once close() was called or the source stopped for good. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** True once the close deadline passed: nothing may be acknowledged any more. */
  get aborted(): boolean {
    return this.#life.aborted;
  }

  /** Writes in progress plus messages waiting for a retry timer. */
  get active(): number {
    return this.#writing + this.#waiting;
  }

  /** Writes in progress. */
  get writing(): number {
    return this.#writing;
  }

  /** Messages held (buffered, being written, waiting for a retry). */
  get size(): number {
    return this.#held.size;
  }

  /** True if a message with this key is held. */
  holds(key: string): boolean {
    for (const held of this.#held) if (held.key === key) return true;
    return false;
  }

  /** Keys of the messages held. */
  *keys(): IterableIterator<string> {
    for (const held of this.#held) yield held.key;
  }

  /** The driver is consuming (resolves `ready`; later calls do nothing). */
  markReady(): void {
    this.#resolveReady();
  }

  /** A connection worked: the next reconnect starts from the shortest delay. */
  connected(): void {
    this.#backoff.success();
  }

  /** Hands a fetched message to the workers (back to the broker at once when stopping). */
  accept(message: M): void {
    if (this.#stopping) {
      void this.#handBack([message]);
      return;
    }
    const key = this.#driver.key(message);
    const failures = this.#driver.failures?.(message) ?? this.#counted.get(key) ?? 0;
    const held: Held<M> = {
      message,
      key,
      failures,
      abandoned: false,
      writing: false,
      timer: undefined,
    };
    this.#held.add(held);
    this.#buffer.push(held);
    this.#pump();
  }

  /** A sleep that close() cuts short. */
  sleep(ms: number): Promise<void> {
    if (this.#stopping) return Promise.resolve();
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

  /**
   * Stops fetching, waits for the writes in progress (until `signal` aborts) and lets the driver
   * acknowledge those that resolved, hands back what was never written, then shuts the driver
   * down. Idempotent; never rejects.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#life.close(
      options,
      () => this.#drain(),
      async (signal) => {
        this.#rejectReady(this.#options.closedBeforeReady());
        await this.#driver.shutdown(this.#life.aborted, signal).catch(noop);
      },
    );
  }

  async #run(): Promise<void> {
    const driver = this.#driver;
    if (driver.connect !== undefined) {
      if (!(await this.#attempt(() => driver.connect!()))) return;
      this.markReady();
    }
    const interval = this.#options.heartbeat;
    if (interval > 0 && driver.extend !== undefined && !this.#stopping) {
      this.#heartbeat = setInterval(() => this.#extend(), interval);
      this.#heartbeat.unref?.();
    }
    const { limit } = this.#options;
    const half = Math.ceil(limit / 2);
    while (!this.#stopping) {
      const room = limit - this.#held.size;
      // Refill in halves, not one message at a time: a fetch is a round trip.
      if (room <= 0 || (this.#held.size > 0 && room < half)) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      if (!(await this.#attempt(() => driver.fetch(room)))) return;
    }
  }

  /** One call of `fn`; false when the source is stopping (or stopped for good). */
  async #attempt(fn: () => Promise<void>): Promise<boolean> {
    for (;;) {
      if (this.#stopping) return false;
      try {
        await fn();
        this.#backoff.success();
        return !this.#stopping;
      } catch (error) {
        if (this.#stopping) return false;
        const recovery = await this.#driver.recover(error);
        if (recovery === 'again') continue;
        if (recovery !== 'quiet') this.#options.onError(error, undefined);
        if (recovery === 'fatal') {
          this.#rejectReady(error);
          void this.close();
          return false;
        }
        this.#backoff.failure();
        await this.sleep(this.#backoff.proceed());
      }
    }
  }

  #pump(): void {
    while (this.#writing < this.#options.concurrency && !this.#stopping) {
      let held: Held<M> | undefined;
      if (this.#due.length > 0) held = this.#due.shift();
      else if (this.#buffer.length > 0) held = this.#buffer.shift();
      if (held === undefined) break;
      held.writing = true;
      this.#writing++;
      void this.#handle(held);
    }
  }

  async #handle(held: Held<M>): Promise<void> {
    const { message } = held;
    let keep = false;
    try {
      let event: E;
      try {
        event = this.#driver.decode(message) as E;
      } catch (error) {
        this.#options.onError(error, undefined);
        await this.#deadLetter(held, error, undefined, held.failures);
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
      // The close deadline passed while the write ran: never acknowledge it.
      if (held.abandoned) return;
      if (!failed) {
        this.#counted.delete(held.key);
        this.#driver.ack(message);
        return;
      }
      this.#options.onError(failure, event);
      if (isSinkClosedError(failure)) {
        // The destination is gone for good: nothing was delivered, retrying cannot help and
        // dead-lettering would lose the message for the group. Stop first (no message may reach
        // this source again), hand it back, close.
        this.#stop();
        await this.#handBack([message]);
        void this.close();
        return;
      }
      const failures = held.failures + 1;
      if (failures >= this.#options.maxDeliveries) {
        await this.#deadLetter(held, failure, event, failures);
        return;
      }
      if (this.#stopping) {
        await this.#handBack([message]);
        return;
      }
      const delay = this.#retryDelay(failures);
      if (this.#driver.retry !== undefined) {
        if (this.#driver.failures === undefined) this.#count(held.key, failures);
        try {
          await this.#driver.retry(message, delay, failures, failure);
        } catch (error) {
          // Not redelivered later: left unacknowledged, the broker redelivers it anyway.
          if (!this.#stopping) this.#options.onError(error, event);
        }
        return;
      }
      held.failures = failures;
      keep = true;
      this.#later(held, delay);
    } finally {
      held.writing = false;
      this.#writing--;
      if (!keep) this.#held.delete(held);
      this.#pump();
      this.#wake?.();
      if (this.#writing === 0) this.#life.idle();
    }
  }

  /** A local retry: waits without a write slot, then goes before the buffer. */
  #later(held: Held<M>, delay: number): void {
    this.#waiting++;
    held.timer = setTimeout(() => {
      held.timer = undefined;
      this.#waiting--;
      if (this.#stopping) return;
      this.#due.push(held);
      this.#pump();
    }, delay);
  }

  #count(key: string, failures: number): void {
    this.#counted.delete(key);
    this.#counted.set(key, failures);
    if (this.#counted.size > MAX_COUNTED) {
      const oldest = this.#counted.keys().next().value;
      if (oldest !== undefined) this.#counted.delete(oldest);
    }
  }

  async #deadLetter(
    held: Held<M>,
    error: unknown,
    event: E | undefined,
    failures: number,
  ): Promise<void> {
    if (this.#life.aborted) return;
    this.#counted.delete(held.key);
    try {
      await this.#driver.deadLetter(held.message, error, event, failures);
    } catch (dlqError) {
      // Left unacknowledged: redelivered later, and dead-lettered then.
      this.#options.onError(dlqError, event);
    }
  }

  async #handBack(messages: M[]): Promise<void> {
    if (messages.length === 0) return;
    try {
      await this.#driver.handBack(messages);
    } catch (error) {
      // Still unacknowledged: the broker redelivers them after its own timeout.
      this.#options.onError(error, undefined);
    }
  }

  #extend(): void {
    if (this.#held.size === 0 || this.#stopping) return;
    const messages = [...this.#held].map((held) => held.message);
    try {
      void Promise.resolve(this.#driver.extend!(messages)).catch(noop);
    } catch {
      // A missed heartbeat at worst lets a peer redeliver: a duplicate, not a loss.
    }
  }

  /** Stop fetching and starting writes; wake everything that waits. */
  #stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#removeSignal();
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#driver.interrupt?.();
    this.#wake?.();
  }

  async #drain(): Promise<void> {
    this.#stop();
    // Fetched but never started, and retries still waiting: back to the group at once.
    const unstarted: M[] = [];
    for (const held of [...this.#buffer.drain(), ...this.#due.splice(0)]) {
      this.#held.delete(held);
      unstarted.push(held.message);
    }
    for (const held of this.#held) {
      if (held.timer === undefined) continue;
      clearTimeout(held.timer);
      held.timer = undefined;
      this.#waiting--;
      this.#held.delete(held);
      unstarted.push(held.message);
    }
    await this.#life.until(this.#handBack(unstarted));
    await this.#life.until(this.#loop ?? Promise.resolve());
    if (this.#writing > 0) await this.#life.untilIdle();
  }

  // close()'s deadline passed: the writes still running are never acknowledged.
  #abort(): void {
    const abandoned: M[] = [];
    for (const held of this.#held) {
      if (!held.writing || held.abandoned) continue;
      held.abandoned = true;
      abandoned.push(held.message);
    }
    this.#held.clear();
    if (abandoned.length > 0) this.#driver.abandon?.(abandoned);
  }
}

function sanitize(ms: unknown): number {
  return typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? ms : 0;
}

function noop(): void {}
