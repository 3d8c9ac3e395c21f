// The relay's HTTP server: the http source (POST /events), /metrics, /healthz, /readyz, the
// admin API (admin.ts; used by `eventsinks messages` and `eventsinks dlq` while the relay runs)
// and its dashboard at /ui (ui/serve.ts).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { AdminHandler } from './admin.js';
import type { Envelope } from './envelope.js';
import type { Accepted, AcceptOptions } from './Relay.js';
import { isSinkClosedError } from 'eventsinks';
import { IngestRefusedError, StoreFailedError, parseBody } from './ingest.js';
import type { RejectReason, RelayMetrics } from './metrics.js';
import { adminOpenApiText } from './openapi.js';
import type { SourceConfig } from './schema.js';
import {
  TRACEPARENT_HEADER,
  parseTraceparent,
  startIngest,
  type IngestTrace,
} from './telemetry.js';
import { LOGIN_CSP, loginPage } from './ui/login.js';
import { UI_SECURITY_HEADERS, createUiHandler } from './ui/serve.js';
import {
  CSRF_HEADER,
  UiSessions,
  isHttps,
  passesCsrfCheck,
  sessionCookieOf,
  sessionSetCookie,
} from './ui/session.js';

type HttpSourceConfig = Extract<SourceConfig, { type: 'http' }>;

export interface ServerContext {
  source: HttpSourceConfig | undefined;
  metrics: RelayMetrics;
  logger: Logger;
  ready(): boolean;
  /** Why {@link ServerContext.ready} is false, said in ingest's 503 and /readyz ("starting"). */
  notReadyReason?(): string;
  /** True from the start of a drain: every response then carries `connection: close`. */
  draining(): boolean;
  accept(
    events: Record<string, unknown>[],
    source: string,
    options?: AcceptOptions,
  ): Promise<Accepted>;
  /** The admin API, called once a request to `/admin/…` is authorized. */
  admin: AdminHandler;
  /** `admin.token`: when set, the bearer token of `/admin/*` and `/ui` (over the source's). */
  adminToken?: string | undefined;
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Constant-time equality of two secrets of any lengths (their SHA-256 digests are compared). */
function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string): Uint8Array => {
    const buffer = createHash('sha256').update(text).digest();
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
  };
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * Whether an `Authorization` header carries `Bearer <token>`, in constant time whatever the
 * given token's length ({@link sameSecret}: comparing the raw bytes would return early on a
 * length mismatch and so tell the token's length).
 */
export function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  // Compared even without a match, so a missing header takes the same time as a wrong one.
  return sameSecret(match ? match[1]!.trim() : '', token) && match !== null;
}

/** The longest sign-in form body read (a token of a few hundred characters fits well). */
const MAX_LOGIN_BODY = 4096;

/**
 * False when a browser says the request comes from another site (`Sec-Fetch-Site` other than
 * `same-origin` or `none`): such a request may not change anything, even from loopback, where
 * no token is asked (a page on any site could otherwise post to the relay on the operator's
 * machine). Clients that are not browsers send no such header.
 */
function sameOriginOrNotBrowser(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  return site === undefined || site === 'same-origin' || site === 'none';
}

function isLoopback(address: string | undefined): boolean {
  return (
    address !== undefined &&
    (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'))
  );
}

/** How long a connection may keep sending after its 413 before it is cut off. */
const LINGER_MS = 5_000;

/**
 * Reads the body up to `limit` bytes. Past it, stops keeping what arrives and resolves with
 * `tooLarge` at once, so the 413 goes out while the client may still be sending.
 */
function readBody(
  req: IncomingMessage,
  limit: number,
): Promise<{ bytes: Uint8Array } | { tooLarge: true }> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    const onData = (chunk: Uint8Array): void => {
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', reject);
        resolve({ tooLarge: true });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => resolve({ bytes: concat(chunks, size) });
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', reject);
  });
}

/**
 * Closes the connection after the response without resetting a client that is still sending:
 * closing a socket with unread data makes the kernel send a RST, which can destroy the 413 on
 * its way. So the response is followed by a FIN, what the client still sends is read and
 * discarded, and the socket is destroyed when the client closes its side or after
 * {@link LINGER_MS} (like nginx's lingering close).
 */
function lingeringClose(req: IncomingMessage): void {
  const socket = req.socket as IncomingMessage['socket'] & { destroySoon?: () => void };
  // Node's server calls destroySoon() once a `connection: close` response is finished.
  socket.destroySoon = () => {
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.once('end', () => socket.destroy());
    socket.end();
  };
  // The request's remaining body is read (and dropped), not left in the socket's buffer.
  req.resume();
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The offset of the first byte that is not part of valid UTF-8 (for the 400's message; the
 * fatal TextDecoder only says that there is one). The ranges are those of RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF.
 */
function invalidUtf8At(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    // The sequence's length, and the range its second byte must fall in.
    let length: number;
    let low = 0x80;
    let high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) length = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      length = 3;
      if (b === 0xe0) low = 0xa0;
      if (b === 0xed) high = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      length = 4;
      if (b === 0xf0) low = 0x90;
      if (b === 0xf4) high = 0x8f;
    } else return i;
    for (let k = 1; k < length; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? low : 0x80) || c > (k === 1 ? high : 0xbf)) return i;
    }
    i += length;
  }
  return i;
}

/** The longest `Idempotency-Key` accepted. */
export const MAX_IDEMPOTENCY_KEY = 255;

/**
 * The request's `Idempotency-Key`: undefined without one, else the key, or a message saying why
 * it cannot be one (1–255 visible ASCII characters).
 */
function idempotencyKeyOf(req: IncomingMessage): { key: string } | { problem: string } | undefined {
  const value = req.headers['idempotency-key'];
  if (value === undefined) return undefined;
  const key = Array.isArray(value) ? value.join(',') : value;
  if (key === '' || key.length > MAX_IDEMPOTENCY_KEY || !/^[\x21-\x7e]+$/.test(key)) {
    return {
      problem: `Idempotency-Key ${JSON.stringify(key.slice(0, 40))} is not a key: expected 1 to ${MAX_IDEMPOTENCY_KEY} visible ASCII characters`,
    };
  }
  return { key };
}

/** Where the admin API's OpenAPI document is served (behind the admin auth). */
export const OPENAPI_PATH = '/admin/openapi.json';

/** Ids listed in a 202 unless the request asks for all of them with `?ids=all`. */
export const MAX_IDS = 100;

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * The request handler; errors are answered with 500 and logged, never thrown.
 *
 * Ingest (`POST <source.path>`) answers `202 { accepted, ids }` once every event is stored in
 * every matching queue: `accepted` is the number of events, `ids` their relay ids in request
 * order, the first {@link MAX_IDS} only unless the request has `?ids=all`. Anything else stores
 * nothing: 400 for a body that is not UTF-8 or not JSON/NDJSON or an event that cannot be stored
 * (naming its line or element), 401 without the token, 413 above `maxBodySize` (answered as
 * soon as the limit is passed, then the connection closes) or `maxEvents`, 503 with Retry-After
 * while starting or draining, when a destination is full (`whenFull: reject`) or a queue
 * could not store them. While draining every response carries `connection: close`.
 */
export function createHandler(context: ServerContext) {
  const { source, metrics, logger } = context;
  const log = logger.child({ component: 'http' });

  // While draining, every response ends its connection, so kept-alive clients learn of the
  // shutdown from an answer instead of a reset when the listener finally closes.
  const reply: typeof send = (res, status, body, headers = {}) => {
    if (!context.draining()) return send(res, status, body, headers);
    // A request answered before its body was read (ingest refused at once): the client may
    // still be sending, so the connection is closed without a reset (see lingeringClose).
    if (!res.req.complete) lingeringClose(res.req);
    send(res, status, body, { connection: 'close', ...headers });
  };

  const authorized = (req: IncomingMessage): boolean =>
    source?.token === undefined ? true : tokenMatches(req.headers.authorization, source.token);

  // The request's span (telemetry.ts), a child of its W3C traceparent; an invalid one is
  // ignored (logged at debug), not refused.
  async function ingest(
    req: IncomingMessage,
    res: ServerResponse,
    config: HttpSourceConfig,
    url: URL,
  ): Promise<void> {
    const header = req.headers[TRACEPARENT_HEADER];
    const parent = parseTraceparent(header);
    if (header !== undefined && parent === undefined)
      log.debug({ traceparent: header.slice(0, 80) }, 'ignoring an invalid traceparent header');
    const trace = startIngest('http', parent);
    try {
      await ingestTraced(req, res, config, url, trace);
    } catch (error) {
      trace.end('error', 0, 500, error);
      throw error;
    }
  }

  async function ingestTraced(
    req: IncomingMessage,
    res: ServerResponse,
    config: HttpSourceConfig,
    url: URL,
    trace: IngestTrace,
  ): Promise<void> {
    let events = 0;
    const reject = (
      status: number,
      reason: RejectReason,
      error: string,
      headers: Record<string, string> = {},
    ): void => {
      metrics.rejected.inc({ source: 'http', status: String(status), reason });
      trace.end(reason, events, status);
      reply(res, status, { error }, headers);
    };
    if (req.method !== 'POST') return reject(405, 'method', 'use POST', { allow: 'POST' });
    if (context.draining())
      return reject(503, 'draining', 'the relay is shutting down; nothing was accepted', {
        'retry-after': '5',
      });
    if (!context.ready())
      return reject(
        503,
        'not_ready',
        `not ready (${context.notReadyReason?.() ?? 'starting'}); nothing was accepted`,
        {
          'retry-after': '5',
        },
      );
    if (!authorized(req)) {
      req.resume();
      return reject(401, 'unauthorized', 'missing or wrong bearer token', {
        'www-authenticate': 'Bearer',
      });
    }
    const idempotency = idempotencyKeyOf(req);
    if (idempotency !== undefined && 'problem' in idempotency) {
      req.resume();
      return reject(400, 'invalid', idempotency.problem);
    }
    const body = await readBody(req, config.maxBodySize);
    if ('tooLarge' in body) {
      lingeringClose(req);
      return reject(
        413,
        'too_large',
        `body larger than maxBodySize (${config.maxBodySize} bytes); nothing was accepted`,
        { connection: 'close' },
      );
    }
    let text: string;
    try {
      text = utf8.decode(body.bytes);
    } catch {
      return reject(
        400,
        'invalid',
        `body is not valid UTF-8 (at byte ${invalidUtf8At(body.bytes)})`,
      );
    }
    const parsed = await parseBody(text, req.headers['content-type'], {
      maxEvents: config.maxEvents,
    });
    if (!parsed.ok)
      return reject(
        parsed.status,
        parsed.status === 413 ? 'too_many_events' : 'invalid',
        parsed.error,
      );
    events = parsed.events.length;
    const all = url.searchParams.get('ids') === 'all';
    const answer = (envelopes: readonly Envelope[]): string => {
      const shown = all || envelopes.length <= MAX_IDS ? envelopes : envelopes.slice(0, MAX_IDS);
      return `${JSON.stringify({ accepted: envelopes.length, ids: shown.map((e) => e.id) })}\n`;
    };
    let accepted: Accepted;
    try {
      accepted = await context.accept(parsed.events, 'http', {
        checked: true,
        trace,
        ...(idempotency !== undefined ? { idempotencyKey: idempotency.key, answer } : {}),
      });
    } catch (error) {
      if (error instanceof IngestRefusedError) {
        return reject(
          error.status,
          error.reason,
          error.message,
          error.retryAfter === undefined ? {} : { 'retry-after': String(error.retryAfter) },
        );
      }
      if (isSinkClosedError(error))
        return reject(503, 'draining', 'the relay is shutting down; nothing was accepted', {
          'retry-after': '5',
        });
      log.error({ err: error }, 'could not store events');
      trace.end('store_failed', events, 503, error);
      const stored =
        error instanceof StoreFailedError
          ? error.message
          : 'could not store the events; nothing was accepted';
      // The failure that made the store unreachable (PostgreSQL down) says so to the client.
      const message = context.ready()
        ? stored
        : `${context.notReadyReason?.() ?? 'not ready'}: ${stored}`;
      return reject(503, 'store_failed', message, { 'retry-after': '1' });
    }
    trace.end(accepted.replayed !== undefined ? 'replayed' : 'accepted', events, 202);
    if (accepted.replayed !== undefined) {
      // Stripe's header: the client can tell a replayed answer from a new one.
      return reply(res, 202, JSON.parse(accepted.replayed) as unknown, {
        'idempotent-replayed': 'true',
      });
    }
    reply(res, 202, JSON.parse(answer(accepted.envelopes)) as unknown);
  }

  /**
   * The token admin requests and the dashboard need, if any: `admin.token`, else the http
   * source's token; with neither, loopback only.
   */
  const adminToken = (): string | undefined => context.adminToken ?? source?.token;
  let openapi: string | undefined;

  // The dashboard's sign-in sessions (ui/session.ts: why they are signed sessions, not the token).
  const sessions = new UiSessions();

  /** How `req` is allowed to the admin API: its bearer token, the dashboard's cookie, loopback. */
  const adminAuth = (req: IncomingMessage): 'bearer' | 'cookie' | 'loopback' | undefined => {
    const token = adminToken();
    if (token === undefined) return isLoopback(req.socket.remoteAddress) ? 'loopback' : undefined;
    if (tokenMatches(req.headers.authorization, token)) return 'bearer';
    const cookie = sessionCookieOf(req);
    return cookie !== undefined && sessions.verify(cookie, token) ? 'cookie' : undefined;
  };

  /** Why `req` may not change anything through the admin API (CSRF), or undefined. */
  const forgeryCheck = (req: IncomingMessage, auth: string): string | undefined => {
    if (req.method === 'GET' || req.method === 'HEAD') return undefined;
    if (!sameOriginOrNotBrowser(req))
      return `a request from another site (sec-fetch-site: ${String(req.headers['sec-fetch-site'])}) may not change anything`;
    if (auth === 'cookie' && !passesCsrfCheck(req))
      return `a request signed in by the dashboard's cookie that changes something needs the header ${CSRF_HEADER}: 1`;
    return undefined;
  };

  async function admin(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const auth = adminAuth(req);
    if (auth === undefined) {
      req.resume();
      return reply(
        res,
        401,
        { error: 'admin requests need the bearer token' },
        { 'www-authenticate': 'Bearer' },
      );
    }
    const forged = forgeryCheck(req, auth);
    if (forged !== undefined) {
      req.resume();
      return reply(res, 403, { error: forged });
    }
    // Served here, not in admin.ts: the document describes the whole admin API, auth included.
    if (url.pathname === OPENAPI_PATH) {
      req.resume();
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return reply(res, 405, { error: `use GET for ${OPENAPI_PATH}` }, { allow: 'GET' });
      openapi ??= adminOpenApiText();
      return reply(res, 200, openapi, { 'content-type': 'application/json' });
    }
    return context.admin(req, res, url, reply);
  }

  /** The sign-in page (its own CSP: one inline style, no script). */
  const sendLogin = (req: IncomingMessage, res: ServerResponse, status: number, error?: string) => {
    const html = loginPage(error === undefined ? {} : { error });
    reply(res, status, req.method === 'HEAD' ? '' : html, {
      ...UI_SECURITY_HEADERS,
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': LOGIN_CSP,
      'cache-control': 'no-store',
      ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
    });
  };

  /** A redirect to the dashboard's page (relative: it works behind a path prefix too). */
  const toDashboard = (res: ServerResponse, cookie?: string): void =>
    reply(res, 303, 'see ./\n', {
      location: './',
      'cache-control': 'no-store',
      ...(cookie === undefined ? {} : { 'set-cookie': cookie }),
    });

  async function signIn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const token = adminToken();
    if (!sameOriginOrNotBrowser(req)) {
      req.resume();
      return reply(res, 403, { error: 'sign-in from another site is refused' });
    }
    // Without a token there is nothing to sign in to (loopback, or refused below).
    if (token === undefined) {
      req.resume();
      return toDashboard(res);
    }
    const body = await readBody(req, MAX_LOGIN_BODY);
    if ('tooLarge' in body) {
      lingeringClose(req);
      return reply(res, 413, { error: `sign-in body larger than ${MAX_LOGIN_BODY} bytes` });
    }
    const given = new URLSearchParams(Buffer.from(body.bytes).toString('utf8')).get('token');
    if (given === null || !sameSecret(given.trim(), token)) {
      // The address only: never what was typed.
      log.warn({ remoteAddress: req.socket.remoteAddress }, 'dashboard sign-in with a wrong token');
      return sendLogin(req, res, 401, 'That is not the admin token. Try again.');
    }
    log.info({ remoteAddress: req.socket.remoteAddress }, 'dashboard sign-in');
    const cookie = sessionSetCookie(sessions.issue(token), {
      secure: isHttps(req),
      maxAgeSeconds: Math.floor(sessions.lifetimeMs / 1000),
    });
    return toDashboard(res, cookie);
  }

  function signOut(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const token = adminToken();
    const cookie = sessionCookieOf(req);
    // Only the same site may sign the operator out; SameSite=Strict keeps the cookie from
    // others' requests anyway.
    if (!sameOriginOrNotBrowser(req))
      return reply(res, 403, { error: 'sign-out from another site is refused' });
    if (token !== undefined && cookie !== undefined) sessions.revoke(cookie, token);
    toDashboard(res, sessionSetCookie(undefined, { secure: isHttps(req), maxAgeSeconds: 0 }));
  }

  // The dashboard (ui/serve.ts) is a view of the admin API, so it is behind the same check,
  // with a sign-in page for browsers (they cannot send the bearer header when they navigate).
  const ui = createUiHandler();
  async function dashboard(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    // `/ui` only redirects to `/ui/`, so that relative URLs (the form's `login`) resolve.
    if (url.pathname === '/ui') {
      req.resume();
      if (await ui(req, res, url)) return;
    }
    if (url.pathname === '/ui/login' && req.method === 'POST') return signIn(req, res);
    if (url.pathname === '/ui/logout' && req.method === 'POST') return signOut(req, res);
    const auth = adminAuth(req);
    const loopbackOnly = (): void =>
      reply(res, 401, { error: 'the dashboard answers loopback only while no admin token is set' });
    if (url.pathname === '/ui/login' || url.pathname === '/ui/logout') {
      req.resume();
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return reply(res, 405, { error: `use POST for ${url.pathname}` }, { allow: 'POST' });
      // Signed in already (or no token): the page itself.
      if (auth !== undefined) return toDashboard(res);
      if (adminToken() === undefined) return loopbackOnly();
      return sendLogin(req, res, 200);
    }
    if (auth === undefined) {
      req.resume();
      if (adminToken() === undefined) return loopbackOnly();
      return sendLogin(req, res, 401);
    }
    // How the page is allowed in: it shows "Sign out" for a cookie session.
    if (url.pathname === '/ui/session' && (req.method === 'GET' || req.method === 'HEAD'))
      return reply(res, 200, { auth }, { 'cache-control': 'no-store' });
    if (!(await ui(req, res, url))) reply(res, 404, { error: 'not found' });
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://relay.invalid');
    const handle = async (): Promise<void> => {
      if (source && url.pathname === source.path) return ingest(req, res, source, url);
      if (url.pathname.startsWith('/admin/')) return admin(req, res, url);
      if (url.pathname === '/ui' || url.pathname.startsWith('/ui/'))
        return dashboard(req, res, url);
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return reply(res, 405, { error: 'method not allowed' });
      switch (url.pathname) {
        case '/healthz':
          return reply(res, 200, 'ok\n');
        case '/readyz':
          if (context.ready()) return reply(res, 200, 'ready\n');
          if (context.draining()) return reply(res, 503, 'draining\n');
          return reply(res, 503, `not ready (${context.notReadyReason?.() ?? 'starting'})\n`);
        case '/metrics': {
          const text = await metrics.registry.metrics();
          return reply(res, 200, text, { 'content-type': metrics.registry.contentType });
        }
        default:
          return reply(res, 404, { error: 'not found' });
      }
    };
    handle().catch((error: unknown) => {
      log.error({ err: error }, 'request failed');
      if (!res.headersSent) reply(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  };
}
