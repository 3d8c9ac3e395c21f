// One destination of the relay: its own durable queue (so one dead endpoint never holds up
// another), a RetryingSink with a cap that ends in a dead letter kept on disk, and the target
// itself (webhook, stdout, file, or a broker). Built only from the library's own sinks.
import { once } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  BatchingSink,
  ExponentialBackoff,
  MapSink,
  RetryingSink,
  UnbatchingSink,
  maxAttempts,
  type DeadLetter,
  type RetryStrategy,
  type Sink,
} from '../index.js';
import { HttpSink, httpRetryStrategy } from '../http/index.js';
import { DurableQueue, QueueFile, type QueueEntry } from '../sqlite/index.js';
import { brokerSink } from './brokers.js';
import type { DeadRecord, Envelope } from './envelope.js';
import { makePredicate } from './envelope.js';
import { DeliveryHealth } from './health.js';
import { errorText } from './logger.js';
import type { RelayMetrics } from './metrics.js';
import type { DestinationConfig, RelayConfig } from './schema.js';

/** What a destination's target receives: one envelope, or an array of them when batching. */
export type Payload = Envelope | Envelope[];

export interface DestinationContext {
  config: RelayConfig;
  metrics: RelayMetrics;
  logger: Logger;
  stdout: NodeJS.WritableStream;
}

const envelopes = (payload: Payload): Envelope[] => (Array.isArray(payload) ? payload : [payload]);

function ndjson(payload: Payload): string {
  let out = '';
  for (const envelope of envelopes(payload)) out += `${JSON.stringify(envelope.event)}\n`;
  return out;
}

/** The queue and dead-letter files of a destination. */
export function destinationFiles(dataDir: string, name: string): { queue: string; dead: string } {
  return { queue: join(dataDir, `${name}.queue.db`), dead: join(dataDir, `${name}.dead.db`) };
}

function stdoutTarget(stream: NodeJS.WritableStream): Sink<Payload> {
  return {
    write(payload) {
      // Respect the stream's own backpressure: a slow pipe holds delivery, not memory.
      if (!stream.write(ndjson(payload))) return once(stream, 'drain').then(() => undefined);
      return undefined;
    },
    close() {},
  };
}

function fileTarget(path: string): Sink<Payload> {
  let handle: Promise<FileHandle> | undefined;
  return {
    async write(payload) {
      handle ??= open(path, 'a');
      await (await handle).appendFile(ndjson(payload));
    },
    async close() {
      if (handle) await (await handle).close();
    },
  };
}

function webhookTarget(config: Extract<DestinationConfig, { type: 'webhook' }>): Sink<Payload> {
  return new HttpSink<Payload>(config.url, {
    method: config.method,
    headers: config.headers,
    timeout: config.timeout,
    redirect: config.followRedirects ? 'follow' : 'manual',
    encode: (payload) => ({
      body: JSON.stringify(Array.isArray(payload) ? payload.map((e) => e.event) : payload.event),
      contentType: 'application/json',
    }),
    ...(config.signing
      ? {
          signing: {
            secret: config.signing.secret,
            // Stable across retries and replays, so receivers can drop what they already have.
            id: (payload: Payload) =>
              Array.isArray(payload)
                ? `batch_${payload[0]?.id ?? 'empty'}_${payload.length}`
                : payload.id,
          },
        }
      : {}),
  });
}

/** A running destination. */
export class Destination {
  readonly name: string;
  readonly config: DestinationConfig;
  /** Accepts each ingested array; resolves once the matching events are on disk. */
  readonly ingest: MapSink<readonly Envelope[], readonly Envelope[]> | UnbatchingSink<Envelope>;
  // Replays bypass the match/ignore filter: those events matched once already.
  readonly #unbatching: UnbatchingSink<Envelope>;
  readonly #queue: DurableQueue<Envelope> | QueueFile<Envelope>;
  readonly #dead: QueueFile<DeadRecord>;
  readonly #predicate: ((envelope: Envelope) => boolean) | undefined;
  readonly #metrics: RelayMetrics;
  delivered = 0;
  failedAttempts = 0;
  deadLettered = 0;
  /** Events moved to the dead letter to make room (`whenFull: dead-letter`). */
  overflowed = 0;
  lastError: string | undefined;
  #health: DeliveryHealth | undefined;

  constructor(config: DestinationConfig, context: DestinationContext) {
    this.name = config.name;
    this.config = config;
    const { metrics, logger } = context;
    this.#metrics = metrics;
    const files = destinationFiles(context.config.dataDir, config.name);
    const durability = context.config.durability;
    const labels = { destination: config.name };
    this.#dead = new QueueFile<DeadRecord>({ path: files.dead, durability });
    const log = logger.child({ destination: config.name });

    if (!config.enabled) {
      // A disabled destination only stores: its events wait on disk until it is enabled.
      this.#queue = new QueueFile<Envelope>({ path: files.queue, durability });
    } else {
      const target = this.#target(config, context);
      const health = new DeliveryHealth(log);
      this.#health = health;
      const instrumented: Sink<Payload> = {
        write: (payload) => {
          const done = (): void => {
            const list = envelopes(payload);
            const now = Date.now();
            this.delivered += list.length;
            health.succeeded();
            metrics.delivered.inc(labels, list.length);
            for (const e of list) metrics.latency.observe(labels, (now - e.receivedAt) / 1000);
          };
          const failed = (error: unknown): never => {
            this.failedAttempts++;
            health.failed(error);
            this.lastError = health.lastError;
            metrics.failures.inc(labels);
            throw error;
          };
          let result: void | Promise<void>;
          try {
            result = target.write(payload);
          } catch (error) {
            return failed(error);
          }
          if (result === undefined) return done();
          return result.then(done, failed);
        },
        close: () => target.close(),
      };
      const { retry } = config;
      let strategy: RetryStrategy<Payload> = new ExponentialBackoff(retry.backoff);
      if (config.type === 'webhook') {
        strategy = httpRetryStrategy(strategy, { maxRetryAfter: config.maxRetryAfter });
      }
      const deadSink: Sink<DeadLetter<Payload>> = {
        write: (dead) => {
          const status = (dead.error as { status?: unknown } | null)?.status;
          const deadAt = Date.now();
          for (const envelope of envelopes(dead.event)) {
            this.#dead.append({
              envelope,
              error: errorText(dead.error),
              ...(typeof status === 'number' ? { status } : {}),
              attempts: dead.attempts,
              firstFailedAt: dead.firstFailedAt,
              deadAt,
            });
            this.deadLettered++;
            metrics.deadLettered.inc(labels);
          }
          log.error(
            { err: dead.error, attempts: dead.attempts, events: envelopes(dead.event).length },
            'gave up on delivery; kept in the dead letter',
          );
        },
        close() {},
      };
      const retrying = new RetryingSink<Payload>(
        instrumented,
        maxAttempts(strategy, retry.maxAttempts),
        {
          deadLetter: deadSink,
          onDrop: (payload, reason) =>
            log.debug(
              { reason: String(reason), events: envelopes(payload).length },
              'delivery stopped',
            ),
          onError: (error) => log.error({ err: error }, 'writing a dead letter failed'),
        },
      );
      const onError = (error: unknown): void => log.error({ err: error }, 'delivery failed');
      if (config.batch) {
        const batching = new BatchingSink<Envelope>(retrying, config.batch);
        // Two batches in flight: the next one fills from the queue while one is being sent.
        this.#queue = new DurableQueue<Envelope>(batching, {
          path: files.queue,
          durability,
          maxInFlight: config.batch.maxSize * 2,
          onError,
        });
      } else {
        this.#queue = new DurableQueue<Envelope>(retrying, {
          path: files.queue,
          durability,
          onError,
        });
      }
    }

    const predicate = makePredicate(config.match, config.ignore);
    this.#predicate = predicate;
    const unbatching = new UnbatchingSink<Envelope>(this.#queue);
    this.#unbatching = unbatching;
    this.ingest = predicate
      ? new MapSink<readonly Envelope[], readonly Envelope[]>(unbatching, (list) =>
          list.filter(predicate),
        )
      : unbatching;
  }

  #target(config: DestinationConfig, context: DestinationContext): Sink<Payload> {
    switch (config.type) {
      case 'webhook':
        return webhookTarget(config);
      case 'stdout':
        return stdoutTarget(context.stdout);
      case 'file':
        return fileTarget(config.path);
      default:
        return brokerSink(config);
    }
  }

  /** Events stored and not yet delivered. */
  get pending(): number {
    return this.#queue.size;
  }

  /** How many of `envelopes` this destination takes (its `match`/`ignore` filter). */
  matching(envelopes: readonly Envelope[]): number {
    const predicate = this.#predicate;
    if (predicate === undefined) return envelopes.length;
    let count = 0;
    for (const envelope of envelopes) if (predicate(envelope)) count++;
    return count;
  }

  /**
   * Moves up to `count` of the oldest waiting events (not being delivered) to the dead letter
   * with reason `overflow`, in one transaction per file: stored in the dead letter first, then
   * removed from the queue. Returns how many were moved.
   */
  overflow(count: number): number {
    const now = Date.now();
    const keep = (list: Envelope[]): void => {
      this.#dead.appendAll(
        list.map((envelope) => ({
          envelope,
          error: `overflow: more than maxPending (${this.config.maxPending}) events were waiting`,
          reason: 'overflow' as const,
          attempts: 0,
          firstFailedAt: now,
          deadAt: now,
        })),
      );
    };
    const queue = this.#queue;
    let moved: number;
    if (queue instanceof DurableQueue) moved = queue.evict(count, keep);
    else {
      // A disabled destination: nothing is being delivered, every stored event is waiting.
      const entries = queue.list({ limit: count });
      if (entries.length > 0) keep(entries.map((e) => e.event));
      moved = queue.remove(entries.map((e) => e.id));
    }
    this.overflowed += moved;
    this.deadLettered += moved;
    this.#metrics.deadLettered.inc({ destination: this.name }, moved);
    this.#metrics.overflowed.inc({ destination: this.name }, moved);
    return moved;
  }

  /** Events in the dead letter. */
  get deadLetters(): number {
    return this.#dead.size;
  }

  /** `disabled`, `failing` (the last attempt failed), or `ok`. */
  get state(): 'disabled' | 'failing' | 'ok' {
    if (!this.config.enabled) return 'disabled';
    return this.#health?.failing ? 'failing' : 'ok';
  }

  /** Dead letters, oldest first. */
  listDead(options: { after?: number; limit?: number } = {}): QueueEntry<DeadRecord>[] {
    return this.#dead.list(options);
  }

  /**
   * Puts dead letters (those that died at or after `since`, ms since the epoch) back in the
   * queue, keeping their ids, and removes them from the dead letter once they are stored.
   */
  async replay(since = 0): Promise<number> {
    let replayed = 0;
    let after = 0;
    for (;;) {
      const page = this.#dead.list({ after, limit: 500 });
      if (page.length === 0) return replayed;
      after = page[page.length - 1]!.id;
      const chosen = page.filter((entry) => entry.event.deadAt >= since);
      if (chosen.length === 0) continue;
      await this.#unbatching.write(chosen.map((entry) => entry.event.envelope));
      this.#dead.remove(chosen.map((entry) => entry.id));
      replayed += chosen.length;
    }
  }

  /** Delivers until `signal` aborts, then leaves the rest on disk and closes the files. */
  async close(signal?: AbortSignal): Promise<void> {
    try {
      await this.ingest.close(signal ? { signal } : undefined);
    } finally {
      this.#dead.close();
    }
  }
}
