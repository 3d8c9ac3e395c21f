import { SinkClosedError } from '../errors/SinkClosedError.js';
import { noop } from '../internal/close.js';
import { getStoredId } from '../internal/durable.js';
import { Lifecycle } from '../internal/Lifecycle.js';
import { callHook } from '../internal/report.js';
import {
  describe,
  expectFunction,
  expectInteger,
  expectOneOf,
  expectOptionalFunction,
} from '../internal/validate.js';
import type { Sink } from '../Sink.js';
import { HttpEncodeError, HttpStatusError, HttpTransportError } from './errors.js';
import { base64Encode, parseRetryAfter, redactUrl, statusText, toBytes } from './internal.js';
import { hmac, importSecret } from './signing.js';

/** Most bytes of a response body an {@link HttpSink} reads (64 KiB). */
const MAX_BODY = 64 * 1024;
const NAME = 'HttpSink';

/**
 * A request body and its media type, as returned by an `encode` option.
 *
 * @example
 * ```ts
 * const encoded: EncodedBody = { body: 'a,b\n1,2\n', contentType: 'text/csv' };
 * ```
 */
export interface EncodedBody {
  /** The exact bytes (or UTF-8 text) to send; signatures are computed over them. */
  body: string | Uint8Array;
  /** The `content-type` header. */
  contentType: string;
}

/**
 * Standard Webhooks signing for an {@link HttpSink}.
 *
 * @example
 * ```ts
 * const signing: WebhookSigning<Order> = {
 *   secret: process.env.WEBHOOK_SECRET!,
 *   id: (order) => `order_${order.id}_${order.version}`,
 * };
 * ```
 */
export interface WebhookSigning<E> {
  /** The shared secret in Standard Webhooks form: `whsec_` and a base64 key. */
  secret: string;
  /**
   * The `webhook-id` of an event. It must be the same for every attempt at one event and
   * differ between events: receivers drop a request whose id they already processed.
   * The same as {@link HttpSinkOptions.idOf} (give one or the other); see there for the
   * default.
   */
  id?(event: E): string;
}

/**
 * Options for {@link HttpSink}.
 *
 * @example
 * ```ts
 * const options: HttpSinkOptions<Order> = {
 *   headers: { authorization: `Bearer ${token}` },
 *   timeout: 2000,
 *   signing: { secret },
 * };
 * ```
 */
export interface HttpSinkOptions<E> {
  /** The request method; default `'POST'`. */
  method?: string;
  /** Extra request headers. Their values never appear in errors. */
  headers?: Readonly<Record<string, string>>;
  /**
   * Ms to wait for the response status and headers; default 5000. The same deadline bounds
   * reading the (at most 64 KiB of) body; a body still arriving then is cut short, without
   * turning a received status into a transport error.
   */
  timeout?: number;
  /** Turns an event into a body; default `JSON.stringify`, `application/json`. */
  encode?(event: E): EncodedBody;
  /** Sign every request the Standard Webhooks way. */
  signing?: WebhookSigning<E>;
  /**
   * The `webhook-id` of an event (sent with every request when given, signed with `signing`).
   * It must be the same for every attempt at one event, also after a restart, and differ
   * between events: receivers drop a request whose id they already processed. Derive it from
   * the event (an order id and version, an idempotency key).
   *
   * Default, with `signing`: the event's stored id when a `DurableQueue` delivers it (see
   * `durableId` in eventsinks/sqlite; stable across restarts), else a random `msg_…` id kept
   * for an object event until it is delivered (and, for a primitive event, while the same value
   * is retried). Without `signing` and `idOf`, no `webhook-id` is sent.
   */
  idOf?(event: E): string;
  /**
   * `'manual'` (the default): a 3xx is a failure ({@link HttpStatusError}, not retryable), so a
   * webhook cannot be bounced to another host. `'follow'` follows redirects.
   */
  redirect?: 'manual' | 'follow';
  /** The fetch implementation; defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /**
   * Told of every response received, 2xx or not, before `write` settles (metrics, logging).
   * `statusText` is the standard reason phrase when there is one; `body` is the response body
   * as read (at most 64 KiB, decoded as UTF-8; cut short if the deadline passed while it was
   * arriving), for a 2xx too.
   */
  onResponse?(event: E, status: number, statusText: string, body: string): void;
}

/**
 * Sends every event as one HTTP request with the runtime's own `fetch`; `write` resolves only
 * when the receiver answers 2xx.
 *
 * Failures reject with typed errors: {@link HttpStatusError} (with `status`, `retryable` and
 * `retryAfter`) for any other status, {@link HttpTransportError} when no response came (network
 * failure, connection reset, `timeout`), {@link HttpEncodeError} when `encode` throws. Errors
 * never contain header values or URL credentials. Credentials in the URL are sent as basic
 * authentication, the way Go's HTTP client (and so Docker's registry) sends them. Redirects are
 * not followed unless `redirect: 'follow'`. At most 64 KiB of a response body is read.
 * Connections are kept alive by the runtime's fetch.
 *
 * With `signing`, every attempt at one event carries the same `webhook-id`: `idOf(event)`,
 * else the stored id a `DurableQueue` hands down (stable across restarts), else a random one
 * kept while the event is retried.
 *
 * It does not retry: wrap it in a RetryingSink, or use a {@link WebhookSink} (under a
 * DurableQueue) or an {@link Endpoint}.
 *
 * @example
 * ```ts
 * const sink = new HttpSink<Order>('https://hooks.example.com/orders', {
 *   signing: { secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' },
 * });
 * await sink.write({ id: 1, total: 42 }); // resolves on 2xx, rejects otherwise
 * await sink.close();
 * ```
 */
export class HttpSink<E> implements Sink<E> {
  /** The target URL with credentials removed and the query string hidden, for logs. */
  readonly url: string;
  readonly #target: string;
  readonly #method: string;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #timeout: number;
  readonly #encode: (event: E) => EncodedBody;
  readonly #redirect: 'manual' | 'follow';
  readonly #fetch: typeof fetch;
  readonly #onResponse:
    ((event: E, status: number, statusText: string, body: string) => void) | undefined;
  readonly #key: Promise<CryptoKey> | undefined;
  readonly #idOf: ((event: E) => string) | undefined;
  // Ids of object events not yet delivered: a retry of the same object reuses its id.
  readonly #ids = new WeakMap<object, string>();
  // A primitive cannot key a WeakMap: keep the id of the last primitive that failed, which is
  // what a RetryingSink writes next when it retries.
  #lastFailed: { value: unknown; id: string } | undefined;
  readonly #inflight = new Set<AbortController>();
  readonly #life = new Lifecycle();

  /**
   * @param url - the receiver: an absolute http(s) URL, a string or a `URL`.
   * @param options - see {@link HttpSinkOptions}.
   * @throws TypeError or RangeError naming a bad argument (never showing a secret).
   */
  constructor(url: string | URL, options: HttpSinkOptions<E> = {}) {
    const {
      method = 'POST',
      headers = {},
      timeout = 5000,
      encode,
      signing,
      redirect = 'manual',
      fetch: fetchImpl = globalThis.fetch,
      onResponse,
      idOf,
    } = options;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      // Not `describe(url)`: a malformed URL may still hold a password.
      throw new TypeError(`Expected \`url\` to be an absolute URL, got ${typeof url}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new TypeError(
        `Expected \`url\` to be an http: or https: URL, got ${describe(parsed.protocol)}`,
      );
    }
    if (typeof method !== 'string' || !/^[A-Za-z]+$/.test(method) || /^(GET|HEAD)$/i.test(method)) {
      throw new TypeError(
        `Expected \`method\` to be an HTTP method that carries a body (POST, PUT, PATCH…), got ${describe(method)}`,
      );
    }
    if (typeof headers !== 'object' || headers === null) {
      throw new TypeError(`Expected \`headers\` to be an object, got ${describe(headers)}`);
    }
    for (const [name, value] of Object.entries(headers)) {
      if (typeof value !== 'string') {
        throw new TypeError(`Expected header \`${name}\` to be a string, got ${typeof value}`);
      }
    }
    expectInteger('timeout', timeout);
    expectOptionalFunction('encode', encode);
    expectOneOf('redirect', redirect, ['manual', 'follow']);
    expectFunction('fetch', fetchImpl);
    expectOptionalFunction('onResponse', onResponse);
    expectOptionalFunction('idOf', idOf);
    if (signing !== undefined) {
      if (typeof signing !== 'object' || signing === null) {
        throw new TypeError(`Expected \`signing\` to be an object, got ${typeof signing}`);
      }
      expectOptionalFunction('signing.id', signing.id);
      if (idOf !== undefined && signing.id !== undefined) {
        throw new TypeError('Expected one of `idOf` and `signing.id`, got both');
      }
    }

    const merged: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) merged[name.toLowerCase()] = value;
    // fetch refuses URLs with credentials; Go's client (which the registry uses) turns them
    // into basic auth, and so do we, unless an authorization header is given.
    if (parsed.username || parsed.password) {
      const user = decodeURIComponent(parsed.username);
      const password = decodeURIComponent(parsed.password);
      merged.authorization ??= `Basic ${base64Encode(toBytes(`${user}:${password}`))}`;
      parsed.username = '';
      parsed.password = '';
    }
    parsed.hash = '';
    this.url = redactUrl(parsed);
    this.#target = parsed.href;
    this.#method = method.toUpperCase();
    this.#headers = merged;
    this.#timeout = timeout;
    this.#encode = encode ?? encodeJson;
    this.#redirect = redirect;
    this.#fetch = fetchImpl;
    this.#onResponse =
      onResponse &&
      ((event, status, text, body) => callHook(NAME, onResponse, event, status, text, body));
    if (signing !== undefined) {
      // Checked synchronously, so a malformed secret fails here rather than at the first write.
      validateSecretShape(signing.secret);
      const key = importSecret('signing.secret', signing.secret);
      // Never an unhandled rejection: if importing fails anyway, every write reports it.
      key.catch(noop);
      this.#key = key;
    }
    this.#idOf = idOf ?? signing?.id;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * Sends `event` in one request.
   * @returns a promise that resolves when the receiver answers 2xx.
   * @throws (rejects) HttpStatusError, HttpTransportError or HttpEncodeError, see the class
   *   description; SinkClosedError after `close()` or when `close()` aborts the request.
   */
  write(event: E): Promise<void> {
    if (this.#life.closed) return Promise.reject(new SinkClosedError('HttpSink is closed'));
    return this.#send(event);
  }

  /** Aborts requests in flight (their writes reject with `SinkClosedError`). Idempotent. */
  close(): void {
    if (!this.#life.end()) return;
    for (const controller of this.#inflight) controller.abort();
    this.#inflight.clear();
  }

  /** Same as `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  async #send(event: E): Promise<void> {
    let encoded: EncodedBody;
    let id: string | undefined;
    try {
      encoded = this.#encode(event);
      if (typeof encoded.body !== 'string' && !(encoded.body instanceof Uint8Array)) {
        throw new TypeError(`encode returned a body of type ${typeof encoded.body}`);
      }
      if (this.#key !== undefined || this.#idOf !== undefined) {
        id = this.#idFor(event);
        if (typeof id !== 'string' || id === '') {
          throw new TypeError(`idOf returned ${describe(id)}, not a non-empty string`);
        }
      }
    } catch (error) {
      // The same event would fail the same way every time: not worth retrying.
      throw new HttpEncodeError({ cause: error });
    }
    const headers: Record<string, string> = { ...this.#headers };
    headers['content-type'] = encoded.contentType;
    if (id !== undefined && this.#key === undefined) headers['webhook-id'] = id;
    if (id !== undefined && this.#key !== undefined) {
      const timestamp = Math.floor(Date.now() / 1000);
      const signature = await hmac(await this.#key, id, timestamp, toBytes(encoded.body));
      headers['webhook-id'] = id;
      headers['webhook-timestamp'] = String(timestamp);
      headers['webhook-signature'] = `v1,${base64Encode(signature)}`;
    }
    // Checked again after the await: close() may have come while signing.
    if (this.#life.closed) throw new SinkClosedError('HttpSink is closed');

    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#timeout);
    this.#inflight.add(controller);
    try {
      let response: Response;
      try {
        response = await this.#fetch(this.#target, {
          method: this.#method,
          headers,
          // Any Uint8Array is a valid body at run time; the DOM typings only admit ArrayBuffer-backed ones.
          body: encoded.body as BodyInit,
          redirect: this.#redirect,
          signal: controller.signal,
        });
      } catch (error) {
        if (this.#life.closed) throw new SinkClosedError('HttpSink was closed', { cause: error });
        throw new HttpTransportError(this.#method, this.url, timedOut ? this.#timeout : undefined, {
          cause: error,
          messageId: id,
        });
      }
      // A browser's 'manual' redirect is an opaque response with status 0.
      const status = response.type === 'opaqueredirect' ? 0 : response.status;
      const text =
        status === 0 ? 'opaque redirect' : statusText(response.status, response.statusText);
      // The status is the receipt; reading the body (bounded) returns the connection to the
      // pool for the next request. A body cut short by the deadline does not undo delivery.
      const body = await readBody(response);
      this.#onResponse?.(event, status, text, body);
      if (status >= 200 && status < 300) {
        this.#delivered(event);
        return;
      }
      throw new HttpStatusError({
        method: this.#method,
        url: this.url,
        status,
        statusText: text,
        retryAfter: parseRetryAfter(response.headers.get('retry-after'), Date.now()),
        body,
        messageId: id,
      });
    } catch (error) {
      if (id !== undefined) this.#failed(event, id);
      throw error;
    } finally {
      clearTimeout(timer);
      this.#inflight.delete(controller);
    }
  }

  #idFor(event: E): string {
    if (this.#idOf !== undefined) return this.#idOf(event);
    // Below a DurableQueue: the id of the stored event, the same after a restart.
    const stored = getStoredId(event);
    if (stored !== undefined) return stored;
    if (typeof event === 'object' && event !== null) {
      let id = this.#ids.get(event);
      if (id === undefined) {
        id = newMessageId();
        this.#ids.set(event, id);
      }
      return id;
    }
    const last = this.#lastFailed;
    this.#lastFailed = undefined;
    if (last !== undefined && Object.is(last.value, event)) return last.id;
    return newMessageId();
  }

  #failed(event: E, id: string | undefined): void {
    if (id === undefined || this.#idOf !== undefined) return;
    if (typeof event !== 'object' || event === null) this.#lastFailed = { value: event, id };
  }

  #delivered(event: E): void {
    // Writing the same object again later is a new event: give it a new id.
    if (typeof event === 'object' && event !== null) this.#ids.delete(event);
  }
}

function encodeJson(event: unknown): EncodedBody {
  const body = JSON.stringify(event);
  if (body === undefined) throw new TypeError(`cannot encode ${describe(event)} as JSON`);
  return { body, contentType: 'application/json' };
}

// crypto.randomUUID exists in every runtime we target (browsers: secure contexts).
function newMessageId(): string {
  return `msg_${crypto.randomUUID().replaceAll('-', '')}`;
}

/** Reads at most MAX_BODY bytes of a response body as UTF-8, then cancels the rest. */
async function readBody(response: Response): Promise<string> {
  const stream = response.body;
  if (stream === null) return '';
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let done = false;
  try {
    while (size < MAX_BODY) {
      const next = await reader.read();
      if (next.done) {
        done = true;
        break;
      }
      const { value } = next;
      const take = Math.min(value.length, MAX_BODY - size);
      chunks.push(take === value.length ? value : value.subarray(0, take));
      size += take;
    }
  } catch {
    // The deadline passed or the connection broke mid-body: keep what arrived.
  } finally {
    if (!done) void reader.cancel().catch(noop);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return new TextDecoder().decode(all);
}

// The shape check runs synchronously so a bad secret fails the constructor, not the first write.
function validateSecretShape(secret: unknown): void {
  if (typeof secret !== 'string') {
    throw new TypeError(
      `Expected \`signing.secret\` to be a string (whsec_…), got ${typeof secret}`,
    );
  }
  const key = secret.startsWith('whsec_') ? secret.slice(6) : secret;
  if (key.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(key) || key.length % 4 === 1) {
    throw new TypeError(
      `Expected \`signing.secret\` to be a non-empty base64 key, optionally prefixed with whsec_; got a ${secret.length}-character string that is not`,
    );
  }
}
