// One destination of the relay: its own durable queue (so one dead endpoint never holds up
// another), a RetryingSink with a cap that ends in a dead letter kept on disk, and the target
// itself (webhook, stdout, file, or a broker). Built only from the library's own sinks.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  BatchingSink,
  ExponentialBackoff,
  MapSink,
  RetryingSink,
  SinkMetrics,
  UnbatchingSink,
  maxAttempts,
  type CloseOptions,
  type DeadLetter,
  type RetryStrategy,
  type Sink,
} from 'eventsinks';
import { HttpSink, httpRetryStrategy } from 'eventsinks/http';
import { DurableQueue, QueueFile, type QueueEntry } from 'eventsinks/sqlite';
import { brokerSink } from './brokers.js';
import { BATCH_ID_FIELD } from './delivery/targets.js';
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

/** Moved to delivery/targets.ts; re-exported for the modules that import it from here. */
export { BATCH_ID_FIELD };

/** A batch's body: the events as received, each with its relay id under BATCH_ID_FIELD. */
function batchBody(payload: readonly Envelope[]): Record<string, unknown>[] {
  return payload.map((e) => ({ ...e.event, [BATCH_ID_FIELD]: e.id }));
}

function webhookTarget(
  config: Extract<DestinationConfig, { type: 'webhook' }>,
  batchIds: WeakMap<Envelope[], string>,
): Sink<Payload> {
  return new HttpSink<Payload>(config.url, {
    method: config.method,
    headers: config.headers,
    timeout: config.timeout,
    redirect: config.followRedirects ? 'follow' : 'manual',
    encode: (payload) => ({
      body: JSON.stringify(Array.isArray(payload) ? batchBody(payload) : payload.event),
      contentType: 'application/json',
    }),
    ...(config.signing
      ? {
          signing: {
            secret: config.signing.secret,
            // Stable across retries, restarts and replays, so receivers can drop what they
            // already have: an event's own id, or the id its batch got when it was sealed
            // (kept in the queue file with the batch's members, see Destination).
            id: (payload: Payload) =>
              Array.isArray(payload)
                ? (batchIds.get(payload) ?? `batch_${payload[0]?.id ?? 'empty'}`)
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
  /**
   * Accepts each ingested array; resolves once the matching events are on disk. Its `close`
   * is the destination's {@link Destination.close}, bounded after the deadline.
   */
  readonly ingest: Sink<readonly Envelope[]> & {
    close(options?: CloseOptions): Promise<void>;
  };
  readonly #accept: MapSink<readonly Envelope[], readonly Envelope[]> | UnbatchingSink<Envelope>;
  #closing: Promise<void> | undefined;
  // Replays bypass the match/ignore filter: those events matched once already.
  readonly #unbatching: UnbatchingSink<Envelope>;
  readonly #queue: DurableQueue<Envelope> | QueueFile<Envelope>;
  readonly #dead: QueueFile<DeadRecord>;
  readonly #predicate: ((envelope: Envelope) => boolean) | undefined;
  /**
   * The destination's counters, in the library's one shape, counted in events (a batch of 10
   * delivered adds 10): `successes` delivered, `failures` failed attempts (each retry counts),
   * `deadLettered` kept in the dead letter (overflow included), with `lastError`,
   * `lastErrorAt` and `lastSuccessAt`. The relay's Prometheus series are read from it.
   */
  readonly metrics = new SinkMetrics();
  /** Events moved to the dead letter to make room (`whenFull: dead-letter`). */
  overflowed = 0;
  lastError: string | undefined;
  #health: DeliveryHealth | undefined;
  readonly #log: Logger;
  // The id of each batch in flight, set when it is sealed; the webhook's `webhook-id`.
  readonly #batchIds = new WeakMap<Envelope[], string>();

  constructor(config: DestinationConfig, context: DestinationContext) {
    this.name = config.name;
    this.config = config;
    const { metrics, logger } = context;
    const counters = this.metrics;
    const files = destinationFiles(context.config.dataDir, config.name);
    const durability = context.config.durability;
    const labels = { destination: config.name };
    this.#dead = new QueueFile<DeadRecord>({ path: files.dead, durability });
    const log = logger.child({ destination: config.name });
    this.#log = log;

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
            counters.successes += list.length;
            counters.lastSuccessAt = now;
            health.succeeded();
            for (const e of list) metrics.latency.observe(labels, (now - e.receivedAt) / 1000);
          };
          const failed = (error: unknown): never => {
            counters.failures++;
            counters.lastError = error;
            counters.lastErrorAt = Date.now();
            health.failed(error);
            this.lastError = health.lastError;
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
        // The deadline (or the abandon of a DurableQueue past it) goes down to the target, so a
        // broker sink stops waiting for acknowledgements and an opening connection is dropped.
        close: (options?: CloseOptions) =>
          (target as { close(options?: CloseOptions): void | Promise<void> }).close(options),
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
            counters.deadLettered++;
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
        // A batch's members and id are fixed when it is sealed, before its first attempt, and
        // kept in the queue file with it: after a crash the same events are re-formed into the
        // same batch under the same id, instead of being regrouped under a new one.
        const batchIds = this.#batchIds;
        const batching = new BatchingSink<Envelope>(retrying, {
          ...config.batch,
          // Called only once delivery runs, after `queue` below is assigned.
          keyOf: (envelope) => queue.sealedKey(envelope),
          onBatch: (batch, key) => {
            const id = key ?? `batch_${randomUUID()}`;
            batchIds.set(batch, id);
            if (key !== undefined) return;
            try {
              queue.seal(batch, id);
            } catch (error) {
              // Still sent: a crash before it is delivered may then regroup these events.
              log.error({ err: error, batch: id }, 'recording a batch in the queue file failed');
            }
          },
        });
        // Two batches in flight: the next one fills from the queue while one is being sent.
        const queue: DurableQueue<Envelope> = new DurableQueue<Envelope>(batching, {
          path: files.queue,
          durability,
          maxInFlight: config.batch.maxSize * 2,
          onError,
        });
        this.#queue = queue;
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
    const accept = predicate
      ? new MapSink<readonly Envelope[], readonly Envelope[]>(unbatching, (list) =>
          list.filter(predicate),
        )
      : unbatching;
    this.#accept = accept;
    this.ingest = {
      write: (list) => accept.write(list),
      close: (options?: CloseOptions) => this.close(options?.signal),
    };
  }

  #target(config: DestinationConfig, context: DestinationContext): Sink<Payload> {
    switch (config.type) {
      case 'webhook':
        return webhookTarget(config, this.#batchIds);
      case 'stdout':
        return stdoutTarget(context.stdout);
      case 'file':
        return fileTarget(config.path);
      default:
        return brokerSink(config);
    }
  }

  /** Events accepted by the target (`metrics.successes`). */
  get delivered(): number {
    return this.metrics.successes;
  }

  /** Failed delivery attempts, each retry counting (`metrics.failures`). */
  get failedAttempts(): number {
    return this.metrics.failures;
  }

  /** Events kept in the dead letter, overflow included (`metrics.deadLettered`). */
  get deadLettered(): number {
    return this.metrics.deadLettered;
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
    this.metrics.deadLettered += moved;
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

  /**
   * Delivers until `signal` aborts, then leaves the rest on disk and closes the files. Resolves
   * at most {@link CLOSE_GRACE} ms after the abort: by then the queue file is closed (the
   * undelivered events are in it) and the target was told to let go; a client that still has
   * not (a broker connection being opened to a server that never answers) is left behind,
   * with a warning, rather than holding up the shutdown.
   */
  close(signal?: AbortSignal): Promise<void> {
    // Idempotent: the Broadcaster closes the ingest, then the relay closes the destination.
    this.#closing ??= this.#close(signal);
    return this.#closing;
  }

  async #close(signal: AbortSignal | undefined): Promise<void> {
    try {
      const closing = this.#accept.close(signal ? { signal } : undefined);
      if (!signal) return await closing;
      const late = await untilGrace(closing, signal, CLOSE_GRACE);
      if (late) {
        this.#log.warn(
          { graceMs: CLOSE_GRACE },
          'the target did not close in time after the drain deadline; left behind (undelivered events are on disk)',
        );
      }
    } finally {
      this.#dead.close();
    }
  }
}

/** How long a destination's close may take after the drain deadline, in ms. */
export const CLOSE_GRACE = 300;

/**
 * Waits for `promise`, but no longer than `grace` ms after `signal` aborts; resolves true when
 * it gave up waiting (a rejection of `promise` is passed through).
 */
async function untilGrace(
  promise: Promise<void>,
  signal: AbortSignal,
  grace: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const late = new Promise<boolean>((resolve) => {
    const arm = (): void => void (timer = setTimeout(() => resolve(true), grace));
    if (signal.aborted) arm();
    else signal.addEventListener('abort', (onAbort = arm), { once: true });
  });
  try {
    return await Promise.race([promise.then(() => false), late]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
