// The relay: sources → the store → one dispatcher per destination. Every event that a source
// accepted (an http 202, a broker ack) is in the store first, with a delivery for each matching
// destination, in one transaction; delivery, retries and dead letters follow per destination,
// so one dead endpoint never holds up another.
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { SinkClosedError, type Sink } from 'eventsinks';
import { createAdminHandler } from './admin.js';
import { startBrokerSource, type RunningSource } from './brokers.js';
import { isDeepStrictEqual } from 'node:util';
import { ConfigError, formatProblem } from './config.js';
import type { Destination } from './destinations.js';
import { DestinationRegistry, ReloadInvalidError, type ReloadOutcome } from './registry.js';
import { envelop, idFromField, type Envelope } from './envelope.js';
import { IngestRefusedError, StoreFailedError, checkEvent } from './ingest.js';
import { createLogger } from './logger.js';
import { RelayMetrics } from './metrics.js';
import type { RelayConfig } from './schema.js';
import { createHandler } from './server.js';
import { startStdin } from './stdin.js';
import { migrateQueueFiles } from './store/migrate.js';
import { createStore } from './store/openStore.js';
import { PostgresStore } from './store/PostgresStore.js';
import { SqliteStore } from './store/SqliteStore.js';
import type { NewMessage, PendingDelivery, Store } from './store/Store.js';
import {
  startIngest,
  startTelemetry,
  traceparentOf,
  type IngestTrace,
  type RunningTelemetry,
} from './telemetry.js';

export interface RelayOptions {
  logger?: Logger;
  stdin?: NodeJS.ReadableStream;
  stdout?: NodeJS.WritableStream;
  /**
   * The configuration's input form (what `loadConfig` read, before defaults): the file
   * destinations' admin detail shows it. Without it, their validated form stands in.
   */
  input?: unknown;
  /**
   * Re-reads and validates the configuration for {@link Relay.reload} (SIGHUP,
   * `POST /admin/reload`); without it, reload is refused. Throws ConfigError when invalid.
   */
  loadConfig?: () => { config: RelayConfig; input: unknown };
}

type State = 'created' | 'starting' | 'ready' | 'draining' | 'stopped';

/** What {@link Relay.accept} did with a request's events. */
export interface Accepted {
  /** Every event of the request, in order, with its relay id (a duplicate keeps the first id). */
  envelopes: Envelope[];
  /** How many were already in the store (an `idField` id accepted before): not stored again. */
  duplicates: number;
  /** Set when the request's Idempotency-Key was seen before: the first answer, nothing stored. */
  replayed?: string;
}

/** Options of {@link Relay.accept}. */
export interface AcceptOptions {
  /** The caller checked every event with `checkEvent` already. */
  checked?: boolean;
  /** The http source's `Idempotency-Key` header. */
  idempotencyKey?: string;
  /** The answer to keep for `idempotencyKey`, from the events' ids. */
  answer?: (envelopes: readonly Envelope[]) => string;
  /**
   * The request's ingest span, started and ended by the caller (the http source); without
   * one, accept makes its own. Its `traceparent` is stored with every event that carries
   * none in `telemetry.traceparentField`.
   */
  trace?: IngestTrace;
}

/** The relay; `start()` opens the store, the server and the sources, `stop()` drains. */
export class Relay {
  readonly config: RelayConfig;
  readonly logger: Logger;
  readonly metrics: RelayMetrics;
  readonly #stdin: NodeJS.ReadableStream;
  readonly #stdout: NodeJS.WritableStream;
  #store: Store | undefined;
  // The live list: the registry changes it in place (API changes, reloads).
  readonly #destinations: Destination[] = [];
  #registry: DestinationRegistry | undefined;
  readonly #input: unknown;
  readonly #loadConfig: (() => { config: RelayConfig; input: unknown }) | undefined;
  // Events of requests being stored, per destination, not yet counted in its `pending`: the
  // maxPending check counts them, so that concurrent requests cannot overshoot it together.
  readonly #reserved = new Map<Destination, number>();
  // When a destination's backpressure was last logged (at most one line per interval).
  readonly #fullLogged = new Map<Destination, { at: number; rejected: number; moved: number }>();
  #server: Server | undefined;
  #sources: RunningSource[] = [];
  #state: State = 'created';
  #stopping: Promise<void> | undefined;
  #purger: ReturnType<typeof setTimeout> | undefined;
  #purging: Promise<void> | undefined;
  #telemetry: RunningTelemetry | undefined;

  constructor(config: RelayConfig, options: RelayOptions = {}) {
    this.config = config;
    this.logger = options.logger ?? createLogger({ level: config.log.level });
    this.#stdin = options.stdin ?? process.stdin;
    this.#stdout = options.stdout ?? process.stdout;
    this.#input = options.input;
    this.#loadConfig = options.loadConfig;
    this.metrics = new RelayMetrics(() =>
      this.#destinations.map((d) => ({
        name: d.name,
        metrics: {
          successes: d.delivered,
          failures: d.failedAttempts,
          deadLettered: d.deadLettered,
        },
        overflowed: () => d.overflowed,
        pending: () => d.pending,
        inFlight: () => d.inFlight,
        state: () => d.state,
        deadLetters: () => d.deadLetters,
        maxPending: () => d.config.maxPending,
      })),
    );
  }

  /** `starting`, `ready`, `draining`, … */
  get state(): State {
    return this.#state;
  }

  /** The destinations, for status and tests. */
  get destinations(): readonly Destination[] {
    return this.#destinations;
  }

  /** The store (after `start()`). */
  get store(): Store | undefined {
    return this.#store;
  }

  /** Where the HTTP server listens (after `start()`). */
  get address(): AddressInfo | undefined {
    const address = this.#server?.address();
    return typeof address === 'object' && address !== null ? address : undefined;
  }

  /** Opens the store (migrating the previous release's queue files), starts delivery, the server and the sources. */
  async start(): Promise<void> {
    if (this.#state !== 'created') throw new Error(`relay cannot start when ${this.#state}`);
    this.#state = 'starting';
    const { config, logger, metrics } = this;
    try {
      // First: the spans and metrics of everything after it go to the SDK it registers.
      this.#telemetry = await startTelemetry(config.telemetry, logger);
    } catch (error) {
      this.#state = 'stopped';
      throw error;
    }
    mkdirSync(config.dataDir, { recursive: true });
    const store = createStore(config);
    try {
      await store.open();
    } catch (error) {
      this.#state = 'stopped';
      await this.#telemetry?.shutdown();
      throw error;
    }
    // Several relays may start at once on one database: the log says which one migrated.
    if (store instanceof PostgresStore && store.applied.length > 0) {
      logger.info(
        {
          schema: config.store.type === 'postgres' ? config.store.schema : undefined,
          versions: store.applied,
        },
        'applied PostgreSQL schema migrations',
      );
    }
    this.#store = store;
    const registry = new DestinationRegistry({
      context: { config, metrics, logger, stdout: this.#stdout, store },
      list: this.#destinations,
    });
    this.#registry = registry;
    try {
      const inputs = inputDestinations(this.#input);
      config.destinations.forEach((destination, i) => {
        registry.addFile(destination, inputs?.[i] ?? destination);
      });
      // The previous release's queue files lived in dataDir beside the SQLite store; a relay
      // on PostgreSQL never had them.
      if (store instanceof SqliteStore) {
        const byName = new Map(this.#destinations.map((d) => [d.name, d]));
        const migrated = await migrateQueueFiles(
          store,
          config.dataDir,
          [...byName.keys()],
          logger,
          { keyOf: (name, event) => byName.get(name)?.keyOf(event) },
        );
        if (migrated.migrated + migrated.dead > 0) {
          logger.info(migrated, "moved the previous release's queue files into the store");
        }
      }
      await registry.startAll();
      await registry.follow();
    } catch (error) {
      registry.close();
      await Promise.allSettled(this.#destinations.map((d) => d.close(AbortSignal.abort())));
      await store.close().catch(() => undefined);
      await this.#telemetry?.shutdown();
      this.#state = 'stopped';
      throw error;
    }

    const httpSource = config.sources.find((s) => s.type === 'http');
    const server = createServer(
      { keepAliveTimeout: 30_000 },
      createHandler({
        source: httpSource,
        metrics,
        logger,
        // Not ready while the store is unreachable: ingest would answer 503 anyway.
        ready: () => this.#state === 'ready' && store.healthy(),
        notReadyReason: () =>
          this.#state !== 'ready'
            ? this.#state
            : `the ${config.store.type === 'postgres' ? 'PostgreSQL ' : ''}store is unreachable`,
        draining: () => this.#state === 'draining' || this.#state === 'stopped',
        accept: (events, source, options) => this.accept(events, source, options),
        admin: createAdminHandler({
          store,
          destinations: this.#destinations,
          logger,
          registry,
          reload: () => this.reload(),
        }),
        adminToken: config.admin.token,
      }),
    );
    this.#server = server;
    const [host, port] = splitHostPort(config.server.listen);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });

    for (const source of config.sources) {
      if (source.type === 'http') continue;
      if (source.type === 'stdin') {
        this.#sources.push(
          startStdin(this.#stdin, (events) => this.#ingestWhenRoom(events, 'stdin'), logger),
        );
        continue;
      }
      const sink: Sink<unknown> = {
        write: async (event) => {
          if (typeof event !== 'object' || event === null || Array.isArray(event)) {
            throw new TypeError('expected a JSON object');
          }
          await this.#ingestWhenRoom([event as Record<string, unknown>], source.type);
        },
        close() {},
      };
      this.#sources.push(await startBrokerSource(source, sink, logger));
    }
    this.#schedulePurge();
    this.#state = 'ready';
    const address = this.address;
    logger.info(
      {
        listen: address ? `${address.address}:${address.port}` : config.server.listen,
        destinations: this.#destinations.map((d) => `${d.name} (${d.config.type})`),
        pending: Object.fromEntries(this.#destinations.map((d) => [d.name, d.pending])),
      },
      'relay ready',
    );
  }

  /**
   * Stores `events` with a delivery for every matching destination, in one transaction;
   * resolves with their envelopes once they are stored. See {@link Relay.accept}.
   */
  async ingest(
    events: Record<string, unknown>[],
    source: string,
    options: { checked?: boolean } = {},
  ): Promise<Envelope[]> {
    return (await this.accept(events, source, options)).envelopes;
  }

  /**
   * Stores a request's events: all or nothing. Every event is checked (see `checkEvent`;
   * skipped with `checked: true` when the caller did it, and its `idField`) and every
   * destination's room (`maxPending`) before anything is written; then the messages and their
   * deliveries are stored in one transaction. An event whose `idField` id is already stored is
   * acknowledged with that id and not stored again; a repeated `idempotencyKey` stores nothing
   * and returns the first answer (`replayed`).
   * @throws IngestRefusedError (400) for an event that cannot be stored, (503) when a
   *   destination is full and its `whenFull` is `reject`; StoreFailedError when the store
   *   failed (its error as `cause`). Either way nothing was stored.
   */
  async accept(
    events: Record<string, unknown>[],
    source: string,
    options: AcceptOptions = {},
  ): Promise<Accepted> {
    // The destinations chosen below are the ones handed the stored events: the registry
    // changes the list only while no ingest is in between.
    const registry = this.#registry;
    if (registry === undefined) return this.#traced(events, source, options);
    await registry.admit();
    try {
      return await this.#traced(events, source, options);
    } finally {
      registry.leave();
    }
  }

  /** {@link Relay.accept} inside an ingest span (the caller's, or one of its own). */
  async #traced(
    events: Record<string, unknown>[],
    source: string,
    options: AcceptOptions,
  ): Promise<Accepted> {
    if (options.trace !== undefined) return this.#accept(events, source, options, options.trace);
    const trace = startIngest(source, undefined);
    try {
      const accepted = await this.#accept(events, source, options, trace);
      trace.end(accepted.replayed !== undefined ? 'replayed' : 'accepted', events.length);
      return accepted;
    } catch (error) {
      trace.end(
        error instanceof IngestRefusedError
          ? error.reason
          : error instanceof SinkClosedError
            ? 'draining'
            : 'store_failed',
        events.length,
        undefined,
        error,
      );
      throw error;
    }
  }

  async #accept(
    events: Record<string, unknown>[],
    source: string,
    options: AcceptOptions,
    trace: IngestTrace,
  ): Promise<Accepted> {
    const store = this.#store;
    if (store === undefined || this.#state === 'stopped' || this.#state === 'created')
      throw new SinkClosedError('relay is not accepting events');
    const idField = this.config.idField;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      let problem = options.checked === true ? undefined : checkEvent(event);
      if (problem === undefined && idField !== undefined) {
        const given = idFromField(event, idField);
        if (given !== undefined && 'problem' in given) problem = given.problem;
      }
      if (problem !== undefined) {
        throw new IngestRefusedError(
          events.length === 1 ? `the event is ${problem}` : `event ${i}: ${problem}`,
          400,
          'invalid',
        );
      }
    }
    const envelopes = envelop(events, source, idField);
    const { counts, over } = this.#room(envelopes);
    // Reserved before the first await, so that concurrent requests see each other's events.
    for (const [d, n] of counts) this.#reserved.set(d, (this.#reserved.get(d) ?? 0) + n);
    const destinations = [...counts.keys()];
    const field = this.config.telemetry.traceparentField;
    const messages: NewMessage[] = envelopes.map((e) => ({
      id: e.id,
      receivedAt: e.receivedAt,
      source: e.source,
      event: e.event,
      // The event's own traceparent first (a batch may carry events of several traces).
      ...optionalTraceparent(
        traceparentOf(e.event, field, trace.traceparent, (value) =>
          this.logger.debug(
            { source, id: e.id, field, value: String(value).slice(0, 80) },
            'ignoring an event field that is not a valid W3C traceparent',
          ),
        ),
      ),
      deliveries: destinations
        .filter((d) => d.takes(e))
        .map((d) => {
          const key = d.keyOf(e.event);
          return key === undefined ? { destination: d.name } : { destination: d.name, key };
        }),
    }));
    let outcome;
    try {
      if (over.size > 0) {
        try {
          await this.#overflow(over, envelopes.length);
        } catch (error) {
          if (error instanceof IngestRefusedError) throw error;
          throw new StoreFailedError(
            destinations.map((d) => d.name),
            [],
            error,
          );
        }
      }
      outcome = await store.ingest({
        messages,
        ...(options.idempotencyKey !== undefined
          ? {
              idempotencyKey: options.idempotencyKey,
              answer: options.answer?.(envelopes) ?? '',
            }
          : {}),
      });
    } catch (error) {
      if (error instanceof IngestRefusedError || error instanceof StoreFailedError) throw error;
      throw new StoreFailedError(
        destinations.map((d) => d.name),
        [],
        error,
      );
    } finally {
      for (const [d, n] of counts) this.#reserved.set(d, this.#reserved.get(d)! - n);
    }
    if (outcome.replayed !== undefined) {
      return { envelopes, duplicates: envelopes.length, replayed: outcome.replayed };
    }
    // Hand what was stored to the dispatchers, in seq order, without reading it back.
    const seqs = new Map<string, number>();
    for (const stored of outcome.stored) seqs.set(stored.id, stored.seq);
    for (const d of destinations) {
      const list: PendingDelivery[] = [];
      for (let i = 0; i < envelopes.length; i++) {
        const e = envelopes[i]!;
        const seq = seqs.get(e.id);
        if (seq === undefined || !messages[i]!.deliveries.some((x) => x.destination === d.name))
          continue;
        list.push({
          seq,
          id: e.id,
          receivedAt: e.receivedAt,
          source: e.source,
          event: e.event,
          key: d.keyOf(e.event),
          attempts: 0,
          nextAt: 0,
          batchId: undefined,
          traceparent: messages[i]!.traceparent,
        });
        // A duplicate id within one request is stored once: offer it once.
        seqs.delete(e.id);
      }
      d.offer(list);
      for (const delivery of list) seqs.set(delivery.id, delivery.seq);
    }
    const duplicates = outcome.duplicates.length;
    if (duplicates > 0) this.metrics.duplicates.inc({ source }, duplicates);
    this.metrics.received.inc({ source }, outcome.stored.length);
    return { envelopes, duplicates };
  }

  /**
   * {@link Relay.ingest} for the sources that cannot answer 503 (stdin, brokers): while a
   * destination is full, waits and tries again, so that the source stops reading (its write is
   * pending) instead of failing events; gives up once the relay drains, and the source then
   * handles the error as any other (a broker keeps the message unacknowledged).
   */
  async #ingestWhenRoom(events: Record<string, unknown>[], source: string): Promise<Envelope[]> {
    const waitable = (error: unknown): boolean =>
      error instanceof IngestRefusedError &&
      error.reason === 'full' &&
      (this.#state === 'ready' || this.#state === 'starting');
    try {
      return await this.ingest(events, source);
    } catch (error) {
      if (!waitable(error)) throw error;
    }
    // Full: one event at a time, each waiting for room, so that a group larger than the room
    // left (or than maxPending) still gets through, in order. A stdin group or a broker message
    // is no request whose events must be stored together.
    const stored: Envelope[] = [];
    for (const event of events) {
      for (;;) {
        try {
          stored.push(...(await this.ingest([event], source)));
          break;
        } catch (error) {
          if (!waitable(error)) {
            if (stored.length > 0) {
              this.logger.error(
                {
                  err: error,
                  source,
                  stored: stored.length,
                  notStored: events.length - stored.length,
                },
                'stopped waiting for room in a full destination; the rest of the group was not stored',
              );
            }
            throw error;
          }
        }
        await new Promise((resolve) => setTimeout(resolve, FULL_RETRY_MS));
      }
    }
    return stored;
  }

  /**
   * Checks every destination's room for `envelopes` (pending + being stored + these ≤
   * maxPending). Refuses before anything is moved when a `reject` destination is full. Returns
   * how many events each destination takes, and how many must be moved out of each
   * `dead-letter` one to make room (see {@link Relay.#overflow}).
   */
  #room(envelopes: readonly Envelope[]): {
    counts: Map<Destination, number>;
    over: Map<Destination, number>;
  } {
    const counts = new Map<Destination, number>();
    const over = new Map<Destination, number>();
    for (const d of this.#destinations) {
      const n = d.matching(envelopes);
      if (n === 0) continue;
      counts.set(d, n);
      const excess = d.pending + (this.#reserved.get(d) ?? 0) + n - d.config.maxPending;
      if (excess <= 0) continue;
      if (d.config.whenFull === 'reject' || n > d.config.maxPending) throw this.#full(d, n);
      over.set(d, excess);
    }
    return { counts, over };
  }

  /** Makes room in the `whenFull: dead-letter` destinations that need it. */
  async #overflow(over: Map<Destination, number>, events: number): Promise<void> {
    for (const [d, excess] of over) {
      const moved = await d.overflow(excess);
      this.#logFull(d, 0, moved);
      // Events being delivered cannot be moved: with a tiny maxPending there may be too few.
      if (moved < excess) throw this.#full(d, events);
    }
  }

  #full(d: Destination, events: number): IngestRefusedError {
    this.#logFull(d, events, 0);
    return new IngestRefusedError(
      `destination "${d.name}" is full (${d.pending} events waiting, maxPending ` +
        `${d.config.maxPending}); nothing was accepted, retry later`,
      503,
      'full',
      5,
    );
  }

  /** Logs backpressure at warn, at most once per destination per 10 s, with counts. */
  #logFull(d: Destination, rejected: number, moved: number): void {
    const now = Date.now();
    const entry = this.#fullLogged.get(d) ?? { at: 0, rejected: 0, moved: 0 };
    entry.rejected += rejected;
    entry.moved += moved;
    this.#fullLogged.set(d, entry);
    if (now - entry.at < 10_000) return;
    this.logger.warn(
      {
        destination: d.name,
        pending: d.pending,
        maxPending: d.config.maxPending,
        whenFull: d.config.whenFull,
        rejectedEvents: entry.rejected,
        deadLetteredEvents: entry.moved,
      },
      d.config.whenFull === 'reject'
        ? 'destination full: refusing requests (503) until it catches up'
        : 'destination full: moving its oldest waiting events to the dead letter (overflow)',
    );
    entry.at = now;
    entry.rejected = 0;
    entry.moved = 0;
  }

  /**
   * Stops accepting, lets sources finish what they hold, delivers until `timeout` ms have
   * passed, then leaves what is undelivered on disk and closes everything. Idempotent.
   */
  stop(timeout = this.config.drainTimeout): Promise<void> {
    this.#stopping ??= this.#stop(timeout);
    return this.#stopping;
  }

  async #stop(timeout: number): Promise<void> {
    this.#state = 'draining';
    const signal = AbortSignal.timeout(timeout);
    const started = Date.now();
    this.logger.info({ timeout }, 'draining');
    const server = this.#server;
    // The listener stays open while draining: ingest answers 503 with Retry-After, /readyz
    // 503, /healthz, /metrics and the admin endpoints keep answering, every response with
    // `connection: close` (see server.ts). It closes last, once nothing is left to answer for.
    await Promise.allSettled(this.#sources.map((s) => s.close(signal)));
    if (this.#purger !== undefined) clearTimeout(this.#purger);
    await this.#purging;
    this.#registry?.close();
    await Promise.allSettled(this.#destinations.map((d) => d.close(signal)));
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    }
    try {
      await this.#store?.close();
    } catch (error) {
      this.logger.error({ err: error }, 'closing the store failed');
    }
    // Last: the spans of the drain's attempts are exported too.
    await this.#telemetry?.shutdown();
    this.#state = 'stopped';
    this.logger.info(
      {
        ms: Date.now() - started,
        leftOnDisk: Object.fromEntries(this.#destinations.map((d) => [d.name, d.pending])),
      },
      'stopped',
    );
  }

  /**
   * Purges, in the background, what `retention` no longer keeps: delivered messages with their
   * attempts, and idempotency keys. Small transactions, a turn of the event loop between them,
   * so ingest is never held up; runs every quarter of `retention` (between 250 ms and 1 min).
   */
  #schedulePurge(): void {
    const retention = this.config.retention;
    const every = Math.min(60_000, Math.max(250, retention / 4));
    const run = async (): Promise<void> => {
      const store = this.#store;
      if (store === undefined) return;
      let purged = 0;
      try {
        for (;;) {
          const n = await store.purge(Date.now() - retention, PURGE_PAGE);
          purged += n;
          if (n < PURGE_PAGE || this.#state !== 'ready') break;
          await nextTurn();
        }
      } catch (error) {
        this.logger.error({ err: error }, 'purging the message log failed; trying again later');
      }
      if (purged > 0) {
        this.metrics.purged.inc(purged);
        this.logger.debug({ purged }, 'purged messages past retention');
      }
    };
    const tick = (): void => {
      this.#purging = run().finally(() => {
        this.#purging = undefined;
        if (this.#state === 'ready' || this.#state === 'starting') {
          this.#purger = setTimeout(tick, every);
          this.#purger.unref();
        }
      });
    };
    this.#purger = setTimeout(tick, every);
    this.#purger.unref();
  }

  /** The running destinations and their changes at runtime (after `start()`). */
  get registry(): DestinationRegistry | undefined {
    return this.#registry;
  }

  /**
   * Re-reads the configuration (SIGHUP, `POST /admin/reload`): a bad file changes nothing
   * (ReloadInvalidError with its problems); else the file's destinations are added, changed or
   * removed (see DestinationRegistry.reload). Other settings need a restart: logged at warn.
   * @throws ReloadInvalidError
   */
  async reload(): Promise<ReloadOutcome> {
    const registry = this.#registry;
    if (registry === undefined || this.#state !== 'ready') {
      throw new Error(`the relay cannot reload when ${this.#state}`);
    }
    if (this.#loadConfig === undefined) {
      throw new ReloadInvalidError(
        [{ path: '', message: 'this relay was not started from a configuration file' }],
        undefined,
      );
    }
    let loaded: { config: RelayConfig; input: unknown };
    try {
      loaded = this.#loadConfig();
    } catch (error) {
      if (error instanceof ConfigError) {
        const problems = error.problems.map((p) => ({
          path: p.line !== undefined ? `${p.path} (line ${p.line})` : p.path,
          message: p.message,
        }));
        this.logger.error(
          { problems: error.problems.map((p) => formatProblem(p, error.file)) },
          'reload refused: the configuration is invalid; nothing was changed',
        );
        throw new ReloadInvalidError(problems, error.file, { cause: error });
      }
      throw error;
    }
    const restart = Object.keys({ ...this.config, ...loaded.config }).filter(
      (key) =>
        key !== 'destinations' &&
        !isDeepStrictEqual(
          (this.config as Record<string, unknown>)[key],
          (loaded.config as Record<string, unknown>)[key],
        ),
    );
    if (restart.length > 0) {
      this.logger.warn(
        { settings: restart },
        `reload: ${restart.join(', ')} changed; these take effect only after a restart`,
      );
    }
    const inputs = inputDestinations(loaded.input);
    const outcome = await registry.reload(
      loaded.config.destinations.map((config, i) => ({
        config,
        input: inputs?.[i] ?? (config as Record<string, unknown>),
      })),
    );
    this.logger.info(outcome, 'configuration reloaded');
    return outcome;
  }

  /** One line per destination: pending, in flight, delivered, failed, dead letters, state. */
  status(): string[] {
    return this.#destinations.map(
      (d) =>
        `${d.name.padEnd(16)} pending ${String(d.pending).padStart(7)}  in flight ${String(d.inFlight).padStart(4)}  delivered ${String(d.delivered).padStart(8)}  ` +
        `failed ${String(d.failedAttempts).padStart(6)}  dead ${String(d.deadLetters).padStart(5)}  ${d.state}`,
    );
  }
}

// How often a stdin or broker source waiting for room in a full destination tries again.
const FULL_RETRY_MS = 250;

// Messages deleted per purge transaction.
const PURGE_PAGE = 200;

/** The `destinations` of a configuration's input form, when it has them. */
function inputDestinations(input: unknown): Record<string, unknown>[] | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const list = (input as { destinations?: unknown }).destinations;
  return Array.isArray(list) ? (list as Record<string, unknown>[]) : undefined;
}

function optionalTraceparent(traceparent: string | undefined): { traceparent?: string } {
  return traceparent === undefined ? {} : { traceparent };
}

/** `127.0.0.1:8080` → ['127.0.0.1', 8080]; `[::1]:80` → ['::1', 80]. */
export function splitHostPort(listen: string): [string, number] {
  const index = listen.lastIndexOf(':');
  const host = listen.slice(0, index).replace(/^\[(.*)\]$/, '$1');
  return [host, Number(listen.slice(index + 1))];
}
