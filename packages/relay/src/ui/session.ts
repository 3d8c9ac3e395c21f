// The dashboard's sign-in (issue 17): a browser cannot send `Authorization: Bearer` when it
// navigates, so /ui/login takes the admin token once from a form and answers with a session
// cookie that the admin API accepts like the header.
//
// Decision: the cookie holds a signed, expiring session, not the token. With the token in the
// cookie, the long-lived secret would sit in the browser's cookie jar and travel with every
// request, and a sign-out could not end it. A session map in memory would be lost at every
// restart and not be known to the other relays sharing one PostgreSQL store (issue 15) behind a
// load balancer. So the value is `v1.<expiry>.<nonce>.<HMAC-SHA256>`, keyed by a key derived
// from the token: any relay with the same token accepts it until it expires, a new token ends
// every session at once, and it says nothing about the token. Signing out clears the cookie
// and revokes its nonce in this process (other relays keep it until it expires).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { parse, serialize } from 'cookie';

/** The name of the dashboard's session cookie. */
export const SESSION_COOKIE = 'eventsinks_admin';

/**
 * The header the dashboard's page sends with every admin request. A request authenticated by
 * the cookie that changes something (any method but GET and HEAD) must carry it: a form or an
 * image on another site cannot set a header, and a script there cannot without a CORS
 * preflight the relay never allows (cross-site request forgery, on top of `SameSite=Strict`).
 */
export const CSRF_HEADER = 'x-eventsinks-ui';

/** How long a session lasts from sign-in: 12 hours (a working day, then sign in again). */
export const SESSION_LIFETIME_MS = 12 * 60 * 60 * 1000;

/** What {@link UiSessions} takes. */
export interface UiSessionsOptions {
  /** The clock, in ms since the epoch (tests inject one); default `Date.now`. */
  now?: () => number;
  /** Default {@link SESSION_LIFETIME_MS}. */
  lifetimeMs?: number;
}

const VERSION = 'v1';

/** A view of `buffer` (this @types/node's Buffer does not type-check as a BinaryLike). */
const bytes = (buffer: Buffer): Uint8Array =>
  new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);

/**
 * Issues and checks the dashboard's session cookie values (see the module comment for why they
 * are signed sessions and not the token itself).
 *
 * @example
 * const sessions = new UiSessions();
 * const value = sessions.issue(token);
 * sessions.verify(value, token); // true until it expires or is revoked
 */
export class UiSessions {
  readonly #now: () => number;
  readonly #lifetimeMs: number;
  /** Revoked nonces and when their session would have expired (then they are forgotten). */
  readonly #revoked = new Map<string, number>();
  /** The signing key of the last token seen: derived once, not on every request. */
  #key: { token: string; key: Uint8Array } | undefined;

  constructor(options: UiSessionsOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#lifetimeMs = options.lifetimeMs ?? SESSION_LIFETIME_MS;
    if (!Number.isFinite(this.#lifetimeMs) || this.#lifetimeMs <= 0) {
      throw new RangeError(`lifetimeMs must be a positive number of ms, got ${this.#lifetimeMs}`);
    }
  }

  /** The session's lifetime in ms (the cookie's `Max-Age`). */
  get lifetimeMs(): number {
    return this.#lifetimeMs;
  }

  #keyOf(token: string): Uint8Array {
    if (this.#key?.token !== token) {
      // A key of its own, so that a session's MAC is never a MAC made with the token elsewhere.
      const key = bytes(
        createHmac('sha256', token).update('eventsinks relay ui session v1').digest(),
      );
      this.#key = { token, key };
    }
    return this.#key.key;
  }

  /** The MAC of `payload`, as base64url text. */
  #mac(token: string, payload: string): string {
    return createHmac('sha256', this.#keyOf(token)).update(payload).digest('base64url');
  }

  /** A new session's cookie value for `token` (the admin token just checked). */
  issue(token: string): string {
    const expires = (this.#now() + this.#lifetimeMs).toString(36);
    const nonce = randomBytes(16).toString('base64url');
    const payload = `${VERSION}.${expires}.${nonce}`;
    return `${payload}.${this.#mac(token, payload)}`;
  }

  /** The session's parts when `value` was issued for `token`, is unexpired and not revoked. */
  #check(value: string, token: string): { nonce: string; expires: number } | undefined {
    const parts = value.split('.');
    if (parts.length !== 4 || parts[0] !== VERSION) return undefined;
    const [, expiresText, nonce, macText] = parts as [string, string, string, string];
    const expires = Number.parseInt(expiresText, 36);
    if (!Number.isSafeInteger(expires) || expires <= this.#now()) return undefined;
    // The MAC's text is compared, not its decoded bytes: base64 decoding ignores the unused low
    // bits of the last character, so "...A" and "...B" decode alike, and a changed cookie
    // would pass.
    const given = bytes(Buffer.from(macText, 'latin1'));
    const expected = bytes(
      Buffer.from(this.#mac(token, `${VERSION}.${expiresText}.${nonce}`), 'latin1'),
    );
    // Both are 43 characters when the value is well formed; the length itself is no secret.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    if (this.#revoked.has(nonce)) return undefined;
    return { nonce, expires };
  }

  /** True when `value` is a session issued for `token`, not expired and not revoked. */
  verify(value: string, token: string): boolean {
    return this.#check(value, token) !== undefined;
  }

  /** Ends the session `value` (sign-out); a value that is not a valid session is ignored. */
  revoke(value: string, token: string): void {
    const now = this.#now();
    for (const [nonce, expires] of this.#revoked) if (expires <= now) this.#revoked.delete(nonce);
    const session = this.#check(value, token);
    if (session) this.#revoked.set(session.nonce, session.expires);
  }
}

/** The session cookie's value in `req`, if it has one. */
export function sessionCookieOf(req: IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  return parse(header)[SESSION_COOKIE];
}

/**
 * True when `req` came over TLS, to the relay or (by `X-Forwarded-Proto`) to a proxy in front
 * of it: the cookie is then `Secure`. Trusting the header is safe here, since it can only make
 * the cookie stricter.
 */
export function isHttps(req: IncomingMessage): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted === true) return true;
  const proto = req.headers['x-forwarded-proto'];
  const first = (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim().toLowerCase();
  return first === 'https';
}

/**
 * The `Set-Cookie` value that stores `value` (or, with `undefined`, clears the cookie):
 * `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's request carries it),
 * `Path=/` (the admin API is outside /ui), `Secure` on https only (a plain-http relay on
 * loopback could not set it otherwise).
 */
export function sessionSetCookie(
  value: string | undefined,
  options: { secure: boolean; maxAgeSeconds: number },
): string {
  return serialize(SESSION_COOKIE, value ?? '', {
    httpOnly: true,
    sameSite: 'strict',
    path: '/',
    secure: options.secure,
    maxAge: value === undefined ? 0 : options.maxAgeSeconds,
  });
}

/**
 * True when a request authenticated by the session cookie may go on: GET and HEAD always, any
 * other method only with the {@link CSRF_HEADER} set to `1`.
 */
export function passesCsrfCheck(req: IncomingMessage): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  return req.headers[CSRF_HEADER] === '1';
}
