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
import type { SourceConfig } from './schema.js';
import { createUiHandler } from './ui/serve.js';
import { adminOpenApiText } from './openapi.js';

type HttpSourceConfig = Extract<SourceConfig, { type: 'http' }>;

export interface ServerContext {
  source: HttpSourceConfig | undefined;
  metrics: RelayMetrics;
  logger: Logger;
  ready(): boolean;
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

// Copied into a plain Uint8Array: @types/node's timingSafeEqual does not take a Buffer here.
const sha256 = (text: string): Uint8Array =>
  new Uint8Array(createHash('sha256').update(text, 'utf8').digest());

/**
 * Whether an `Authorization` header carries `Bearer <token>`, in constant time: both sides are
 * hashed first, so the comparison takes as long whatever the given token's length (comparing
 * the raw bytes would return early on a length mismatch and tell the token's length).
 */
export function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  const given = sha256(match ? match[1]!.trim() : '');
  // Compared even without a match, so a missing header takes the same time as a wrong one.
  return timingSafeEqual(given, sha256(token)) && match !== null;
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

  async function ingest(
    req: IncomingMessage,
    res: ServerResponse,
    config: HttpSourceConfig,
    url: URL,
  ): Promise<void> {
    const reject = (
      status: number,
      reason: RejectReason,
      error: string,
      headers: Record<string, string> = {},
    ): void => {
      metrics.rejected.inc({ source: 'http', status: String(status), reason });
      reply(res, status, { error }, headers);
    };
    if (req.method !== 'POST') return reject(405, 'method', 'use POST', { allow: 'POST' });
    if (context.draining())
      return reject(503, 'draining', 'the relay is shutting down; nothing was accepted', {
        'retry-after': '5',
      });
    if (!context.ready())
      return reject(503, 'not_ready', 'not ready (starting); nothing was accepted', {
        'retry-after': '5',
      });
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
    const all = url.searchParams.get('ids') === 'all';
    const answer = (envelopes: readonly Envelope[]): string => {
      const shown = all || envelopes.length <= MAX_IDS ? envelopes : envelopes.slice(0, MAX_IDS);
      return `${JSON.stringify({ accepted: envelopes.length, ids: shown.map((e) => e.id) })}\n`;
    };
    let accepted: Accepted;
    try {
      accepted = await context.accept(parsed.events, 'http', {
        checked: true,
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
      const message =
        error instanceof StoreFailedError
          ? error.message
          : 'could not store the events; nothing was accepted';
      return reject(503, 'store_failed', message, { 'retry-after': '1' });
    }
    if (accepted.replayed !== undefined) {
      // Stripe's header: the client can tell a replayed answer from a new one.
      return reply(res, 202, JSON.parse(accepted.replayed) as unknown, {
        'idempotent-replayed': 'true',
      });
    }
    reply(res, 202, JSON.parse(answer(accepted.envelopes)) as unknown);
  }

  let openapi: string | undefined;
  // The contract's order: admin.token, else the http source's token, else loopback only.
  const adminToken = context.adminToken ?? source?.token;
  const adminAllowed = (req: IncomingMessage): boolean =>
    adminToken !== undefined
      ? tokenMatches(req.headers.authorization, adminToken)
      : isLoopback(req.socket.remoteAddress);

  async function admin(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!adminAllowed(req)) {
      req.resume();
      return reply(
        res,
        401,
        { error: 'admin requests need the bearer token' },
        { 'www-authenticate': 'Bearer' },
      );
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

  // The dashboard (ui/serve.ts) is a view of the admin API, so it is behind the same check.
  const ui = createUiHandler();
  async function dashboard(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!adminAllowed(req)) {
      req.resume();
      return reply(
        res,
        401,
        { error: 'the dashboard needs the admin bearer token' },
        { 'www-authenticate': 'Bearer' },
      );
    }
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
          return reply(res, 503, context.draining() ? 'draining\n' : 'not ready\n');
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
