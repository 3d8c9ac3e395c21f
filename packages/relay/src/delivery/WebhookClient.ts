// The webhook target's HTTP client: undici's own `request` on a dedicated Agent, sized to the
// destination's concurrency. The global `fetch` (undici's fetch, with its WHATWG streams and
// Request/Response objects) costs about 1.1–1.4 ms of CPU per request on the bench machine,
// which caps a relay near 550 events/s whatever its concurrency; `request` costs a fraction.
// The failures are the library's own errors (HttpStatusError, HttpTransportError,
// HttpEncodeError), so the target maps them exactly as it mapped HttpSink's.
import { STATUS_CODES } from 'node:http';
import { SinkClosedError } from 'eventsinks';
import { HttpStatusError, HttpTransportError, signWebhookAll } from 'eventsinks/http';
import { Agent, interceptors, type Dispatcher } from 'undici';
import { secretsAt, type SigningKey } from '../signing.js';

/** Most bytes of a response body a {@link WebhookClient} reads (64 KiB), as HttpSink does. */
export const MAX_RESPONSE_BODY = 64 * 1024;

/** How many redirects a client that follows them takes before giving up (fetch's bound). */
export const MAX_REDIRECTS = 20;

/** How a {@link WebhookClient} sends. */
export interface WebhookClientOptions {
  /** The request method: POST, PUT or PATCH. */
  method: string;
  /** Extra request headers. Their values never appear in errors. */
  headers: Readonly<Record<string, string>>;
  /** Ms from the start of an attempt until it is cut off (headers and body). */
  timeout: number;
  /** Follow 3xx answers (at most {@link MAX_REDIRECTS}); else a 3xx is the answer. */
  followRedirects: boolean;
  /** Connections kept to the receiver: the destination's concurrency. */
  connections: number;
  /** Sign every request the Standard Webhooks way with this `whsec_…` secret. */
  secret?: string | undefined;
  /**
   * Sign with each of these secrets that has not expired at send time (with `secret` too,
   * when both are given): one signature per secret in `webhook-signature`, for rotation.
   * When every one has expired, the one that expired last signs, and `onWarning` is told
   * once: a request is never sent unsigned.
   */
  secrets?: readonly SigningKey[] | undefined;
  /** The clock the secrets' expiry is checked against, in ms; default `Date.now`. */
  now?: (() => number) | undefined;
  /** Told (once per client) that every secret has expired. Default: a process warning. */
  onWarning?: ((message: string) => void) | undefined;
}

/** Per request options of {@link WebhookClient.send}. */
export interface WebhookSendOptions {
  /** Sent as the `traceparent` header (W3C Trace Context), replacing a configured one. */
  traceparent?: string | undefined;
}

/** What the receiver answered with a 2xx. */
export interface WebhookResponse {
  status: number;
  /** Up to {@link MAX_RESPONSE_BODY} bytes of the body, as UTF-8. */
  body: string;
}

/**
 * One webhook URL over keep-alive connections (pipelining 1). `send` makes one request and
 * resolves with a 2xx; anything else rejects with the library's HTTP errors, or a
 * SinkClosedError once `close` has cut the request off.
 *
 * @example
 * ```ts
 * const client = new WebhookClient('https://user:pw@example.com/hook', {
 *   method: 'POST', headers: {}, timeout: 5000, followRedirects: false, connections: 16,
 * });
 * const { status } = await client.send('{"n":1}', 'evt_1');
 * await client.close();
 * ```
 */
export class WebhookClient {
  /** The URL without credentials, the query string hidden: what errors show. */
  readonly url: string;
  readonly #origin: string;
  readonly #path: string;
  readonly #options: WebhookClientOptions;
  readonly #headers: Record<string, string>;
  readonly #agent: Agent;
  readonly #dispatcher: Dispatcher;
  readonly #inflight = new Set<AbortController>();
  readonly #keys: readonly SigningKey[];
  #warnedExpired = false;
  #closed = false;

  constructor(url: string, options: WebhookClientOptions) {
    const keys: SigningKey[] = [];
    if (options.secret !== undefined) {
      validateSecretShape(options.secret, 'signing.secret');
      keys.push({ secret: options.secret });
    }
    (options.secrets ?? []).forEach((key, i) => {
      validateSecretShape(key.secret, `signing.secrets[${i}].secret`);
      keys.push(key);
    });
    this.#keys = keys;
    const parsed = new URL(url);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(options.headers)) {
      headers[name.toLowerCase()] = value;
    }
    // As HttpSink (and Go's client): credentials in the URL are basic auth, unless an
    // authorization header is given; they never go on the request line or into errors.
    if (parsed.username || parsed.password) {
      const user = decodeURIComponent(parsed.username);
      const password = decodeURIComponent(parsed.password);
      headers.authorization ??= `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
      parsed.username = '';
      parsed.password = '';
    }
    parsed.hash = '';
    this.url = `${parsed.protocol}//${parsed.host}${parsed.pathname}${parsed.search ? '?…' : ''}`;
    this.#origin = parsed.origin;
    this.#path = `${parsed.pathname}${parsed.search}`;
    this.#options = options;
    this.#headers = headers;
    this.#agent = new Agent({
      connections: options.connections,
      pipelining: 1,
      // undici's own inactivity timers would fire with their own errors: the attempt's
      // deadline (one timer over headers and body) is ours, as it was with HttpSink.
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: 30_000,
    });
    this.#dispatcher = options.followRedirects
      ? this.#agent.compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTS }))
      : this.#agent;
  }

  /**
   * Sends `body` (JSON) with `webhook-id: id`, signed when a secret is set (with every secret
   * not yet expired), with a `traceparent` header when `options.traceparent` is given.
   *
   * @throws HttpStatusError for a non-2xx answer, HttpTransportError when no answer came (or
   * not within the timeout), SinkClosedError when `close` cut the request off.
   */
  async send(body: string, id: string, options: WebhookSendOptions = {}): Promise<WebhookResponse> {
    if (this.#closed) throw new SinkClosedError('the webhook client is closed');
    const { method, timeout } = this.#options;
    const headers: Record<string, string> = { ...this.#headers };
    headers['content-type'] = 'application/json';
    headers['webhook-id'] = id;
    if (options.traceparent !== undefined) headers.traceparent = options.traceparent;
    if (this.#keys.length > 0) {
      // The timestamp is the real time (receivers check it against theirs); only the expiry
      // of the secrets follows the injectable clock.
      const timestamp = Math.floor(Date.now() / 1000);
      headers['webhook-timestamp'] = String(timestamp);
      headers['webhook-signature'] = await signWebhookAll(
        this.#signingSecrets(),
        id,
        timestamp,
        body,
      );
      // close() may have come while signing.
      if (this.#closed) throw new SinkClosedError('the webhook client is closed');
    }
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeout);
    this.#inflight.add(controller);
    try {
      let response: Dispatcher.ResponseData;
      try {
        response = await this.#dispatcher.request({
          origin: this.#origin,
          path: this.#path,
          method,
          headers,
          body,
          signal: controller.signal,
        });
      } catch (error) {
        if (this.#closed)
          throw new SinkClosedError('the webhook client was closed', { cause: error });
        throw new HttpTransportError(method, this.url, timedOut ? timeout : undefined, {
          cause: error,
          messageId: id,
        });
      }
      const status = response.statusCode;
      // The status is the receipt; reading the body (bounded) frees the connection for the
      // next request. A body cut short by the deadline does not undo delivery.
      const text = await readBody(response.body);
      if (status >= 200 && status < 300) return { status, body: text };
      const retryAfter = response.headers['retry-after'];
      throw new HttpStatusError({
        method,
        url: this.url,
        status,
        statusText: STATUS_CODES[status] ?? '',
        retryAfter: parseRetryAfter(
          Array.isArray(retryAfter) ? (retryAfter[0] ?? null) : (retryAfter ?? null),
          Date.now(),
        ),
        body: text,
        messageId: id,
      });
    } finally {
      clearTimeout(timer);
      this.#inflight.delete(controller);
    }
  }

  /** The secrets that sign now; warns once when all have expired (the last one still signs). */
  #signingSecrets(): string[] {
    const now = this.#options.now?.() ?? Date.now();
    const { secrets, allExpired } = secretsAt(this.#keys, now);
    if (allExpired && !this.#warnedExpired) {
      this.#warnedExpired = true;
      const message = `every signing secret of ${this.url} has expired: still signing with the one that expired last; rotate the secret (POST /admin/destinations/{name}/rotate-secret) or give one without expiresAt`;
      if (this.#options.onWarning) this.#options.onWarning(message);
      else process.emitWarning(message);
    }
    return secrets;
  }

  /**
   * Without a signal (the target calls it once idle): lets the connections go. With one: cuts
   * off what is in flight and destroys the connections at once.
   */
  async close(signal?: AbortSignal): Promise<void> {
    this.#closed = true;
    if (signal === undefined) {
      await this.#agent.close();
      return;
    }
    for (const controller of this.#inflight) controller.abort();
    this.#inflight.clear();
    await this.#agent.destroy();
  }
}

/** Reads at most MAX_RESPONSE_BODY bytes as UTF-8, then drops the rest (and its connection). */
async function readBody(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      const take = Math.min(chunk.length, MAX_RESPONSE_BODY - size);
      chunks.push(take === chunk.length ? chunk : chunk.subarray(0, take));
      size += take;
      if (size >= MAX_RESPONSE_BODY) break;
    }
  } catch {
    // The deadline passed or the connection broke mid-body: keep what arrived.
  } finally {
    // Breaking out of the loop destroys the stream; this covers an error before the loop.
    if (!body.destroyed) body.destroy();
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/**
 * `Retry-After` (delay-seconds or an HTTP-date) in ms from `now`, never negative; `undefined`
 * when absent or unparseable. The library's parser is internal to eventsinks/http: this is
 * the same rule, so the relay waits as HttpSink's callers do.
 */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // Only something that looks like a date: Date.parse accepts bare numbers like "-1" or "1.5".
  if (!/[a-z]/i.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

// As HttpSink's constructor: a key that cannot be base64 fails when the target is made, not
// as a dead letter per event. (The schema checks the `whsec_` prefix and the alphabet.)
function validateSecretShape(secret: string, name: string): void {
  const key = secret.startsWith('whsec_') ? secret.slice(6) : secret;
  if (key.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(key) || key.length % 4 === 1) {
    throw new TypeError(
      `Expected \`${name}\` to be a non-empty base64 key, optionally prefixed with whsec_; got a ${secret.length}-character string that is not`,
    );
  }
}
