import { isSinkClosedError, SinkClosedError } from '../errors/SinkClosedError.js';
import { BatchingSink } from '../BatchingSink.js';
import { Filter, type Matcher } from '../Filter.js';
import { noop } from '../internal/close.js';
import { markAcceptsBeforeDelivery } from '../internal/durable.js';
import { Lifecycle } from '../internal/Lifecycle.js';
import { callHook, reportDefault } from '../internal/report.js';
import { isThenable } from '../internal/thenable.js';
import {
  describe,
  expectInteger,
  expectNonNegative,
  expectOptionalFunction,
} from '../internal/validate.js';
import { Queue, type OverflowPolicy } from '../Queue.js';
import { Breaker } from '../retry/Breaker.js';
import type { RetryStrategy } from '../retry/RetryStrategy.js';
import { RetryingSink, type DeadLetter } from '../RetryingSink.js';
import type { CloseOptions, Sink } from '../Sink.js';
import { SinkMetrics } from '../SinkMetrics.js';
import { isHttpStatusError } from './errors.js';
import { HttpSink, type EncodedBody, type WebhookSigning } from './HttpSink.js';
import { httpRetryStrategy } from './httpRetryStrategy.js';
import { statusKey } from './internal.js';

const NAME = 'Endpoint';

/**
 * The registry's endpoint metrics, as returned by {@link Endpoint.metrics}. Counts are of
 * events (a batch of 100 answered 503 adds 100 to `failures` and to `"503 Service
 * Unavailable"`), as in Docker's registry.
 *
 * When nothing is in flight: `events = successes + dropped + pending`, and the sum of
 * `statuses` is `successes + failures`.
 *
 * @example
 * ```ts
 * const { pending, statuses } = endpoint.metrics();
 * console.log(pending, statuses['503 Service Unavailable'] ?? 0);
 * ```
 */
export interface EndpointMetrics {
  /** Events accepted and not yet delivered or dropped (queued, batching, or being retried). */
  pending: number;
  /** Events accepted (after `ignore`). */
  events: number;
  /** Events delivered: the receiver answered 2xx. */
  successes: number;
  /** Event attempts answered with a status other than 2xx. */
  failures: number;
  /** Event attempts that got no response (network error, reset, timeout) or could not be encoded. */
  errors: number;
  /** Events dropped: dead-lettered, overflowed from the queue, or left over at close. */
  dropped: number;
  /** Event attempts by response status, keyed like `"200 OK"`, `"503 Service Unavailable"`. */
  statuses: Record<string, number>;
}

/**
 * Batching for an {@link Endpoint}: events are sent as JSON arrays (or whatever `encode` makes
 * of an array).
 *
 * @example
 * ```ts
 * const batch: EndpointBatchOptions = { maxSize: 100, maxDelay: 50 };
 * ```
 */
export interface EndpointBatchOptions {
  /** Most events per request. */
  maxSize: number;
  /** Most ms an event waits for its batch to fill. */
  maxDelay: number;
}

/**
 * Options for {@link Endpoint}: the HttpSink's, the Queue's and the retry policy's in one.
 *
 * @example
 * ```ts
 * const options: EndpointOptions<RegistryEvent> = {
 *   headers: { authorization: `Bearer ${token}` },
 *   signing: { secret },
 *   ignore: (e) => e.action === 'pull',
 *   capacity: 10_000,
 *   deadLetter,
 * };
 * ```
 */
export interface EndpointOptions<E> {
  /** The request method; default `'POST'`. */
  method?: string;
  /** Extra request headers. Their values never appear in errors. */
  headers?: Readonly<Record<string, string>>;
  /** Ms to wait for a response; default 1000 (the registry's). */
  timeout?: number;
  /** Turns an event (or with `batch`, an array of events) into a body; default JSON. */
  encode?(payload: E | E[]): EncodedBody;
  /** Sign every request the Standard Webhooks way with this `whsec_…` secret. */
  signing?: Pick<WebhookSigning<E>, 'secret'>;
  /**
   * The `webhook-id` of an event, as for an {@link HttpSink}'s `idOf`: the same for every
   * attempt at one event (also after a restart), different between events. With `batch`, a
   * batch's id is made of its first and last events' ids and its size
   * (`batch_<first>_<last>_<size>`). Default with `signing`: a random `msg_…` id per event (per
   * batch with `batch`), kept while it is retried.
   */
  idOf?(event: E): string;
  /** `'manual'` (default: a 3xx is a failure, dead-lettered) or `'follow'`. */
  redirect?: 'manual' | 'follow';
  /** The fetch implementation; defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /** Events for which this returns true are not sent (nor counted). */
  ignore?: Matcher<E>;
  /** Most events waiting in the queue; default unbounded. */
  capacity?: number;
  /** What a write does when the queue is full; default `'block'`. */
  overflow?: OverflowPolicy;
  /**
   * The retry strategy; default `new Breaker(threshold, backoff)`. With `batch` it sees
   * arrays of events. It is always wrapped by {@link httpRetryStrategy}.
   */
  strategy?: RetryStrategy<E | E[]>;
  /** The default Breaker's threshold: consecutive failures before backing off; default 10. */
  threshold?: number;
  /** The default Breaker's backoff in ms; default 1000. */
  backoff?: number;
  /** Longest `Retry-After` honoured, in ms; default 60 000. */
  maxRetryAfter?: number;
  /** Receives a {@link DeadLetter} for every event the strategy gives up on (one per event). */
  deadLetter?: Sink<DeadLetter<E>>;
  /**
   * Told of every dropped event: `reason` is the last error (given up), `'overflow'` or
   * `'closed'`. Defaults to printing, except for what went to `deadLetter`.
   */
  onDrop?(event: E, reason: unknown): void;
  /** Told when writing to `deadLetter` fails. Defaults to printing. */
  onError?(error: unknown, event: E): void;
  /** Send arrays of events instead of one event per request. */
  batch?: EndpointBatchOptions;
}

// What the registry's metrics add to the library's SinkMetrics.
interface HttpCounters {
  errors: number;
  statuses: Record<string, number>;
}

/**
 * A webhook endpoint the way Docker's registry builds one: `ignore` filter → queue →
 * retrying sink (a Breaker by default) → {@link HttpSink}, with the registry's defaults
 * (timeout 1 s, threshold 10, backoff 1 s) and its metrics.
 *
 * `write` accepts at once (unless a bounded queue is full under `'block'`); events are sent in
 * order, one request at a time, each retried until it is delivered or the strategy gives up.
 * A non-retryable answer (a 4xx other than 408/425/429, or a 3xx) dead-letters the event at
 * once; `Retry-After` is honoured (up to `maxRetryAfter`). With `signing`, every attempt at one
 * event carries the same `webhook-id`, so a receiver can drop the duplicate that follows a
 * timed-out request it had in fact processed.
 *
 * Its queue is in memory: what is queued is lost with the process. For events that must
 * survive a crash use a {@link WebhookSink} under a `DurableQueue` (a DurableQueue refuses an
 * Endpoint, whose writes settle before delivery).
 *
 * @example
 * ```ts
 * const endpoint = new Endpoint<OrderEvent>('https://hooks.example.com/orders', {
 *   signing: { secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' },
 *   deadLetter: dlq,
 * });
 * endpoint.write({ type: 'order.created', id: 1 });
 * console.log(endpoint.metrics().statuses); // { '200 OK': 1 }
 * await endpoint.close({ signal: AbortSignal.timeout(10_000) });
 * ```
 */
export class Endpoint<E> implements Sink<E> {
  /** The target URL with credentials removed and the query string hidden, for logs. */
  readonly url: string;
  /**
   * The endpoint's counters in the library's one metrics shape, live (see {@link SinkMetrics}),
   * counted in events: `events` accepted, `pending` not yet delivered or dropped, `successes`
   * delivered, `failures` failed attempts (non-2xx answers and no answer alike), `dropped`,
   * `deadLettered` (once the dead-letter write succeeded), `lastError`, `lastErrorAt`,
   * `lastSuccessAt`. {@link Endpoint.metrics} is the registry's view of the same counts.
   *
   * @example
   * ```ts
   * console.log(endpoint.sinkMetrics.toPrometheus('webhook', { endpoint: 'orders' }));
   * ```
   */
  readonly sinkMetrics = new SinkMetrics();
  readonly #http: HttpCounters = { errors: 0, statuses: {} };
  readonly #top: Sink<E>;
  readonly #queue: Queue<E>;
  readonly #filter: Filter<E> | undefined;
  // A later close's deadline reaches the queue's drain through here (the first's is handed on).
  readonly #life = new Lifecycle(() => void this.#queue.close({ signal: AbortSignal.abort() }));

  /**
   * @param url - the receiver's absolute http(s) URL.
   * @param options - see {@link EndpointOptions}.
   * @throws TypeError or RangeError naming a bad option.
   */
  constructor(url: string | URL, options: EndpointOptions<E> = {}) {
    const {
      timeout = 1000,
      ignore,
      capacity,
      overflow,
      strategy,
      threshold = 10,
      backoff = 1000,
      maxRetryAfter,
      deadLetter,
      onDrop,
      onError,
      batch,
      signing,
      encode,
      idOf,
      ...http
    } = options;
    expectInteger('threshold', threshold, 0);
    expectOptionalFunction('idOf', idOf);
    expectNonNegative('backoff', backoff);
    expectOptionalFunction('onDrop', onDrop);
    expectOptionalFunction('onError', onError);
    if (
      ignore !== undefined &&
      typeof ignore !== 'function' &&
      (typeof ignore !== 'object' || ignore === null || typeof ignore.match !== 'function')
    ) {
      throw new TypeError(
        `Expected \`ignore\` to be a function or an object with match(), got ${describe(ignore)}`,
      );
    }
    if (
      strategy !== undefined &&
      (typeof strategy !== 'object' ||
        strategy === null ||
        typeof strategy.proceed !== 'function' ||
        typeof strategy.failure !== 'function' ||
        typeof strategy.success !== 'function')
    ) {
      throw new TypeError(
        `Expected \`strategy\` to be a RetryStrategy (proceed, failure, success), got ${describe(strategy)}`,
      );
    }
    if (batch !== undefined) {
      if (typeof batch !== 'object' || batch === null) {
        throw new TypeError(`Expected \`batch\` to be an object, got ${describe(batch)}`);
      }
      expectInteger('batch.maxSize', batch.maxSize);
      if (batch.maxDelay !== Infinity) expectNonNegative('batch.maxDelay', batch.maxDelay);
    }
    const counters = this.sinkMetrics;
    // Counts a dead letter once it is kept, as a RetryingSink does with its `metrics`.
    const kept = (write: () => void | Promise<void>): Promise<void> =>
      Promise.resolve(write()).then(() => {
        counters.deadLettered++;
      });
    const dropped = (event: E, reason: unknown, deadLettered: boolean): void => {
      counters.dropped++;
      if (onDrop) callHook(NAME, onDrop, event, reason);
      else if (!deadLettered) reportDefault(NAME, 'dropped an event', { event, reason });
    };
    const failedHook = (error: unknown, event: E): void => {
      if (onError) callHook(NAME, onError, error, event);
      else reportDefault(NAME, 'writing a dead letter failed', error);
    };
    const retry = httpRetryStrategy(strategy ?? new Breaker(threshold, backoff), {
      ...(maxRetryAfter !== undefined && { maxRetryAfter }),
    });

    // Below the queue, one payload is an event or (with batch) an array of events; `count`
    // says how many events a payload carries, for metrics.
    let egress: Sink<E>;
    if (batch === undefined) {
      const sender = this.#sender<E>(url, http, timeout, signing, encode, idOf, () => 1);
      this.url = sender.url;
      const retrying = new RetryingSink<E>(sender.sink, retry, {
        ...(deadLetter !== undefined && {
          deadLetter: { write: (letter) => kept(() => deadLetter.write(letter)), close() {} },
        }),
        onDrop: (event, reason) =>
          dropped(event, reason, deadLetter !== undefined && reason !== 'closed'),
        onError: failedHook,
      });
      egress = this.#settling(retrying, dropped);
    } else {
      // A batch is a contiguous run of events in write order: its first and last ids and its
      // size name its members, so a batch retried as a whole keeps its id.
      const batchIdOf =
        idOf &&
        ((events: E[]): string =>
          `batch_${idOf(events[0]!)}_${idOf(events[events.length - 1]!)}_${events.length}`);
      const sender = this.#sender<E[]>(
        url,
        http,
        timeout,
        signing,
        encode,
        batchIdOf,
        (p) => p.length,
      );
      this.url = sender.url;
      // One dead letter per event, so the dead-letter sink has one shape with or without batch.
      const splitter: Sink<DeadLetter<E[]>> | undefined = deadLetter && {
        async write(letter) {
          for (const event of letter.event) {
            try {
              await kept(() => deadLetter.write({ ...letter, event }));
            } catch (error) {
              failedHook(error, event);
            }
          }
        },
        close() {},
      };
      const retrying = new RetryingSink<E[]>(sender.sink, retry, {
        ...(splitter !== undefined && { deadLetter: splitter }),
        onDrop: (events, reason) => {
          for (const event of events) {
            dropped(event, reason, deadLetter !== undefined && reason !== 'closed');
          }
        },
        onError: (error, events) => {
          for (const event of events) failedHook(error, event);
        },
      });
      egress = this.#settling(new BatchingSink<E>(retrying, batch), dropped);
    }

    const queue = new Queue<E>(egress, {
      ...(capacity !== undefined && { capacity }),
      ...(overflow !== undefined && { overflow }),
      // Batches form from writes in flight together: two batches' worth lets the next batch
      // fill while one is being sent (BatchingSink still sends them one at a time, in order).
      ...(batch !== undefined && { maxInFlight: 2 * batch.maxSize }),
      onDrop: (event, reason) => {
        counters.pending--;
        dropped(event, reason, false);
      },
      // #settling reports and absorbs every failure below the queue.
      onError: noop,
    });
    this.#queue = queue;
    const ingress: Sink<E> = {
      write(event) {
        counters.events++;
        counters.pending++;
        let result: void | Promise<void>;
        try {
          result = queue.write(event);
        } catch (error) {
          counters.events--;
          counters.pending--;
          throw error;
        }
        if (result === undefined || !isThenable(result)) return result;
        // 'block': the event is accepted when the promise resolves, refused if it rejects.
        return result.then(undefined, (error: unknown) => {
          counters.events--;
          counters.pending--;
          throw error;
        });
      },
      close: () => queue.close(),
    };
    if (ignore !== undefined) {
      const match: (event: E) => boolean =
        typeof ignore === 'function' ? ignore : (event) => ignore.match(event);
      this.#filter = new Filter<E>(ingress, (event) => !match(event));
      this.#top = this.#filter;
    } else {
      this.#filter = undefined;
      this.#top = ingress;
    }
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * A snapshot of the endpoint's metrics (see {@link EndpointMetrics}).
   *
   * @example
   * ```ts
   * setInterval(() => console.log(endpoint.metrics()), 10_000).unref();
   * ```
   */
  metrics(): EndpointMetrics {
    const c = this.sinkMetrics;
    const { errors, statuses } = this.#http;
    return {
      pending: c.pending,
      events: c.events,
      successes: c.successes,
      // SinkMetrics counts every failed attempt; the registry's `failures` are answered ones.
      failures: c.failures - errors,
      errors,
      dropped: c.dropped,
      statuses: { ...statuses },
    };
  }

  /**
   * Accepts `event` for delivery (or ignores it, if `ignore` matches).
   * @returns synchronously, unless a bounded queue is full under `'block'`.
   * @throws SinkClosedError after `close()`; QueueFullError when full under `'reject'`.
   */
  write(event: E): void | Promise<void> {
    if (this.#life.closed) throw new SinkClosedError('Endpoint is closed');
    return this.#top.write(event);
  }

  /**
   * Stops accepting, delivers what is queued, then releases everything. Idempotent.
   *
   * Without a signal it waits until every queued event is delivered or dropped by the
   * strategy (with the default Breaker, which never gives up, that is until the receiver takes
   * them). With `signal`, when it aborts, requests in flight are abandoned and every event not
   * yet delivered goes to `onDrop` with reason `'closed'`.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#life.close(options, async (signal) => {
      // The queue first, with the deadline: the filter closes the queue without one. The
      // filter's own close then finds the queue already closing.
      const queueClosed = this.#queue.close({ signal });
      await Promise.all([queueClosed, this.#filter?.close()]);
    });
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** The HttpSink, wrapped to count responses and attempt outcomes. */
  #sender<P>(
    url: string | URL,
    http: Pick<EndpointOptions<E>, 'method' | 'headers' | 'redirect' | 'fetch'>,
    timeout: number,
    signing: { secret: string } | undefined,
    encode: ((payload: E | E[]) => EncodedBody) | undefined,
    idOf: ((payload: P) => string) | undefined,
    count: (payload: P) => number,
  ): { sink: Sink<P>; url: string } {
    const counters = this.sinkMetrics;
    const extra = this.#http;
    const sink = new HttpSink<P>(url, {
      ...http,
      timeout,
      ...(idOf !== undefined && { idOf }),
      ...(signing !== undefined && { signing: { secret: signing.secret } }),
      ...(encode !== undefined && { encode: encode as (payload: P) => EncodedBody }),
      onResponse(payload, status, text) {
        const key = statusKey(status, text);
        extra.statuses[key] = (extra.statuses[key] ?? 0) + count(payload);
      },
    });
    const metered: Sink<P> = {
      write: (payload) =>
        sink.write(payload).then(
          () => {
            counters.successes += count(payload);
            counters.lastSuccessAt = Date.now();
          },
          (error: unknown) => {
            // A close abandoning the attempt is neither an answer nor a transport failure.
            if (!isSinkClosedError(error)) {
              if (!isHttpStatusError(error)) extra.errors += count(payload);
              counters.failures += count(payload);
              counters.lastError = error;
              counters.lastErrorAt = Date.now();
            }
            throw error;
          },
        ),
      close: () => sink.close(),
    };
    return { sink: metered, url: sink.url };
  }

  /**
   * A sink in front of `dst` that counts an event out of `pending` when its write settles. A
   * rejection means the event was abandoned by a close (a RetryingSink only rejects then): it
   * is reported as dropped and absorbed, so the queue has nothing left to report.
   */
  #settling(
    dst: Sink<E>,
    dropped: (event: E, reason: unknown, deadLettered: boolean) => void,
  ): Sink<E> {
    const counters = this.sinkMetrics;
    const settled = (): void => {
      counters.pending--;
    };
    const failed = (event: E, error: unknown): void => {
      counters.pending--;
      dropped(event, isSinkClosedError(error) ? 'closed' : error, false);
    };
    return {
      write(event) {
        let result: void | Promise<void>;
        try {
          result = dst.write(event);
        } catch (error) {
          failed(event, error);
          return;
        }
        if (result === undefined || !isThenable(result)) {
          settled();
          return result;
        }
        return result.then(settled, (error: unknown) => failed(event, error));
      },
      close: (options?: CloseOptions) => (options ? dst.close(options) : dst.close()),
    };
  }
}

// Its write settles once the event is queued in memory: a DurableQueue refuses it as its
// destination (the event would leave the file undelivered); WebhookSink is the one to use there.
markAcceptsBeforeDelivery(Endpoint.prototype);
