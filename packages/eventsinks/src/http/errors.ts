import { brand, causeOnly, hasErrorCode } from '../errors/brand.js';
import type { PublishError } from '../errors/PublishError.js';

const STATUS_CODE = 'ERR_HTTP_STATUS';
const TRANSPORT_CODE = 'ERR_HTTP_TRANSPORT';
const ENCODE_CODE = 'ERR_HTTP_ENCODE';
const VERIFICATION_CODE = 'ERR_WEBHOOK_VERIFICATION';

/**
 * The `reason` of the HTTP adapter's publish errors ({@link PublishError}):
 * - `'status'` ({@link HttpStatusError}): the receiver answered with a status other than 2xx.
 * - `'timeout'` ({@link HttpTransportError}): no response within `timeout` ms. The receiver may
 *   still have processed the request.
 * - `'network'` ({@link HttpTransportError}): the connection failed or was reset.
 * - `'encode'` ({@link HttpEncodeError}): the event could not be encoded.
 *
 * @example
 * ```ts
 * const mayBeProcessed = (reason: HttpPublishFailure) => reason === 'timeout';
 * ```
 */
export type HttpPublishFailure = 'status' | 'timeout' | 'network' | 'encode';

/**
 * What an {@link HttpStatusError} knows about the response.
 *
 * @example
 * ```ts
 * const details: HttpStatusErrorDetails = {
 *   method: 'POST',
 *   url: 'https://hooks.example.com/in',
 *   status: 503,
 *   statusText: 'Service Unavailable',
 *   retryAfter: 2000,
 *   body: 'try later',
 * };
 * ```
 */
export interface HttpStatusErrorDetails {
  /** The request method. */
  method: string;
  /** The URL, without credentials and with the query string hidden. */
  url: string;
  /** The HTTP status; 0 for a browser's opaque redirect. */
  status: number;
  /** The reason phrase, or the standard one for `status`. */
  statusText: string;
  /** From `Retry-After` (delay-seconds or HTTP-date), in ms; `undefined` when absent or invalid. */
  retryAfter: number | undefined;
  /** Up to 64 KiB of the response body, decoded as UTF-8. */
  body: string;
  /** The request's `webhook-id`, if it carried one. */
  messageId?: string | undefined;
}

/**
 * The receiver answered with a status other than 2xx (a 3xx included, since redirects are not
 * followed by default).
 *
 * `retryable` is true for 408, 425, 429 and 5xx: trying again later may succeed. For every other
 * status it is false: the request itself was refused, and an Endpoint dead-letters the event at
 * once. The message and properties never contain header values or URL credentials.
 *
 * @example
 * ```ts
 * try {
 *   await sink.write(event);
 * } catch (error) {
 *   if (isHttpStatusError(error) && error.status === 410) unsubscribe();
 * }
 * ```
 */
export class HttpStatusError extends Error implements PublishError {
  /** Stable error code: `'ERR_HTTP_STATUS'`. */
  readonly code = STATUS_CODE;
  /** Always `'status'`; see {@link HttpPublishFailure}. */
  readonly reason = 'status';
  /** The request's `webhook-id` (`idOf` or signing), `undefined` when it carried none. */
  readonly messageId: string | undefined;
  /** The HTTP status; 0 for a browser's opaque redirect. */
  readonly status: number;
  /** The reason phrase. */
  readonly statusText: string;
  /** True for 408, 425, 429 and 5xx. */
  readonly retryable: boolean;
  /** How long the receiver asked us to wait (`Retry-After`), in ms, if it did. */
  readonly retryAfter: number | undefined;
  /** Up to 64 KiB of the response body. */
  readonly body: string;
  /** The request method. */
  readonly method: string;
  /** The URL, without credentials and with the query string hidden. */
  readonly url: string;

  /** @param details - see {@link HttpStatusErrorDetails}; @param options - `cause` is passed through. */
  constructor(details: HttpStatusErrorDetails, options?: ErrorOptions) {
    const { method, url, status, statusText, retryAfter, body, messageId } = details;
    const excerpt = body.length > 200 ? `${body.slice(0, 200)}…` : body;
    super(
      `${method} ${url}: ${status} ${statusText}`.trimEnd() + (excerpt ? `: ${excerpt}` : ''),
      options,
    );
    this.name = 'HttpStatusError';
    this.messageId = messageId;
    this.status = status;
    this.statusText = statusText;
    this.retryable = isRetryableStatus(status);
    this.retryAfter = retryAfter;
    this.body = body;
    this.method = method;
    this.url = url;
    brand(this, STATUS_CODE);
  }
}

/**
 * True when `error` is an {@link HttpStatusError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isHttpStatusError(error) && !error.retryable) console.error('receiver refused', error.status);
 * ```
 */
export function isHttpStatusError(error: unknown): error is HttpStatusError {
  return hasErrorCode(error, STATUS_CODE);
}

/**
 * The request did not get a response: the connection failed or was reset, or `timeout` ms passed
 * before the response (status and headers) arrived. Always `retryable`. The underlying error is
 * the `cause`.
 *
 * A timed-out request may still have been processed by the receiver; with signing, the retry
 * carries the same `webhook-id` so the receiver can recognise it.
 *
 * @example
 * ```ts
 * if (isHttpTransportError(error) && error.timeout) console.warn('receiver is slow');
 * ```
 */
export class HttpTransportError extends Error implements PublishError {
  /** Stable error code: `'ERR_HTTP_TRANSPORT'`. */
  readonly code = TRANSPORT_CODE;
  /** `'timeout'` when `timeout` ms passed without a response, else `'network'`. */
  readonly reason: 'timeout' | 'network';
  /** The request's `webhook-id` (`idOf` or signing), `undefined` when it carried none. */
  readonly messageId: string | undefined;
  /** Always true: a transport failure may go away. */
  readonly retryable = true;
  /**
   * True when the request was aborted because `timeout` passed.
   * @deprecated Use `reason === 'timeout'`. Everywhere else a `timeout` field is the duration
   * in ms (`AmqpTimeoutError`, `SinkTimeoutError`); this boolean stays until the next major.
   */
  readonly timeout: boolean;
  /** The request method. */
  readonly method: string;
  /** The URL, without credentials and with the query string hidden. */
  readonly url: string;

  /**
   * @param method - the request method.
   * @param url - the redacted URL.
   * @param timeout - the timeout in ms if that is what happened, else `undefined`.
   * @param options - `cause` is the underlying error; `messageId` the request's `webhook-id`.
   */
  constructor(
    method: string,
    url: string,
    timeout: number | undefined,
    options?: ErrorOptions & { messageId?: string | undefined },
  ) {
    const cause = options?.cause;
    const reason =
      timeout !== undefined
        ? `no response within ${timeout} ms`
        : `request failed${cause instanceof Error ? `: ${causeMessage(cause)}` : ''}`;
    super(`${method} ${url}: ${reason}`, causeOnly(options));
    this.name = 'HttpTransportError';
    this.reason = timeout !== undefined ? 'timeout' : 'network';
    this.messageId = options?.messageId;
    this.timeout = timeout !== undefined;
    this.method = method;
    this.url = url;
    brand(this, TRANSPORT_CODE);
  }
}

/**
 * True when `error` is an {@link HttpTransportError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isHttpTransportError(error)) console.warn('network trouble', error.cause);
 * ```
 */
export function isHttpTransportError(error: unknown): error is HttpTransportError {
  return hasErrorCode(error, TRANSPORT_CODE);
}

/**
 * The `encode` option (or `signing.id`) threw for an event: it can never be sent, so it is not
 * `retryable` and an Endpoint dead-letters it at once. The encoder's error is the `cause`.
 *
 * @example
 * ```ts
 * if (isHttpEncodeError(error)) console.error('cannot serialise', error.cause);
 * ```
 */
export class HttpEncodeError extends Error implements PublishError {
  /** Stable error code: `'ERR_HTTP_ENCODE'`. */
  readonly code = ENCODE_CODE;
  /** Always `'encode'`; see {@link HttpPublishFailure}. */
  readonly reason = 'encode';
  /** Always `undefined`: the id is part of what could not be computed. */
  readonly messageId: string | undefined = undefined;
  /** Always false: encoding the same event again fails again. */
  readonly retryable = false;

  /** @param options - `cause` is the encoder's error. */
  constructor(options?: ErrorOptions) {
    super('could not encode the event for the request body', options);
    this.name = 'HttpEncodeError';
    brand(this, ENCODE_CODE);
  }
}

/**
 * True when `error` is an {@link HttpEncodeError}, from this copy of eventsinks or any other.
 *
 * @example
 * ```ts
 * if (isHttpEncodeError(error)) fixTheEncoder(error.cause);
 * ```
 */
export function isHttpEncodeError(error: unknown): error is HttpEncodeError {
  return hasErrorCode(error, ENCODE_CODE);
}

/**
 * Why {@link verifyWebhook} refused a request.
 * - `'missing-header'`: `webhook-id`, `webhook-timestamp` or `webhook-signature` is absent.
 * - `'invalid-timestamp'`: `webhook-timestamp` is not an integer number of seconds.
 * - `'stale-timestamp'` / `'future-timestamp'`: it is further from now than `tolerance`.
 * - `'invalid-signature'`: no `v1` signature matches.
 *
 * @example
 * ```ts
 * const status = (reason: WebhookVerificationReason) => (reason === 'missing-header' ? 400 : 401);
 * ```
 */
export type WebhookVerificationReason =
  | 'missing-header'
  | 'invalid-timestamp'
  | 'stale-timestamp'
  | 'future-timestamp'
  | 'invalid-signature';

/**
 * A webhook request failed verification: answer it with 400 or 401 and do not process it.
 *
 * @example
 * ```ts
 * try {
 *   await verifyWebhook(secret, request.headers, body);
 * } catch (error) {
 *   if (isWebhookVerificationError(error)) return new Response(error.reason, { status: 401 });
 *   throw error;
 * }
 * ```
 */
export class WebhookVerificationError extends Error {
  /** Stable error code: `'ERR_WEBHOOK_VERIFICATION'`. */
  readonly code = VERIFICATION_CODE;
  /** Which check failed. */
  readonly reason: WebhookVerificationReason;

  /** @param reason - which check failed; @param message - details (never the secret). */
  constructor(reason: WebhookVerificationReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'WebhookVerificationError';
    this.reason = reason;
    brand(this, VERIFICATION_CODE);
  }
}

/**
 * True when `error` is a {@link WebhookVerificationError}, from this copy of eventsinks or any
 * other.
 *
 * @example
 * ```ts
 * if (isWebhookVerificationError(error)) response.writeHead(401).end();
 * ```
 */
export function isWebhookVerificationError(error: unknown): error is WebhookVerificationError {
  return hasErrorCode(error, VERIFICATION_CODE);
}

/**
 * True for the statuses worth retrying: 408, 425, 429 and 5xx.
 *
 * @example
 * ```ts
 * isRetryableStatus(503); // true
 * isRetryableStatus(400); // false
 * ```
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || (status >= 500 && status < 600);
}

// undici reports "fetch failed" and keeps the useful part ("other side closed", ECONNREFUSED) in
// its own cause; show both levels, never more (a deeper chain could carry request details).
function causeMessage(error: Error): string {
  const inner = error.cause;
  if (inner instanceof Error && inner.message && inner.message !== error.message) {
    return `${error.message} (${inner.message})`;
  }
  return error.message;
}
