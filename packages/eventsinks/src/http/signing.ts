import { expectNonNegative, expectOptionalFunction } from '../internal/validate.js';
import { WebhookVerificationError } from './errors.js';
import { base64Decode, base64Encode, timingSafeEqual, toBytes } from './internal.js';

const PREFIX = 'whsec_';
const encoder = new TextEncoder();

/**
 * Default `tolerance` of {@link verifyWebhook}: 5 minutes, as in the Standard Webhooks
 * reference libraries.
 *
 * @example
 * ```ts
 * await verifyWebhook(secret, headers, body, { tolerance: DEFAULT_WEBHOOK_TOLERANCE / 5 });
 * ```
 */
export const DEFAULT_WEBHOOK_TOLERANCE = 5 * 60 * 1000;

/**
 * A request body as a receiver holds it: the raw text or bytes (a `Uint8Array`, a Node
 * `Buffer`, an `ArrayBuffer`), exactly as received.
 *
 * @example
 * ```ts
 * const body: WebhookBody = await request.text();
 * ```
 */
export type WebhookBody = string | ArrayBufferView | ArrayBuffer;

/**
 * Request headers as a receiver holds them: a fetch `Headers`, or a plain object such as
 * `node:http`'s `request.headers` (names matched case-insensitively).
 *
 * @example
 * ```ts
 * const headers: WebhookHeaders = { 'webhook-id': 'msg_1', 'webhook-timestamp': '1700000000', 'webhook-signature': 'v1,…' };
 * ```
 */
export type WebhookHeaders =
  Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * Options for {@link verifyWebhook}.
 *
 * @example
 * ```ts
 * await verifyWebhook(secret, headers, body, { tolerance: 60_000 });
 * ```
 */
export interface VerifyWebhookOptions {
  /**
   * How far `webhook-timestamp` may be from now, either way, in ms. Default
   * {@link DEFAULT_WEBHOOK_TOLERANCE} (5 minutes). It bounds replays of a captured request.
   */
  tolerance?: number;
  /** The clock, in ms since the epoch; defaults to `Date.now`. */
  now?: () => number;
}

/**
 * What a verified request carried.
 *
 * @example
 * ```ts
 * const { id } = await verifyWebhook(secret, headers, body);
 * if (seen.has(id)) return; // a retry of a request already processed
 * ```
 */
export interface VerifiedWebhook {
  /** `webhook-id`: the same on every retry of one event, so use it to drop duplicates. */
  id: string;
  /** `webhook-timestamp`: when the request was signed, in seconds since the epoch. */
  timestamp: number;
}

/**
 * Signs a webhook the Standard Webhooks way: `v1,` and the base64 HMAC-SHA256, keyed with the
 * secret, of `` `${id}.${timestamp}.${body}` ``. Uses WebCrypto, so it runs in any runtime.
 *
 * @param secret - the `whsec_…` secret (base64 key, prefix optional).
 * @param id - the message id (`webhook-id`).
 * @param timestamp - seconds since the epoch (`webhook-timestamp`).
 * @param body - the exact request body.
 * @returns the value of `webhook-signature`.
 * @throws TypeError if `secret` is not a valid secret (the message never shows the secret).
 * @example
 * ```ts
 * const signature = await signWebhook(secret, 'msg_1', Math.floor(Date.now() / 1000), body);
 * ```
 */
export async function signWebhook(
  secret: string,
  id: string,
  timestamp: number,
  body: WebhookBody,
): Promise<string> {
  const key = await importSecret('secret', secret);
  return `v1,${base64Encode(await hmac(key, id, timestamp, bodyBytes(body)))}`;
}

/**
 * Signs a webhook with several secrets at once, for secret rotation: one `v1,` signature per
 * secret (as {@link signWebhook} makes it), space-separated in one `webhook-signature` value.
 * A receiver holding any one of the secrets verifies the request (Standard Webhooks accepts
 * any matching signature of the list), so a sender can sign with the old and the new secret
 * while receivers switch.
 *
 * @param secrets - the `whsec_…` secrets, at least one; the signatures follow their order.
 * @param id - the message id (`webhook-id`).
 * @param timestamp - seconds since the epoch (`webhook-timestamp`).
 * @param body - the exact request body.
 * @returns the value of `webhook-signature`, e.g. `"v1,<sigA> v1,<sigB>"`.
 * @throws TypeError if `secrets` is empty or not an array, or one of them is not a valid
 *   secret (the message names its index, never the secret).
 * @example
 * ```ts
 * // During a rotation: receivers with either secret verify the request.
 * const signature = await signWebhookAll([newSecret, oldSecret], 'msg_1', Math.floor(Date.now() / 1000), body);
 * ```
 */
export async function signWebhookAll(
  secrets: readonly string[],
  id: string,
  timestamp: number,
  body: WebhookBody,
): Promise<string> {
  if (!Array.isArray(secrets) || secrets.length === 0) {
    throw new TypeError(
      `Expected \`secrets\` to be a non-empty array of whsec_… secrets, got ${Array.isArray(secrets) ? 'an empty array' : typeof secrets}`,
    );
  }
  const bytes = bodyBytes(body);
  const keys = await Promise.all(secrets.map((secret, i) => importSecret(`secrets[${i}]`, secret)));
  const signatures = await Promise.all(keys.map((key) => hmac(key, id, timestamp, bytes)));
  return signatures.map((signature) => `v1,${base64Encode(signature)}`).join(' ');
}

/**
 * Verifies a Standard Webhooks request, for receivers: the `webhook-signature` header must hold
 * a `v1` signature of `` `${webhook-id}.${webhook-timestamp}.${body}` `` under `secret`, and the
 * timestamp must be within `tolerance` of now. Signatures are compared in constant time.
 *
 * Pass the body exactly as received (raw text or bytes, not re-serialised JSON).
 *
 * @param secret - the `whsec_…` secret shared with the sender.
 * @param headers - the request headers.
 * @param body - the raw request body.
 * @returns the verified `id` (use it to drop duplicates) and `timestamp`.
 * @throws WebhookVerificationError (rejects) naming the failed check in `reason`;
 *   TypeError if `secret` is malformed.
 * @example
 * ```ts
 * createServer(async (req, res) => {
 *   const chunks: Buffer[] = [];
 *   for await (const chunk of req) chunks.push(chunk as Buffer);
 *   try {
 *     await verifyWebhook(secret, req.headers, Buffer.concat(chunks));
 *   } catch {
 *     return res.writeHead(401).end();
 *   }
 *   res.writeHead(204).end();
 * });
 * ```
 */
export async function verifyWebhook(
  secret: string,
  headers: WebhookHeaders,
  body: WebhookBody,
  options: VerifyWebhookOptions = {},
): Promise<VerifiedWebhook> {
  const { tolerance = DEFAULT_WEBHOOK_TOLERANCE, now = () => Date.now() } = options;
  expectNonNegative('tolerance', tolerance);
  expectOptionalFunction('now', now);
  const key = await importSecret('secret', secret);
  const id = header(headers, 'webhook-id');
  const timestampText = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (id === undefined || timestampText === undefined || signatures === undefined) {
    throw new WebhookVerificationError(
      'missing-header',
      'webhook-id, webhook-timestamp and webhook-signature are all required',
    );
  }
  if (!/^\d{1,15}$/.test(timestampText.trim())) {
    throw new WebhookVerificationError(
      'invalid-timestamp',
      'webhook-timestamp is not a number of seconds',
    );
  }
  const timestamp = Number(timestampText.trim());
  const age = now() - timestamp * 1000;
  if (age > tolerance) {
    throw new WebhookVerificationError(
      'stale-timestamp',
      `webhook-timestamp is ${Math.round(age / 1000)} s old (tolerance ${tolerance} ms)`,
    );
  }
  if (-age > tolerance) {
    throw new WebhookVerificationError(
      'future-timestamp',
      `webhook-timestamp is ${Math.round(-age / 1000)} s in the future (tolerance ${tolerance} ms)`,
    );
  }
  // Sign with the timestamp exactly as sent: "0123" and "123" are different signed strings.
  // The signature's text is compared, as the official libraries do, not its decoded bytes:
  // decoding ignores the unused bits of the last character, so two texts decode alike.
  const expected = toBytes(
    base64Encode(await hmac(key, id, timestampText.trim(), bodyBytes(body))),
  );
  let match = false;
  // Space-separated, so a sender can rotate secrets by sending both signatures for a while.
  // Every candidate is compared (no early exit) so timing does not reveal which one matched.
  for (const candidate of signatures.split(' ')) {
    const comma = candidate.indexOf(',');
    if (comma < 0 || candidate.slice(0, comma) !== 'v1') continue;
    if (timingSafeEqual(toBytes(candidate.slice(comma + 1)), expected)) match = true;
  }
  if (!match) {
    throw new WebhookVerificationError('invalid-signature', 'no matching v1 signature');
  }
  return { id, timestamp };
}

/**
 * @internal Imports a `whsec_` secret as an HMAC-SHA256 key. The error names the option but
 * never shows the value: it is a secret.
 */
export async function importSecret(name: string, secret: unknown): Promise<CryptoKey> {
  if (typeof secret !== 'string') {
    throw new TypeError(`Expected \`${name}\` to be a string (whsec_…), got ${typeof secret}`);
  }
  const raw = base64Decode(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret);
  if (raw === undefined || raw.length === 0) {
    throw new TypeError(
      `Expected \`${name}\` to be a non-empty base64 key, optionally prefixed with whsec_; got a ${secret.length}-character string that is not`,
    );
  }
  return crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
}

/** @internal HMAC-SHA256 of `${id}.${timestamp}.` followed by the body bytes. */
export async function hmac(
  key: CryptoKey,
  id: string,
  timestamp: number | string,
  body: Uint8Array,
): Promise<Uint8Array> {
  const prefix = encoder.encode(`${id}.${timestamp}.`);
  const data = new Uint8Array(prefix.length + body.length);
  data.set(prefix);
  data.set(body, prefix.length);
  return new Uint8Array(await crypto.subtle.sign('HMAC', key, data));
}

function bodyBytes(body: WebhookBody): Uint8Array {
  if (typeof body === 'string') return toBytes(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') {
    return (headers as Headers).get(name) ?? undefined;
  }
  const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>;
  let value = record[name];
  if (value === undefined) {
    for (const key of Object.keys(record)) {
      if (key.toLowerCase() === name) {
        value = record[key];
        break;
      }
    }
  }
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.join(' ');
}
