// The relay: sources → one durable queue per destination → destinations. Every event that a
// source accepted (an http 202, a broker ack) is on disk in each matching destination's queue
// first; delivery, retries and dead letters follow per destination, so one dead endpoint never
// holds up another.
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Broadcaster, SinkClosedError, type CloseOptions, type Sink } from 'eventsinks';
import { startBrokerSource, type RunningSource } from './brokers.js';
import { Destination } from './destinations.js';
import { envelop, type Envelope } from './envelope.js';
import { IngestRefusedError, StoreFailedError, checkEvent } from './ingest.js';
import { createLogger } from './logger.js';
import { RelayMetrics } from './metrics.js';
import type { RelayConfig } from './schema.js';
import { createHandler } from './server.js';
import { parseSinceParam, type AdminHandler } from './admin.js';
import { startStdin } from './stdin.js';

export interface RelayOptions {
  logger?: Logger;
  stdin?: NodeJS.ReadableStream;
  stdout?: NodeJS.WritableStream;
}

type State = 'created' | 'starting' | 'ready' | 'draining' | 'stopped';

/** The relay; `start()` opens the queues, the server and the sources, `stop()` drains. */
export class Relay {
  readonly config: RelayConfig;
  readonly logger: Logger;
  readonly metrics: RelayMetrics;
  readonly #stdin: NodeJS.ReadableStream;
  readonly #stdout: NodeJS.WritableStream;
  #destinations: Destination[] = [];
  #broadcaster: Broadcaster<readonly Envelope[]> | undefined;
  // The Broadcaster reports a destination's failure to store a request's events through
  // onError; keyed by the request's array, the ingest that wrote it finds out and refuses it.
  readonly #failures = new WeakMap<readonly Envelope[], { error: unknown; failed: string[] }>();
  // Events of requests being stored, per destination, not yet counted in its `pending`: the
  // maxPending check counts them, so that concurrent requests cannot overshoot it together.
  readonly #reserved = new Map<Destination, number>();
  // When a destination's backpressure was last logged (at most one line per interval).
  readonly #fullLogged = new Map<Destination, { at: number; rejected: number; moved: number }>();
  #server: Server | undefined;
  #sources: RunningSource[] = [];
  #state: State = 'created';
  #stopping: Promise<void> | undefined;

  constructor(config: RelayConfig, options: RelayOptions = {}) {
    this.config = config;
    this.logger = options.logger ?? createLogger({ level: config.log.level });
    this.#stdin = options.stdin ?? process.stdin;
    this.#stdout = options.stdout ?? process.stdout;
    this.metrics = new RelayMetrics(() =>
      this.#destinations.map((d) => ({
        name: d.name,
        metrics: d.metrics,
        overflowed: () => d.overflowed,
        pending: () => d.pending,
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

  /** Where the HTTP server listens (after `start()`). */
  get address(): AddressInfo | undefined {
    const address = this.#server?.address();
    return typeof address === 'object' && address !== null ? address : undefined;
  }

  /** Opens every destination's queue, starts the server and the sources. */
  async start(): Promise<void> {
    if (this.#state !== 'created') throw new Error(`relay cannot start when ${this.#state}`);
    this.#state = 'starting';
    const { config, logger, metrics } = this;
    mkdirSync(config.dataDir, { recursive: true });
    try {
      for (const destination of config.destinations) {
        this.#destinations.push(
          new Destination(destination, { config, metrics, logger, stdout: this.#stdout }),
        );
      }
    } catch (error) {
      await Promise.allSettled(this.#destinations.map((d) => d.close(AbortSignal.abort())));
      this.#state = 'stopped';
      throw error;
    }
    const sinks = this.#destinations.map((d) => yieldingBefore(d.ingest));
    this.#broadcaster = new Broadcaster<readonly Envelope[]>(sinks, {
      onError: (error, envelopes, sink) => {
        const name = this.#destinations[sinks.indexOf(sink)]?.name ?? '?';
        if (envelopes) {
          const failure = this.#failures.get(envelopes);
          if (failure) failure.failed.push(name);
          else this.#failures.set(envelopes, { error, failed: [name] });
        } else {
          logger.error({ err: error, destination: name }, 'closing a destination failed');
        }
      },
    });

    const httpSource = config.sources.find((s) => s.type === 'http');
    const server = createServer(
      { keepAliveTimeout: 30_000 },
      createHandler({
        source: httpSource,
        metrics,
        logger,
        ready: () => this.#state === 'ready',
        draining: () => this.#state === 'draining' || this.#state === 'stopped',
        ingest: (events, source, options) => this.ingest(events, source, options),
        admin: legacyDlqAdmin(() => this.#destinations),
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
   * Stores `events` in every matching destination's queue; resolves with their envelopes once
   * all are on disk. All or nothing: every event is checked (see `checkEvent`; skipped with
   * `checked: true` when the caller did it) and every destination's room (`maxPending`) before
   * any is written.
   * @throws IngestRefusedError (400) for an event that cannot be stored, (503) when a
   *   destination is full and its `whenFull` is `reject`; then nothing was stored.
   *   StoreFailedError when a destination could not store them (its SQLite error as `cause`):
   *   the queues are separate files, so those that committed first keep them (`stored`).
   */
  async ingest(
    events: Record<string, unknown>[],
    source: string,
    options: { checked?: boolean } = {},
  ): Promise<Envelope[]> {
    const broadcaster = this.#broadcaster;
    if (broadcaster === undefined || broadcaster.closed)
      throw new SinkClosedError('relay is not accepting events');
    if (options.checked !== true) {
      for (let i = 0; i < events.length; i++) {
        const problem = checkEvent(events[i]);
        if (problem !== undefined) {
          throw new IngestRefusedError(
            events.length === 1 ? `the event is ${problem}` : `event ${i}: ${problem}`,
            400,
            'invalid',
          );
        }
      }
    }
    const envelopes = envelop(events, source);
    const counts = this.#makeRoom(envelopes);
    for (const [d, n] of counts) this.#reserved.set(d, (this.#reserved.get(d) ?? 0) + n);
    try {
      await broadcaster.write(envelopes);
    } finally {
      for (const [d, n] of counts) this.#reserved.set(d, this.#reserved.get(d)! - n);
    }
    const failure = this.#failures.get(envelopes);
    if (failure !== undefined) {
      this.#failures.delete(envelopes);
      const stored = [...counts.keys()]
        .map((d) => d.name)
        .filter((name) => !failure.failed.includes(name));
      if (stored.length > 0) {
        // The events are in these queues already and will be delivered there: a client retry
        // of the request delivers them to these destinations twice (same events, new ids).
        this.logger.error(
          { err: failure.error, failed: failure.failed, stored, events: envelopes.length },
          'a destination could not store a request that others stored; a retry duplicates it there',
        );
      }
      throw new StoreFailedError(failure.failed, stored, failure.error);
    }
    this.metrics.received.inc({ source }, envelopes.length);
    return envelopes;
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
   * maxPending). Refuses before anything is moved when a `reject` destination is full, then
   * makes room in the `dead-letter` ones. Returns how many events each destination takes.
   */
  #makeRoom(envelopes: readonly Envelope[]): Map<Destination, number> {
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
    for (const [d, excess] of over) {
      const moved = d.overflow(excess);
      this.#logFull(d, 0, moved);
      // Events being delivered cannot be moved: with a tiny maxPending there may be too few.
      if (moved < excess) throw this.#full(d, envelopes.length);
    }
    return counts;
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
    await this.#broadcaster?.close({ signal });
    await Promise.allSettled(this.#destinations.map((d) => d.close(signal)));
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    }
    this.#state = 'stopped';
    this.logger.info(
      {
        ms: Date.now() - started,
        leftOnDisk: Object.fromEntries(this.#destinations.map((d) => [d.name, d.pending])),
      },
      'stopped',
    );
  }

  /** One line per destination: pending, delivered, failed, dead letters, state. */
  status(): string[] {
    return this.#destinations.map(
      (d) =>
        `${d.name.padEnd(16)} pending ${String(d.pending).padStart(7)}  delivered ${String(d.delivered).padStart(8)}  ` +
        `failed ${String(d.failedAttempts).padStart(6)}  dead ${String(d.deadLetters).padStart(5)}  ${d.state}`,
    );
  }
}

// How often a stdin or broker source waiting for room in a full destination tries again.
const FULL_RETRY_MS = 250;

// Requests this large are stored in each destination after a turn of the event loop.
const LARGE_REQUEST = 1000;

/**
 * Wraps a destination's ingest sink so that a large request is stored in it after a turn of
 * the event loop: the destinations' queues commit one after another, and without the turn
 * their encoding and commits would hold the event loop for their sum. Small requests, the
 * common case, stay synchronous.
 */
function yieldingBefore(sink: Destination['ingest']): Sink<readonly Envelope[]> {
  return {
    write: (envelopes) =>
      envelopes.length < LARGE_REQUEST
        ? sink.write(envelopes)
        : nextTurn().then(() => sink.write(envelopes)),
    close: (options?: CloseOptions) => sink.close(options),
  };
}

/** `127.0.0.1:8080` → ['127.0.0.1', 8080]; `[::1]:80` → ['::1', 80]. */
export function splitHostPort(listen: string): [string, number] {
  const index = listen.lastIndexOf(':');
  const host = listen.slice(0, index).replace(/^\[(.*)\]$/, '$1');
  return [host, Number(listen.slice(index + 1))];
}

/**
 * The dead-letter routes over the per-destination queue files, until the delivery engine's
 * store backs admin.ts's createAdminHandler here (issue 14); other admin routes answer 503.
 */
function legacyDlqAdmin(destinations: () => readonly Destination[]): AdminHandler {
  return async (req, res, url, reply) => {
    const match = /^\/admin\/dlq\/([^/]+)(\/replay)?$/.exec(url.pathname);
    if (!match) return reply(res, 503, { error: `${url.pathname} needs the message store` });
    const name = decodeURIComponent(match[1]!);
    const destination = destinations().find((d) => d.name === name);
    if (!destination) return reply(res, 404, { error: `no destination named "${name}"` });
    if (match[2] === undefined && req.method === 'GET') {
      const limit = Number(url.searchParams.get('limit') ?? 1000);
      const entries = destination.listDead({
        limit: Number.isInteger(limit) && limit > 0 ? limit : 1000,
      });
      return reply(
        res,
        200,
        entries.map(({ id, event }) => ({ id, ...event })),
      );
    }
    if (match[2] !== undefined && req.method === 'POST') {
      const text = url.searchParams.get('since');
      const since = text === null || text === '' ? 0 : parseSinceParam(text);
      if (since === undefined) return reply(res, 400, { error: `since: bad value "${text}"` });
      return reply(res, 200, { replayed: await destination.replay(since) });
    }
    return reply(res, 405, { error: 'method not allowed' }, { allow: match[2] ? 'POST' : 'GET' });
  };
}
