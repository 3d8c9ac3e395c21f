// A destination's delivery scheduler: takes its pending deliveries from the store (a window in
// memory, paged in by seq), sends them through its Target with `concurrency` requests in
// flight, one at a time per ordering key, within its rate limit, and records every attempt.
//
// Claiming mode (a store shared by many relays, PostgreSQL): instead of paging every pending
// delivery into memory, the dispatcher holds only what it claimed (`store.claim`: due heads of
// keys, leased to this relay), a few requests' worth ahead, renews those leases while it holds
// them, and claims again after `record` released some (the next head of a key), on a
// `store.subscribe` wake-up, at a retry's due time, and on a slow poll. A retry is not kept in
// memory: its record releases the lease, and whichever relay claims it when due sends it.
//
// Units: what one request carries — one delivery, or a batch. A unit lives from its first
// attempt until it is delivered or dead, so a retry carries the same members (and batch id),
// and a key stays held by it while it waits to try again.
import type { Logger } from 'pino';
import type { Envelope } from '../envelope.js';
import { DeliveryHealth } from '../health.js';
import { errorText } from '../logger.js';
import type { AttemptRecord, PendingDelivery, Store } from '../store/Store.js';
import type { AttemptOutcome, Target } from './Target.js';
import { Heap } from './Heap.js';
import { TokenBucket } from './TokenBucket.js';
import { backoffDelay, type BackoffConfig } from './backoff.js';
import { startAttempt } from '../telemetry.js';

/** The time and timers the dispatcher uses; tests pass a fake one. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Date.now and unref'd timers: no dispatcher timer keeps the process alive. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return timer;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

/** How a destination stands: `failing` from a failed attempt until the next success. */
export type DispatcherState = 'healthy' | 'failing' | 'disabled';

/** Callbacks for metrics; an exception thrown by one is logged and ignored. */
export interface DispatcherHooks {
  /** Events delivered by one attempt. */
  delivered?(envelopes: readonly Envelope[], now: number): void;
  /** An attempt failed (retried or not). */
  failed?(outcome: AttemptOutcome): void;
  /** `count` events were given up on after `outcome`. */
  dead?(count: number, outcome: AttemptOutcome): void;
  /** The state changed. */
  state?(state: DispatcherState): void;
}

/** Options of {@link Dispatcher}. Durations in ms. */
export interface DispatcherOptions {
  /** The destination. */
  name: string;
  store: Pick<
    Store,
    'pending' | 'seal' | 'record' | 'destination' | 'updateDestination' | 'overflow'
  > &
    Partial<Pick<Store, 'claim' | 'renew' | 'subscribe' | 'counts' | 'release'>>;
  target: Target;
  /** Requests (or batches) in flight at most. */
  concurrency: number;
  batch?: { maxSize: number; maxDelay: number };
  rateLimit?: { perSecond: number };
  retry: { maxAttempts: number; backoff: BackoffConfig };
  /** The longest Retry-After honoured. */
  maxRetryAfter: number;
  /** Disable the destination once it has failed without a success this long. */
  disableAfter?: number;
  /** The configuration's `enabled`. */
  enabled: boolean;
  logger: Logger;
  hooks?: DispatcherHooks;
  /** Default {@link realClock}. */
  clock?: Clock;
  /** Backoff jitter, uniform in [0, 1); default Math.random. */
  random?: () => number;
  /** Deliveries held in memory at most; default 10 000. */
  window?: number;
  /**
   * Deliver only what this relay claims from a store shared with other relays (the store must
   * have `claim`, `renew` and `subscribe`). Absent: page every pending delivery (one relay).
   */
  claiming?: ClaimingOptions;
}

/** Options of the dispatcher's claiming mode. Durations in ms. */
export interface ClaimingOptions {
  /** The store's lease timeout: leases are renewed every third of it. */
  leaseTimeout: number;
  /** How often an idle dispatcher claims anyway (notifications are hints); default 1000. */
  pollInterval?: number;
  /**
   * Deliveries held (claimed) at most, those in flight included; default 1.5 × concurrency ×
   * batch size, within `window`.
   */
  prefetch?: number;
}

interface Item {
  d: PendingDelivery;
  env: Envelope;
  /** The unit carrying it, once it has one. */
  unit: Unit | undefined;
  /** Dropped from memory (delivered, dead, overflowed). */
  gone: boolean;
  /** A requeue came while it was being sent: pending again after this attempt. */
  resend: boolean;
}

interface Unit {
  items: Item[];
  batchId: string | undefined;
  sealed: boolean;
  attempts: number;
  nextAt: number;
  keys: Set<string>;
  inFlight: boolean;
  /** In #waiting (with an entry whose `at` is its nextAt). */
  waiting: boolean;
  /** Delivered, dead or emptied by an overflow. */
  done: boolean;
  /** When its first member joined (an open batch waits at most maxDelay from then). */
  openedAt: number;
}

interface KeyState {
  /** Its deliveries in memory without a unit, by seq. */
  queue: Item[];
  /** The unit holding the key (in flight, waiting to retry, or an open batch). */
  unit: Unit | undefined;
}

const LOAD_RETRY_MS = 1000;
const SEAL_RETRY_MS = 1000;
const FLUSH_RETRY_MS = 1000;
/** store.record calls at once in claiming mode (each takes a connection of the store's pool). */
const PARALLEL_RECORDS = 4;
/** How long close waits for the target after an abort before it gives up on it. */
const ABORT_GRACE_MS = 100;

function bySeq(a: Item, b: Item): boolean {
  return a.d.seq < b.d.seq;
}

/** A heap entry with the due time it was pushed with (the item's may change later). */
interface Due<T> {
  at: number;
  seq: number;
  value: T;
}

function byDue<T>(a: Due<T>, b: Due<T>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

function insertBySeq(queue: Item[], item: Item): void {
  let lo = 0;
  let hi = queue.length;
  if (hi === 0 || (queue[hi - 1] as Item).d.seq < item.d.seq) {
    queue.push(item);
    return;
  }
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((queue[mid] as Item).d.seq < item.d.seq) lo = mid + 1;
    else hi = mid;
  }
  queue.splice(lo, 0, item);
}

function aborted(signal: AbortSignal | undefined): { promise: Promise<void>; dispose(): void } {
  if (signal === undefined) return { promise: new Promise(() => {}), dispose() {} };
  if (signal.aborted) return { promise: Promise.resolve(), dispose() {} };
  let listener = (): void => {};
  const promise = new Promise<void>((resolve) => {
    listener = () => resolve();
    signal.addEventListener('abort', listener, { once: true });
  });
  return { promise, dispose: () => signal.removeEventListener('abort', listener) };
}

/**
 * Delivers one destination's pending deliveries from the store through its target: at most
 * `concurrency` requests in flight, a key's events one at a time in seq order, retries with
 * backoff, Retry-After pausing the whole destination, an optional rate limit and batches, and
 * every attempt recorded with `store.record` (one call per event-loop turn).
 *
 * @example
 * ```ts
 * const dispatcher = new Dispatcher({ name: 'hooks', store, target, concurrency: 16,
 *   retry: { maxAttempts: 10, backoff: { base: 1000, factor: 1000, max: 60_000 } },
 *   maxRetryAfter: 300_000, enabled: true, logger });
 * await dispatcher.start(counts.pending);
 * ```
 */
// How often a drain looks whether everything is delivered.
const DRAIN_POLL_MS = 25;

// The key every delivery without one shares at concurrency 1 (no field path can produce it).
const STRICT_KEY = '\u0000strict';

export class Dispatcher {
  readonly #o: DispatcherOptions;
  readonly #name: string;
  readonly #store: DispatcherOptions['store'];
  readonly #target: Target;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #window: number;
  readonly #log: Logger;
  readonly #health: DeliveryHealth;
  readonly #bucket: TokenBucket | undefined;

  readonly #items = new Map<number, Item>();
  readonly #keys = new Map<string, KeyState>();
  /** Due deliveries without a unit that may go now (unkeyed, or the head of a free key). */
  readonly #ready = new Heap<Item>(bySeq);
  /** Like #ready, not due yet. */
  readonly #later = new Heap<Due<Item>>(byDue);
  /** Units waiting for their next attempt (retries, batches sealed before a restart). */
  readonly #waiting = new Heap<Due<Unit>>(byDue);
  /** Units re-formed from the store by batch id, until they are sent. */
  readonly #sealed = new Map<string, Unit>();
  #open: Unit | undefined;
  readonly #busy = new Set<number>();
  readonly #inFlightUnits = new Set<Unit>();

  #pending = 0;
  #cursor = 0;
  readonly #strict: boolean;
  #caughtUp = false;
  #loading = false;
  #offeredDuringLoad = false;

  readonly #claiming: Required<ClaimingOptions> | undefined;
  #pollTimer: unknown;
  #renewTimer: unknown;
  #unsubscribe: (() => void) | undefined;
  /** The last claim came back short: nothing more to claim until something changes. */
  #claimedAll = false;

  #records: AttemptRecord[] = [];
  readonly #flushes = new Set<Promise<void>>();
  #flushScheduled = false;
  #flushRetry: unknown;
  #persist: Promise<void> = Promise.resolve();

  #timer: unknown;
  #timerAt = Infinity;
  #pausedUntil = 0;
  #pumping = false;
  #started = false;
  #closing = false;
  /** After an aborted close: late outcomes are not recorded (their deliveries stay pending). */
  #abandoned = false;
  #idle: (() => void) | undefined;

  #disabled = false;
  #failing = false;
  #failingSince: number | undefined;
  #lastError: string | undefined;
  #lastSuccessAt: number | undefined;
  #successUnsaved = false;
  #delivered = 0;
  #failedAttempts = 0;
  #deadLettered = 0;

  /** @throws RangeError naming a bad `concurrency`, `window`, `batch` or `rateLimit` value. */
  constructor(options: DispatcherOptions) {
    const { concurrency, batch } = options;
    this.#strict = concurrency === 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(
        `destination ${options.name}: expected \`concurrency\` to be a positive integer, got ${concurrency}`,
      );
    }
    this.#window = options.window ?? 10_000;
    if (!Number.isInteger(this.#window) || this.#window < 1) {
      throw new RangeError(
        `destination ${options.name}: expected \`window\` to be a positive integer, got ${this.#window}`,
      );
    }
    if (batch !== undefined && (!Number.isInteger(batch.maxSize) || batch.maxSize < 1)) {
      throw new RangeError(
        `destination ${options.name}: expected \`batch.maxSize\` to be a positive integer, got ${batch.maxSize}`,
      );
    }
    this.#o = options;
    const { claiming } = options;
    if (claiming !== undefined) {
      const { claim, renew, subscribe, counts } = options.store;
      if (
        claim === undefined ||
        renew === undefined ||
        subscribe === undefined ||
        counts === undefined
      ) {
        throw new TypeError(
          `destination ${options.name}: claiming needs a store with claim, renew, subscribe and counts`,
        );
      }
      if (!(claiming.leaseTimeout > 0)) {
        throw new RangeError(
          `destination ${options.name}: expected \`leaseTimeout\` to be positive, got ${claiming.leaseTimeout}`,
        );
      }
      this.#claiming = {
        leaseTimeout: claiming.leaseTimeout,
        pollInterval: claiming.pollInterval ?? 1000,
        prefetch: Math.min(
          this.#window,
          // Half a round ahead of what it sends at once: a slot that frees starts the next
          // delivery from memory instead of waiting for a claim's round trip (measured on
          // PostgreSQL: 73% of the receiver's limit without it). Not more: a claimed head not
          // being sent holds its key back from every other relay (2× halved delivery with 3).
          claiming.prefetch ?? Math.ceil(concurrency * (batch?.maxSize ?? 1) * 1.5),
        ),
      };
    }
    this.#name = options.name;
    this.#store = options.store;
    this.#target = options.target;
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
    this.#log = options.logger;
    const now = (): number => this.#clock.now();
    this.#health = new DeliveryHealth(this.#log, { now });
    this.#bucket =
      options.rateLimit === undefined
        ? undefined
        : new TokenBucket({ perSecond: options.rateLimit.perSecond, now });
  }

  /**
   * Deliveries waiting (in memory or only in the store), in events. Claiming: for every relay
   * on the store, as of the last poll plus what happened here since.
   */
  get pending(): number {
    return this.#pending;
  }

  /** Requests (or batches) being sent. */
  get inFlight(): number {
    return this.#inFlightUnits.size;
  }

  /** The seqs being sent (an overflow must not take them). */
  get busy(): ReadonlySet<number> {
    return this.#busy;
  }

  /** `disabled` (configured, by an operator or by disableAfter), else failing or healthy. */
  get state(): DispatcherState {
    if (this.#disabled) return 'disabled';
    return this.#failing ? 'failing' : 'healthy';
  }

  /** The last failed attempt's error. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** When an attempt last succeeded, ms since the epoch. */
  get lastSuccessAt(): number | undefined {
    return this.#lastSuccessAt;
  }

  /** Events delivered since start. */
  get delivered(): number {
    return this.#delivered;
  }

  /** Events carried by failed attempts since start. */
  get failedAttempts(): number {
    return this.#failedAttempts;
  }

  /** Events given up on since start. */
  get deadLettered(): number {
    return this.#deadLettered;
  }

  /**
   * Reads the destination's runtime state, loads the first page of pending deliveries and
   * starts delivering. `initialPending` is the store's pending count for it.
   */
  async start(initialPending: number): Promise<void> {
    this.#pending += initialPending;
    const record = await this.#store.destination(this.#name);
    this.#disabled =
      record.state === 'disabled' || (record.state !== 'enabled' && !this.#o.enabled);
    // 0 stands for "not failing" (see #clearFailing).
    this.#failingSince = record.failingSince || undefined;
    this.#failing = this.#failingSince !== undefined;
    this.#lastError = record.lastError;
    this.#lastSuccessAt = record.lastSuccessAt;
    this.#started = true;
    if (this.#claiming !== undefined) {
      const name = this.#name;
      this.#unsubscribe = this.#store.subscribe?.((destination) => {
        if (destination !== name) return;
        this.#claimedAll = false;
        this.#maybeLoad();
      });
      this.#poll();
      this.#scheduleRenew();
    }
    await this.#load();
    this.#pump();
  }

  /**
   * Deliveries just stored for this destination, in seq order: kept in memory when the
   * dispatcher has everything before them and room; else the next page brings them.
   */
  offer(deliveries: readonly PendingDelivery[]): void {
    const n = deliveries.length;
    if (n === 0) return;
    this.#pending += n;
    if (this.#closing) return;
    if (this.#loading) this.#offeredDuringLoad = true;
    if (this.#claiming !== undefined) {
      // Not leased to this relay: claim them (or another relay does).
      this.#claimedAll = false;
      this.#maybeLoad();
      return;
    }
    if (!this.#started || !this.#caughtUp || this.#items.size + n > this.#window) {
      this.#caughtUp = false;
      this.#maybeLoad();
      return;
    }
    for (const d of deliveries) {
      if (d.seq > this.#cursor) this.#cursor = d.seq;
      if (!this.#items.has(d.seq)) this.#add(d);
    }
    this.#pump();
  }

  /** A delivery a resend or replay set pending again (any seq), due at once. */
  requeue(delivery: PendingDelivery): void {
    if (this.#claiming !== undefined) {
      const existing = this.#items.get(delivery.seq);
      if (existing?.unit?.inFlight === true) {
        existing.resend = true;
        return;
      }
      // Pending again in the store (not leased): whichever relay claims it first sends it.
      if (this.#loading) this.#offeredDuringLoad = true;
      this.#claimedAll = false;
      this.#maybeLoad();
      return;
    }
    const existing = this.#items.get(delivery.seq);
    if (existing !== undefined) {
      if (existing.unit?.inFlight === true) {
        existing.resend = true;
        this.#pending++;
        return;
      }
      // With the whole retry budget again, as the store now counts it.
      existing.d = { ...existing.d, attempts: 0 };
      if (existing.unit?.items.length === 1) existing.unit.attempts = 0;
      if (existing.unit === undefined && existing.d.nextAt > 0) {
        // Due at once; its #later entry is skipped when it comes up (it has a unit by then).
        existing.d = { ...existing.d, nextAt: 0 };
        this.#schedule(existing);
      } else if (existing.unit?.waiting === true && existing.unit.nextAt > 0) {
        existing.unit.nextAt = 0;
        this.#wait(existing.unit);
      }
      this.#pump();
      return;
    }
    this.#pending++;
    if (this.#closing) return;
    // Above the cursor it is in a page still to come, unless every page was read already (a
    // replay of what died before this start, whose seqs are above a cursor that never moved).
    if (delivery.seq > this.#cursor && !this.#caughtUp) {
      this.#maybeLoad();
      return;
    }
    this.#add({ ...delivery, nextAt: 0, batchId: undefined });
    this.#pump();
  }

  /**
   * Moves up to `count` of the oldest pending deliveries that are not being sent to dead
   * (`store.overflow`), drops them from memory and returns how many it moved.
   */
  async overflow(count: number, reason: string): Promise<number> {
    // Being delivered: in flight, or tried and waiting for its next attempt (as before the
    // store, when a retry's wait was part of the delivery). Only untried events make room.
    const busy = new Set(this.#busy);
    for (const [seq, item] of this.#items)
      if (item.unit !== undefined || item.d.attempts > 0 || this.#claiming !== undefined)
        busy.add(seq);
    const moved = await this.#store.overflow(this.#name, count, busy, reason);
    for (const seq of moved) {
      const item = this.#items.get(seq);
      if (item === undefined) continue;
      const unit = item.unit;
      if (unit !== undefined) {
        if (unit.inFlight) continue; // the store did not take it; cannot happen with #busy
        unit.items = unit.items.filter((i) => i !== item);
        this.#drop(item);
        if (unit.items.length === 0) {
          this.#endUnit(unit);
          if (this.#open === unit) this.#open = undefined;
        }
      } else {
        const key = item.d.key;
        if (key !== undefined) {
          const state = this.#keys.get(key);
          if (state !== undefined) {
            const at = state.queue.indexOf(item);
            if (at >= 0) state.queue.splice(at, 1);
            // The next one may go, unless the key is held by a request of its own (a retry).
            if (at === 0 && state.unit === undefined) this.#releaseKey(key);
          }
        }
        this.#drop(item);
      }
    }
    this.#pending = Math.max(0, this.#pending - moved.length);
    this.#deadLettered += moved.length;
    if (moved.length > 0) {
      const outcome: AttemptOutcome = { ok: false, retryable: false, error: reason };
      this.#call('dead', () => this.#o.hooks?.dead?.(moved.length, outcome));
      this.#log.warn(
        { destination: this.#name, count: moved.length, reason },
        `destination ${this.#name}: ${moved.length} pending deliveries dead-lettered: ${reason}`,
      );
    }
    this.#maybeLoad();
    this.#pump();
    return moved.length;
  }

  /** Clears a disable (by an operator or disableAfter) and resumes; persisted. */
  async enable(): Promise<void> {
    this.#disabled = false;
    // Still `failing` until a success (which then saves lastSuccessAt); disableAfter counts anew.
    this.#failingSince = undefined;
    await this.#update({ state: 'enabled', failingSince: 0 });
    this.#log.info(
      { destination: this.#name, state: 'enabled' },
      `destination ${this.#name} enabled`,
    );
    this.#emitState();
    this.#claimedAll = false;
    this.#maybeLoad();
    this.#pump();
  }

  /** Stops starting attempts (those in flight finish and are recorded); persisted. */
  async disable(reason: string): Promise<void> {
    this.#disabled = true;
    this.#clearTimer();
    await this.#update({ state: 'disabled', reason });
    this.#log.warn(
      { destination: this.#name, state: 'disabled', reason },
      `destination ${this.#name} disabled: ${reason}`,
    );
    this.#emitState();
  }

  /**
   * Stops starting attempts, waits for those in flight until they end or `signal` aborts, closes
   * the target, flushes the attempt log. An attempt still in flight after an abort is not
   * recorded: its deliveries stay pending and go again after a restart.
   */
  async close(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    // A drain: with a deadline, delivery (retries included) goes on until nothing is pending
    // or the deadline comes; what is left stays pending in the store for the next start.
    if (signal !== undefined && !signal.aborted && !this.#closing && this.state !== 'disabled') {
      await this.#drained(signal);
    }
    this.#closing = true;
    this.#clearTimer();
    this.#stopClaiming();
    // At once, not after the requests in flight: the other relays may send them meanwhile.
    const releasing = this.#releaseClaimed();
    const abort = aborted(signal);
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    try {
      if (this.#inFlightUnits.size > 0) {
        const idle = new Promise<void>((resolve) => {
          this.#idle = resolve;
        });
        await Promise.race([idle, abort.promise]);
      }
      if (this.#inFlightUnits.size > 0) {
        this.#abandoned = true;
        this.#log.warn(
          { destination: this.#name, inFlight: this.#inFlightUnits.size },
          `destination ${this.#name}: closed with ${this.#inFlightUnits.size} requests in flight; their events stay pending`,
        );
      }
      const closing = this.#target
        .close(signal === undefined ? {} : { signal })
        .catch((error: unknown) => {
          this.#log.error(
            { err: error, destination: this.#name },
            `destination ${this.#name}: closing its target failed`,
          );
        });
      const grace = abort.promise.then(
        () =>
          new Promise<void>((resolve) => {
            graceTimer = setTimeout(resolve, ABORT_GRACE_MS);
          }),
      );
      await Promise.race([closing, grace]);
      this.#clock.clearTimeout(this.#flushRetry);
      this.#flushRetry = undefined;
      await Promise.race([this.#flushAll(), grace]);
      if (this.#successUnsaved && this.#lastSuccessAt !== undefined) {
        void this.#update({ lastSuccessAt: this.#lastSuccessAt });
      }
      await Promise.race([this.#persist, grace]);
      await Promise.race([releasing, grace]);
    } finally {
      abort.dispose();
      clearTimeout(graceTimer);
    }
  }

  /**
   * Claiming: gives back the leases of every claimed delivery that is not being sent (a relay
   * stopping), so another relay takes them at once instead of after the lease timeout.
   */
  async #releaseClaimed(): Promise<void> {
    const release = this.#store.release;
    if (this.#claiming === undefined || release === undefined) return;
    const seqs: number[] = [];
    for (const [seq, item] of this.#items) if (item.unit?.inFlight !== true) seqs.push(seq);
    if (seqs.length === 0) return;
    try {
      await release.call(this.#store, this.#name, seqs);
      this.#log.info(
        { destination: this.#name, released: seqs.length },
        `destination ${this.#name}: gave back ${seqs.length} claimed deliveries it did not send`,
      );
    } catch (error) {
      this.#log.warn(
        { err: error, destination: this.#name, deliveries: seqs.length },
        `destination ${this.#name}: giving back ${seqs.length} claimed deliveries failed: ${errorText(error)}; other relays take them once their leases expire`,
      );
    }
  }

  /** Resolves once nothing is pending nor in flight, or `signal` aborts. */
  #drained(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const check = (): void => {
        // Claiming: other relays deliver too, so the pending count is not this relay's to wait
        // for; drained once nothing it claimed is left and the last claim found nothing.
        const nothingLeft =
          this.#claiming === undefined
            ? this.#pending <= 0
            : this.#items.size === 0 &&
              this.#claimedAll &&
              this.#records.length === 0 &&
              this.#flushes.size === 0;
        if ((nothingLeft && this.#inFlightUnits.size === 0) || this.state === 'disabled') {
          done();
          return;
        }
        timer = setTimeout(check, DRAIN_POLL_MS);
        timer.unref?.();
      };
      signal.addEventListener('abort', done, { once: true });
      check();
    });
  }

  // ---- memory -------------------------------------------------------------------------------

  #add(delivery: PendingDelivery): void {
    // concurrency 1 is strict order: every delivery without a key of its own shares one, so a
    // retry holds back all that come after it (the relay's order before concurrency existed).
    const d =
      this.#strict && delivery.key === undefined ? { ...delivery, key: STRICT_KEY } : delivery;
    const item: Item = {
      d,
      env: { id: d.id, receivedAt: d.receivedAt, source: d.source, event: d.event },
      unit: undefined,
      gone: false,
      resend: false,
    };
    this.#items.set(d.seq, item);
    if (d.batchId !== undefined) {
      let unit = this.#sealed.get(d.batchId);
      if (unit === undefined || unit.inFlight) {
        unit = this.#newUnit(d.batchId, true);
        this.#sealed.set(d.batchId, unit);
        unit.nextAt = d.nextAt;
        this.#wait(unit);
      } else if (d.nextAt > unit.nextAt) {
        unit.nextAt = d.nextAt;
        this.#wait(unit);
      }
      this.#join(unit, item);
      return;
    }
    const key = d.key;
    if (key === undefined) {
      this.#schedule(item);
      return;
    }
    let state = this.#keys.get(key);
    if (state === undefined) {
      state = { queue: [], unit: undefined };
      this.#keys.set(key, state);
    }
    const wasHead = state.queue[0];
    insertBySeq(state.queue, item);
    if (state.unit === undefined && state.queue[0] !== wasHead) this.#schedule(item);
  }

  #newUnit(batchId: string | undefined, sealed: boolean): Unit {
    return {
      items: [],
      batchId,
      sealed,
      attempts: 0,
      nextAt: 0,
      keys: new Set(),
      inFlight: false,
      waiting: false,
      done: false,
      openedAt: this.#clock.now(),
    };
  }

  /** Puts a delivery without a unit where the scheduler finds it: #ready when due, else #later. */
  #schedule(item: Item): void {
    if (item.d.nextAt <= this.#clock.now()) this.#ready.push(item);
    else {
      this.#later.push({ at: item.d.nextAt, seq: item.d.seq, value: item });
      this.#wake(item.d.nextAt);
    }
  }

  /** Puts a unit in #waiting until its nextAt (an older entry of it goes stale). */
  #wait(unit: Unit): void {
    unit.waiting = true;
    this.#waiting.push({ at: unit.nextAt, seq: unit.items[0]?.d.seq ?? 0, value: unit });
    this.#wake(unit.nextAt);
  }

  /** True when `item` may join a unit now: in memory, without one, its key free (or `open`'s). */
  #eligible(item: Item, open: Unit | undefined): boolean {
    if (item.gone || item.unit !== undefined) return false;
    const key = item.d.key;
    if (key === undefined) return true;
    const state = this.#keys.get(key);
    return (
      state !== undefined &&
      state.queue[0] === item &&
      (state.unit === undefined || (open !== undefined && state.unit === open))
    );
  }

  #join(unit: Unit, item: Item): void {
    item.unit = unit;
    unit.items.push(item);
    unit.attempts = Math.max(unit.attempts, item.d.attempts);
    const key = item.d.key;
    if (key === undefined) return;
    let state = this.#keys.get(key);
    if (state === undefined) {
      state = { queue: [], unit: undefined };
      this.#keys.set(key, state);
    }
    const at = state.queue.indexOf(item);
    if (at >= 0) state.queue.splice(at, 1);
    state.unit = unit;
    unit.keys.add(key);
  }

  #drop(item: Item): void {
    item.gone = true;
    this.#items.delete(item.d.seq);
  }

  /** Frees `key` (its unit ended) and schedules its next delivery. */
  #releaseKey(key: string): void {
    const state = this.#keys.get(key);
    if (state === undefined) return;
    state.unit = undefined;
    const head = state.queue[0];
    if (head === undefined) this.#keys.delete(key);
    else this.#schedule(head);
  }

  #endUnit(unit: Unit): void {
    unit.done = true;
    unit.waiting = false;
    if (unit.batchId !== undefined && this.#sealed.get(unit.batchId) === unit) {
      this.#sealed.delete(unit.batchId);
    }
    for (const key of unit.keys) {
      if (this.#keys.get(key)?.unit === unit) this.#releaseKey(key);
    }
    unit.keys.clear();
  }

  #maybeLoad(): void {
    if (this.#claiming !== undefined) {
      if (!this.#started || this.#closing || this.#disabled) return;
      if (this.#loading) {
        this.#offeredDuringLoad = true;
        return;
      }
      if (this.#items.size >= this.#claiming.prefetch) return;
      void this.#load();
      return;
    }
    if (!this.#started || this.#loading || this.#caughtUp || this.#closing) return;
    if (this.#items.size >= this.#window / 2) return;
    void this.#load();
  }

  async #load(): Promise<void> {
    if (this.#claiming !== undefined) return this.#claim(this.#claiming);
    if (this.#loading) return;
    this.#loading = true;
    try {
      while (!this.#closing && this.#items.size < this.#window) {
        this.#offeredDuringLoad = false;
        const limit = this.#window - this.#items.size;
        const page = await this.#store.pending(this.#name, this.#cursor, limit);
        for (const d of page) {
          if (d.seq > this.#cursor) this.#cursor = d.seq;
          if (!this.#items.has(d.seq)) this.#add(d);
        }
        if (page.length < limit) {
          // An offer during the read may not be in it: read once more.
          if (!this.#offeredDuringLoad) {
            this.#caughtUp = true;
            break;
          }
        }
      }
    } catch (error) {
      this.#log.error(
        { err: error, destination: this.#name },
        `destination ${this.#name}: reading pending deliveries failed: ${errorText(error)}; trying again in ${LOAD_RETRY_MS / 1000}s`,
      );
      this.#clock.setTimeout(() => {
        this.#maybeLoad();
      }, LOAD_RETRY_MS);
    } finally {
      this.#loading = false;
    }
    this.#pump();
  }

  /**
   * Claims up to `prefetch` deliveries held at once, starts what it can, and claims again
   * right after when the claim came back full or a wake-up arrived while it ran (the claim may
   * have read the table before that change). One claim per call, not a loop: the sends start
   * between two claims, and `start` does not wait while notifications keep coming (measured:
   * a relay restarted under steady ingest of a few keys claimed heads forever, never sending
   * them nor answering its first request).
   */
  async #claim(claiming: Required<ClaimingOptions>): Promise<void> {
    if (this.#loading || this.#disabled) return;
    this.#loading = true;
    let again = false;
    try {
      this.#offeredDuringLoad = false;
      const limit = claiming.prefetch - this.#items.size;
      if (!this.#closing && limit > 0) {
        const claimed = await this.#store.claim!(this.#name, limit);
        for (const d of claimed) if (!this.#items.has(d.seq)) this.#add(d);
        this.#claimedAll = claimed.length < limit && !this.#offeredDuringLoad;
        again = !this.#claimedAll;
      }
    } catch (error) {
      // The poll claims again (a store down keeps failing: logged once a poll at most).
      this.#log.error(
        { err: error, destination: this.#name },
        `destination ${this.#name}: claiming deliveries failed: ${errorText(error)}; trying again in ${claiming.pollInterval / 1000}s`,
      );
    } finally {
      this.#loading = false;
    }
    this.#pump();
    if (again) this.#maybeLoad();
  }

  /** The slow poll: notifications can be lost (a reconnect, another relay's retry coming due). */
  #poll(): void {
    const claiming = this.#claiming;
    if (claiming === undefined || this.#closing) return;
    this.#pollTimer = this.#clock.setTimeout(() => {
      this.#pollTimer = undefined;
      this.#claimedAll = false;
      this.#maybeLoad();
      void this.#refreshPending();
      this.#poll();
    }, claiming.pollInterval);
  }

  /**
   * Other relays ingest and deliver this destination too, so the local count (offers minus
   * local outcomes) drifts; `pending` (maxPending, metrics) is the store's count, re-read at
   * each poll.
   */
  async #refreshPending(): Promise<void> {
    try {
      const counts = await this.#store.counts!(this.#name);
      this.#pending = counts.pending;
    } catch {
      // The claim of the same poll logs the store's trouble; the count is kept meanwhile.
    }
  }

  /** Claims at `at` (a retry of this relay coming due), on top of the poll. */
  #claimAt(at: number): void {
    const timer = this.#clock.setTimeout(
      () => {
        this.#retryTimers.delete(timer);
        this.#claimedAll = false;
        this.#maybeLoad();
      },
      Math.max(0, at - this.#clock.now()),
    );
    this.#retryTimers.add(timer);
  }

  readonly #retryTimers = new Set<unknown>();

  /** Renews the leases of every delivery held, every third of the lease timeout. */
  #scheduleRenew(): void {
    const claiming = this.#claiming;
    if (claiming === undefined || this.#closing) return;
    this.#renewTimer = this.#clock.setTimeout(() => {
      this.#renewTimer = undefined;
      void this.#renew().finally(() => this.#scheduleRenew());
    }, claiming.leaseTimeout / 3);
  }

  async #renew(): Promise<void> {
    const seqs = [...this.#items.keys()];
    if (seqs.length === 0) return;
    let held: number[];
    try {
      held = await this.#store.renew!(this.#name, seqs);
    } catch (error) {
      this.#log.error(
        { err: error, destination: this.#name, deliveries: seqs.length },
        `destination ${this.#name}: renewing ${seqs.length} leases failed: ${errorText(error)}; trying again`,
      );
      return;
    }
    const kept = new Set(held);
    let lost = 0;
    for (const seq of seqs) {
      if (kept.has(seq)) continue;
      const item = this.#items.get(seq);
      // Taken over by another relay (this one was too slow to renew): not sent from here
      // unless it is already being sent (then at worst a duplicate).
      if (item === undefined || item.unit !== undefined) continue;
      this.#forget(item);
      lost++;
    }
    if (lost > 0) {
      this.#log.warn(
        { destination: this.#name, lost },
        `destination ${this.#name}: ${lost} claimed deliveries were taken over by another relay before they were sent`,
      );
    }
  }

  /** Drops an item without a unit from memory (and its key's queue). */
  #forget(item: Item): void {
    const key = item.d.key;
    if (key !== undefined) {
      const state = this.#keys.get(key);
      if (state !== undefined) {
        const at = state.queue.indexOf(item);
        if (at >= 0) state.queue.splice(at, 1);
        if (state.queue.length === 0 && state.unit === undefined) this.#keys.delete(key);
      }
    }
    this.#drop(item);
  }

  #stopClaiming(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    if (this.#pollTimer !== undefined) this.#clock.clearTimeout(this.#pollTimer);
    if (this.#renewTimer !== undefined) this.#clock.clearTimeout(this.#renewTimer);
    this.#pollTimer = undefined;
    this.#renewTimer = undefined;
    for (const timer of this.#retryTimers) this.#clock.clearTimeout(timer);
    this.#retryTimers.clear();
  }

  // ---- scheduling ---------------------------------------------------------------------------

  #wake(at: number): void {
    if (this.#closing || at >= this.#timerAt) return;
    this.#clearTimer();
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = Infinity;
        this.#pump();
      },
      Math.max(0, at - this.#clock.now()),
    );
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  /** Starts what may start now, then sets one timer for the next thing that becomes due. */
  #pump(): void {
    if (this.#pumping || !this.#started || this.#closing || this.#disabled) return;
    this.#pumping = true;
    try {
      this.#pumpOnce();
    } finally {
      this.#pumping = false;
    }
  }

  #pumpOnce(): void {
    const now = this.#clock.now();
    if (now < this.#pausedUntil) {
      this.#wake(this.#pausedUntil);
      return;
    }
    for (
      let top = this.#later.peek();
      top !== undefined && top.at <= now;
      top = this.#later.peek()
    ) {
      this.#later.pop();
      if (this.#eligible(top.value, this.#open)) this.#ready.push(top.value);
    }
    const batch = this.#o.batch;
    while (this.#inFlightUnits.size < this.#o.concurrency) {
      const wait = this.#bucket?.wait() ?? 0;
      if (wait > 0) {
        this.#wake(now + wait);
        break;
      }
      let unit = this.#dueWaiting(now);
      let fromOpen = false;
      if (unit === undefined) {
        if (batch === undefined) {
          const item = this.#popReady(undefined);
          if (item !== undefined) {
            unit = this.#newUnit(undefined, false);
            this.#join(unit, item);
          }
        } else {
          this.#fillOpen(batch.maxSize);
          const open = this.#open;
          if (
            open !== undefined &&
            (open.items.length >= batch.maxSize || now - open.openedAt >= batch.maxDelay)
          ) {
            unit = open;
            fromOpen = true;
          } else if (open !== undefined) {
            this.#wake(open.openedAt + batch.maxDelay);
          }
        }
      }
      if (unit === undefined) break;
      this.#bucket?.take();
      if (fromOpen) this.#open = undefined;
      this.#startUnit(unit);
    }
    const nextLater = this.#later.peek();
    if (nextLater !== undefined) this.#wake(nextLater.at);
    // A due one that could not start (all slots busy) starts when an attempt ends.
    const nextWaiting = this.#waiting.peek();
    if (nextWaiting !== undefined && nextWaiting.at > now) this.#wake(nextWaiting.at);
  }

  #dueWaiting(now: number): Unit | undefined {
    for (
      let top = this.#waiting.peek();
      top !== undefined && top.at <= now;
      top = this.#waiting.peek()
    ) {
      this.#waiting.pop();
      const unit = top.value;
      if (unit.waiting && !unit.done && !unit.inFlight && top.at === unit.nextAt) {
        unit.waiting = false;
        if (unit.items.length > 0) return unit;
      }
    }
    return undefined;
  }

  #popReady(open: Unit | undefined): Item | undefined {
    for (let item = this.#ready.pop(); item !== undefined; item = this.#ready.pop()) {
      if (this.#eligible(item, open)) return item;
    }
    return undefined;
  }

  #fillOpen(maxSize: number): void {
    const now = this.#clock.now();
    while (this.#open === undefined || this.#open.items.length < maxSize) {
      const item = this.#popReady(this.#open);
      if (item === undefined) return;
      if (this.#open === undefined) this.#open = this.#newUnit(undefined, false);
      const open = this.#open;
      this.#join(open, item);
      // A batch may carry a key's next events too, in seq order.
      const key = item.d.key;
      const next = key === undefined ? undefined : this.#keys.get(key)?.queue[0];
      if (next !== undefined && next.d.nextAt <= now) this.#ready.push(next);
    }
  }

  // ---- attempts -----------------------------------------------------------------------------

  #startUnit(unit: Unit): void {
    unit.inFlight = true;
    this.#inFlightUnits.add(unit);
    for (const item of unit.items) this.#busy.add(item.d.seq);
    void this.#attempt(unit);
  }

  async #attempt(unit: Unit): Promise<void> {
    if (this.#o.batch !== undefined && unit.batchId === undefined) {
      unit.batchId = `batch_${crypto.randomUUID()}`;
    }
    if (unit.batchId !== undefined && !unit.sealed) {
      unit.items.sort((a, b) => a.d.seq - b.d.seq);
      try {
        await this.#store.seal(
          this.#name,
          unit.batchId,
          unit.items.map((i) => i.d.seq),
        );
        unit.sealed = true;
      } catch (error) {
        this.#log.error(
          { err: error, destination: this.#name, batchId: unit.batchId },
          `destination ${this.#name}: sealing batch ${unit.batchId} failed: ${errorText(error)}; trying again in ${SEAL_RETRY_MS / 1000}s`,
        );
        this.#finishFlight(unit);
        unit.nextAt = this.#clock.now() + SEAL_RETRY_MS;
        this.#wait(unit);
        this.#afterAttempt();
        return;
      }
      if (this.#abandoned) return;
    }
    const at = this.#clock.now();
    // The attempt's span (a child of the traceparent stored with its events) and metrics.
    const traced = startAttempt(
      this.#name,
      unit.items.map((i) => i.d),
      unit.attempts + 1,
      unit.batchId,
    );
    let outcome: AttemptOutcome;
    try {
      outcome = await this.#target.send(
        unit.items.map((i) => i.env),
        unit.batchId,
        { traceparent: traced.traceparent },
      );
    } catch (error) {
      // The contract says send never rejects; a bug in a target must not lose the events.
      outcome = { ok: false, retryable: true, error: errorText(error) };
    }
    traced.end(
      outcome,
      outcome.ok
        ? 'delivered'
        : !outcome.retryable || unit.attempts + 1 >= this.#o.retry.maxAttempts
          ? 'dead'
          : 'retried',
    );
    if (this.#abandoned) return;
    this.#finishFlight(unit);
    this.#settle(unit, outcome, at);
    this.#afterAttempt();
  }

  #finishFlight(unit: Unit): void {
    unit.inFlight = false;
    this.#inFlightUnits.delete(unit);
    for (const item of unit.items) this.#busy.delete(item.d.seq);
  }

  #afterAttempt(): void {
    if (this.#inFlightUnits.size === 0 && this.#idle !== undefined) {
      const idle = this.#idle;
      this.#idle = undefined;
      idle();
    }
    this.#maybeLoad();
    this.#pump();
  }

  #settle(unit: Unit, outcome: AttemptOutcome, at: number): void {
    const now = this.#clock.now();
    const n = unit.items.length;
    const seqs = unit.items.map((i) => i.d.seq);
    const record: AttemptRecord = {
      destination: this.#name,
      seqs,
      at,
      durationMs: Math.max(0, now - at),
      outcome: 'delivered',
    };
    if (outcome.status !== undefined) record.status = outcome.status;
    if (outcome.response !== undefined) record.response = outcome.response;
    if (outcome.ok) {
      this.#delivered += n;
      this.#done(unit);
      this.#push(record);
      this.#call('delivered', () =>
        this.#o.hooks?.delivered?.(
          unit.items.map((i) => i.env),
          now,
        ),
      );
      this.#succeeded(now);
      return;
    }
    const error =
      outcome.error ?? (outcome.status === undefined ? 'failed' : `status ${outcome.status}`);
    record.error = error;
    const attempts = unit.attempts + 1;
    unit.attempts = attempts;
    for (const item of unit.items) item.d = { ...item.d, attempts };
    this.#failedAttempts += n;
    this.#call('failed', () => this.#o.hooks?.failed?.(outcome));
    const retryAfter =
      outcome.retryAfter === undefined
        ? undefined
        : Math.max(0, Math.min(outcome.retryAfter, this.#o.maxRetryAfter));
    if (!outcome.retryable || attempts >= this.#o.retry.maxAttempts) {
      record.outcome = 'dead';
      this.#deadLettered += n;
      this.#done(unit);
      this.#push(record);
      this.#log.warn(
        { destination: this.#name, seqs, attempts, error },
        `destination ${this.#name}: ${n} event(s) dead-lettered after ${attempts} attempt(s): ${error}`,
      );
      this.#call('dead', () => this.#o.hooks?.dead?.(n, outcome));
    } else {
      const delay = Math.max(
        backoffDelay(attempts, this.#o.retry.backoff, this.#random),
        retryAfter ?? 0,
      );
      unit.nextAt = now + delay;
      for (const item of unit.items) item.d = { ...item.d, nextAt: unit.nextAt };
      record.outcome = 'pending';
      record.nextAt = unit.nextAt;
      this.#push(record);
      if (this.#claiming === undefined) this.#wait(unit);
      else {
        // The record releases the lease; the retry is claimed when due, here or elsewhere.
        this.#done(unit);
        this.#pending += n;
        this.#claimAt(unit.nextAt);
      }
    }
    if (retryAfter !== undefined && retryAfter > 0) {
      this.#pausedUntil = Math.max(this.#pausedUntil, now + retryAfter);
    }
    this.#failed(error, now);
  }

  /** The unit is delivered or dead: drop its members, free its keys, requeue resent ones. */
  #done(unit: Unit): void {
    const resent: Item[] = [];
    for (const item of unit.items) {
      this.#drop(item);
      if (item.resend) resent.push(item);
    }
    this.#pending = Math.max(0, this.#pending - unit.items.length);
    this.#endUnit(unit);
    for (const item of resent) {
      this.#pending--;
      this.requeue({ ...item.d, nextAt: 0, batchId: undefined });
    }
  }

  // ---- health -------------------------------------------------------------------------------

  #succeeded(now: number): void {
    this.#lastSuccessAt = now;
    this.#health.succeeded();
    if (!this.#failing) {
      this.#successUnsaved = true;
      return;
    }
    this.#failing = false;
    this.#failingSince = undefined;
    this.#successUnsaved = false;
    void this.#update({ failingSince: 0, lastSuccessAt: now });
    this.#emitState();
  }

  #failed(error: string, now: number): void {
    this.#lastError = error;
    this.#health.failed(error);
    if (this.#failingSince === undefined) {
      this.#failingSince = now;
      const change: Parameters<Store['updateDestination']>[1] = {
        failingSince: now,
        lastError: error,
      };
      if (this.#lastSuccessAt !== undefined) change.lastSuccessAt = this.#lastSuccessAt;
      this.#successUnsaved = false;
      void this.#update(change);
    }
    if (!this.#failing) {
      this.#failing = true;
      if (!this.#disabled) this.#emitState();
    }
    const { disableAfter } = this.#o;
    if (
      disableAfter !== undefined &&
      !this.#disabled &&
      this.#failingSince !== undefined &&
      now - this.#failingSince >= disableAfter
    ) {
      this.#disabled = true;
      this.#clearTimer();
      void this.#update({ state: 'disabled', reason: 'disableAfter', lastError: error });
      this.#log.error(
        {
          destination: this.#name,
          state: 'disabled',
          reason: 'disableAfter',
          failingForMs: now - this.#failingSince,
          lastError: error,
        },
        `destination ${this.#name} disabled: failing for ${Math.round((now - this.#failingSince) / 1000)}s (disableAfter); its events stay pending until it is enabled; last error: ${error}`,
      );
      this.#emitState();
    }
  }

  #emitState(): void {
    const state = this.state;
    this.#call('state', () => this.#o.hooks?.state?.(state));
  }

  /** Persists a runtime-state change after the earlier ones (so they land in order). */
  #update(change: Parameters<Store['updateDestination']>[1]): Promise<void> {
    const next = this.#persist.then(() =>
      this.#store.updateDestination(this.#name, change).catch((error: unknown) => {
        this.#log.error(
          { err: error, destination: this.#name, change },
          `destination ${this.#name}: saving its state failed: ${errorText(error)}`,
        );
      }),
    );
    this.#persist = next;
    return next;
  }

  #call(hook: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#log.error(
        { err: error, destination: this.#name, hook },
        `destination ${this.#name}: the ${hook} hook threw: ${errorText(error)}`,
      );
    }
  }

  // ---- attempt log --------------------------------------------------------------------------

  #push(record: AttemptRecord): void {
    this.#records.push(record);
    if (this.#flushScheduled || this.#abandoned) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      void this.#flush();
    });
  }

  /**
   * One store.record call with everything collected; a failed one keeps its records. One at a
   * time on a store of one relay (SQLite has one writer); in claiming mode a few at once: a
   * key's next delivery is claimable only once its head's attempt is recorded, so a record
   * must not wait for the one before it (measured on PostgreSQL with 8 keys: that wait was
   * most of each delivery's overhead).
   */
  async #flush(): Promise<void> {
    const parallel = this.#claiming === undefined ? 1 : PARALLEL_RECORDS;
    while (this.#flushes.size >= parallel) {
      // Records that came meanwhile go right after one of them.
      await Promise.race(this.#flushes);
    }
    if (this.#records.length === 0) return;
    const records = this.#records;
    this.#records = [];
    const flushing = this.#store.record(records).then(
      () => {
        // The leases are released now: the next deliveries of those keys may be claimed.
        if (this.#claiming !== undefined) {
          this.#claimedAll = false;
          this.#maybeLoad();
        }
      },
      (error: unknown) => {
        this.#records = records.concat(this.#records);
        this.#log.error(
          { err: error, destination: this.#name, attempts: records.length },
          `destination ${this.#name}: recording ${records.length} attempts failed: ${errorText(error)}; kept, trying again`,
        );
        if (!this.#closing && this.#flushRetry === undefined) {
          this.#flushRetry = this.#clock.setTimeout(() => {
            this.#flushRetry = undefined;
            void this.#flush();
          }, FLUSH_RETRY_MS);
        }
      },
    );
    this.#flushes.add(flushing);
    try {
      await flushing;
    } finally {
      this.#flushes.delete(flushing);
    }
  }

  /** Resolves once every store.record call started so far has ended (they never reject). */
  async #flushed(): Promise<void> {
    while (this.#flushes.size > 0) await Promise.all(this.#flushes);
  }

  async #flushAll(): Promise<void> {
    await this.#flush();
    await this.#flushed();
    if (this.#records.length > 0) {
      // One more try at close; what still fails is logged (the deliveries stay pending).
      await this.#flush();
      await this.#flushed();
      if (this.#records.length > 0) {
        this.#log.error(
          { destination: this.#name, attempts: this.#records.length },
          `destination ${this.#name}: ${this.#records.length} attempts could not be recorded at close; their deliveries are sent again after a restart`,
        );
      }
    }
  }
}
