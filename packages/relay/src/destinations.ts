// One destination of the relay: its match/ignore filter, the key its events are ordered by, and
// a Dispatcher that delivers its pending deliveries from the store to its target (webhook,
// stdout, file or broker) with its concurrency, rate limit, retries and dead letters. Its events
// live in the relay's one store, so one dead endpoint never holds up another.
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AdminDestination, DestinationStatus } from './admin.js';
import { Dispatcher } from './delivery/Dispatcher.js';
import type { Target } from './delivery/Target.js';
import { createTarget } from './delivery/targets.js';
import { field, makeEventTypePredicate, makePredicate, type Envelope } from './envelope.js';
import type { RelayMetrics } from './metrics.js';
import type { DestinationConfig, RelayConfig } from './schema.js';
import type { DeliveryCounts, PendingDelivery, Store } from './store/Store.js';

export interface DestinationContext {
  config: RelayConfig;
  metrics: RelayMetrics;
  logger: Logger;
  stdout: NodeJS.WritableStream;
  store: Store;
}

/**
 * The queue and dead-letter files a destination had in the previous release (one SQLite file
 * each); the store migrates them on first start (store/migrate.ts).
 */
export function destinationFiles(dataDir: string, name: string): { queue: string; dead: string } {
  return { queue: join(dataDir, `${name}.queue.db`), dead: join(dataDir, `${name}.dead.db`) };
}

/** The text of an ordering key: strings as they are, numbers and booleans as JSON. */
function keyText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value);
  // An object or array as a key: its JSON, so equal values order together.
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return undefined;
}

/** A running destination. */
export class Destination implements AdminDestination {
  readonly name: string;
  readonly config: DestinationConfig;
  readonly #store: Store;
  readonly #dispatcher: Dispatcher;
  readonly #predicate: ((envelope: Envelope) => boolean) | undefined;
  readonly #log: Logger;
  /** Events moved to the dead letter to make room (`whenFull: dead-letter`). */
  overflowed = 0;
  // Dead deliveries in the store: counted at start, then kept up to date by the hooks.
  #dead = 0;

  /**
   * @param target - for tests; by default the target its config names ({@link createTarget}).
   */
  constructor(config: DestinationConfig, context: DestinationContext, target?: Target) {
    this.name = config.name;
    this.config = config;
    this.#store = context.store;
    const log = context.logger.child({ destination: config.name });
    this.#log = log;
    const fields = makePredicate(config.match, config.ignore);
    const types = makeEventTypePredicate(config.eventTypes, context.config.eventTypeField);
    // Both must pass (AND); either alone is the predicate.
    this.#predicate =
      fields !== undefined && types !== undefined
        ? (envelope) => types(envelope) && fields(envelope)
        : (fields ?? types);
    const { metrics } = context;
    const labels = { destination: config.name };
    this.#dispatcher = new Dispatcher({
      name: config.name,
      store: context.store,
      target:
        target ??
        createTarget(config, { stdout: context.stdout, warn: (message) => log.warn(message) }),
      concurrency: config.concurrency,
      ...(config.batch ? { batch: config.batch } : {}),
      ...(config.rateLimit ? { rateLimit: { perSecond: config.rateLimit.perSecond } } : {}),
      retry: config.retry,
      maxRetryAfter: config.type === 'webhook' ? config.maxRetryAfter : 300_000,
      ...(config.disableAfter !== undefined ? { disableAfter: config.disableAfter } : {}),
      enabled: config.enabled,
      // Many relays may share a PostgreSQL store: deliver only what this relay claimed.
      ...(context.config.store.type === 'postgres'
        ? { claiming: { leaseTimeout: context.config.store.leaseTimeout } }
        : {}),
      logger: log,
      hooks: {
        delivered: (envelopes, now) => {
          for (const e of envelopes) metrics.latency.observe(labels, (now - e.receivedAt) / 1000);
        },
        dead: (count) => {
          this.#dead += count;
        },
        state: (state) => {
          if (state === 'disabled') metrics.disabled.inc(labels);
        },
      },
    });
  }

  /** `webhook`, `stdout`, … */
  get type(): string {
    return this.config.type;
  }

  /** Loads what the store holds for this destination and starts delivering it. */
  async start(): Promise<void> {
    const counts: DeliveryCounts = await this.#store.counts(this.name);
    this.#dead = counts.dead;
    await this.#dispatcher.start(counts.pending);
  }

  /** The ordering key of `event` for this destination, if it has an `orderingKey`. */
  keyOf(event: Record<string, unknown>): string | undefined {
    const path = this.config.orderingKey;
    return path === undefined ? undefined : keyText(field(event, path));
  }

  /** Deliveries just stored for this destination, in seq order. */
  offer(deliveries: readonly PendingDelivery[]): void {
    if (deliveries.length > 0) this.#dispatcher.offer(deliveries);
  }

  /** Events accepted by the target since the relay started. */
  get delivered(): number {
    return this.#dispatcher.delivered;
  }

  /** Failed delivery attempts since the relay started, each retry counting. */
  get failedAttempts(): number {
    return this.#dispatcher.failedAttempts;
  }

  /** Events given up on since the relay started (overflow included). */
  get deadLettered(): number {
    return this.#dispatcher.deadLettered;
  }

  /** Events stored and not yet delivered. */
  get pending(): number {
    return this.#dispatcher.pending;
  }

  /** Requests (or batches) being sent. */
  get inFlight(): number {
    return this.#dispatcher.inFlight;
  }

  /** Dead deliveries kept in the store. */
  get deadLetters(): number {
    return this.#dead;
  }

  /** `healthy`, `failing` (the last attempt failed) or `disabled`. */
  get state(): 'healthy' | 'failing' | 'disabled' {
    return this.#dispatcher.state;
  }

  get lastError(): string | undefined {
    return this.#dispatcher.lastError;
  }

  /** The destination as the admin API shows it. */
  status(): DestinationStatus {
    const lastSuccessAt = this.#dispatcher.lastSuccessAt;
    return {
      name: this.name,
      type: this.config.type,
      state: this.state,
      pending: this.pending,
      inFlight: this.inFlight,
      delivered: this.delivered,
      failed: this.failedAttempts,
      deadLetters: this.deadLetters,
      lastError: this.lastError ?? null,
      lastSuccessAt: lastSuccessAt === undefined ? null : new Date(lastSuccessAt).toISOString(),
    };
  }

  /** Resumes delivery (after an operator's or `disableAfter`'s disable). */
  async enable(): Promise<void> {
    await this.#dispatcher.enable();
    this.#log.info('destination enabled');
  }

  /** Stops delivery; its events stay stored and keep arriving. */
  async disable(): Promise<void> {
    await this.#dispatcher.disable('admin');
    this.#log.warn('destination disabled by an operator; its events are kept until it is enabled');
  }

  /** Delivers message `id` again (same id, so the same `webhook-id`); false when there is none. */
  async resend(id: string): Promise<boolean> {
    const before = await this.#store.getMessage(id);
    if (before === undefined) return false;
    const wasDead = before.deliveries.some(
      (d) => d.destination === this.name && d.status === 'dead',
    );
    const delivery = await this.#store.resend(id, this.name);
    if (delivery === undefined) return false;
    if (wasDead) this.#dead = Math.max(0, this.#dead - 1);
    // With the whole retry budget again: the store counts its attempts from 0 (and keeps the log).
    this.#dispatcher.requeue(delivery);
    this.#log.info({ id }, 'message resent');
    return true;
  }

  /** Dead letters that died at or after `since` go back to pending; returns how many. */
  async replay(since: number): Promise<number> {
    let replayed = 0;
    for (;;) {
      const page = await this.#store.replayDead(this.name, since, 500);
      // Each with the whole retry budget again (the store counts its attempts from 0).
      for (const delivery of page) this.#dispatcher.requeue(delivery);
      replayed += page.length;
      this.#dead = Math.max(0, this.#dead - page.length);
      if (page.length < 500) return replayed;
    }
  }

  /** How many of `envelopes` this destination takes (its `eventTypes` and `match`/`ignore`). */
  matching(envelopes: readonly Envelope[]): number {
    const predicate = this.#predicate;
    if (predicate === undefined) return envelopes.length;
    let count = 0;
    for (const envelope of envelopes) if (predicate(envelope)) count++;
    return count;
  }

  /** True when this destination takes `envelope`. */
  takes(envelope: Envelope): boolean {
    return this.#predicate === undefined || this.#predicate(envelope);
  }

  /**
   * Moves up to `count` of the oldest waiting events (not being delivered) to the dead letter
   * with reason `overflow`. Returns how many were moved.
   */
  async overflow(count: number): Promise<number> {
    const moved = await this.#dispatcher.overflow(
      count,
      `overflow: more than maxPending (${this.config.maxPending}) events were waiting`,
    );
    // The dispatcher counts them as dead letters (its `dead` hook), this as overflow.
    this.overflowed += moved;
    return moved;
  }

  /**
   * Delivers until `signal` aborts, then leaves the rest in the store. Resolves shortly after
   * the abort whatever the target does (see Dispatcher.close).
   */
  close(signal?: AbortSignal): Promise<void> {
    return this.#dispatcher.close(signal ? { signal } : {});
  }
}
