// The relay: sources → one durable queue per destination → destinations. Every event that a
// source accepted (an http 202, a broker ack) is on disk in each matching destination's queue
// first; delivery, retries and dead letters follow per destination, so one dead endpoint never
// holds up another.
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Broadcaster, SinkClosedError, type Sink } from '../index.js';
import { startBrokerSource, type RunningSource } from './brokers.js';
import { Destination } from './destinations.js';
import { envelop, type Envelope } from './envelope.js';
import { createLogger } from './logger.js';
import { RelayMetrics } from './metrics.js';
import type { RelayConfig } from './schema.js';
import { createHandler } from './server.js';
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
  readonly #failures = new WeakMap<readonly Envelope[], unknown>();
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
        pending: () => d.pending,
        deadLetters: () => d.deadLetters,
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
    this.#broadcaster = new Broadcaster<readonly Envelope[]>(
      this.#destinations.map((d) => d.ingest),
      {
        onError: (error, envelopes, sink) => {
          if (envelopes) this.#failures.set(envelopes, error);
          else {
            const name = this.#destinations.find((d) => d.ingest === sink)?.name;
            logger.error({ err: error, destination: name }, 'closing a destination failed');
          }
        },
      },
    );

    const httpSource = config.sources.find((s) => s.type === 'http');
    const server = createServer(
      { keepAliveTimeout: 30_000 },
      createHandler({
        source: httpSource,
        metrics,
        logger,
        ready: () => this.#state === 'ready',
        ingest: (events, source) => this.ingest(events, source),
        destination: (name) => this.#destinations.find((d) => d.name === name),
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
          startStdin(this.#stdin, (events) => this.ingest(events, 'stdin'), logger),
        );
        continue;
      }
      const sink: Sink<unknown> = {
        write: async (event) => {
          if (typeof event !== 'object' || event === null || Array.isArray(event)) {
            throw new TypeError('expected a JSON object');
          }
          await this.ingest([event as Record<string, unknown>], source.type);
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
   * all are on disk, rejects (nothing to acknowledge) if any destination could not store them.
   */
  async ingest(events: Record<string, unknown>[], source: string): Promise<Envelope[]> {
    const broadcaster = this.#broadcaster;
    if (broadcaster === undefined || broadcaster.closed)
      throw new SinkClosedError('relay is not accepting events');
    const envelopes = envelop(events, source);
    await broadcaster.write(envelopes);
    const error = this.#failures.get(envelopes);
    if (error !== undefined) {
      this.#failures.delete(envelopes);
      // The destination's own error (a SQLite failure, most likely), passed through as is.
      // eslint-disable-next-line @typescript-eslint/only-throw-error
      throw error;
    }
    this.metrics.received.inc({ source }, envelopes.length);
    return envelopes;
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
    const closed = server
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    server?.closeIdleConnections();
    await Promise.allSettled(this.#sources.map((s) => s.close(signal)));
    await this.#broadcaster?.close({ signal });
    await Promise.allSettled(this.#destinations.map((d) => d.close(signal)));
    server?.closeAllConnections();
    await closed;
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

/** `127.0.0.1:8080` → ['127.0.0.1', 8080]; `[::1]:80` → ['::1', 80]. */
export function splitHostPort(listen: string): [string, number] {
  const index = listen.lastIndexOf(':');
  const host = listen.slice(0, index).replace(/^\[(.*)\]$/, '$1');
  return [host, Number(listen.slice(index + 1))];
}
