// The relay's HTTP server: the http source (POST /events), /metrics, /healthz, /readyz, and
// admin endpoints for dead letters (used by `eventsinks dlq` while the relay runs).
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Destination } from './destinations.js';
import type { Envelope } from './envelope.js';
import { parseBody } from './ingest.js';
import type { RelayMetrics } from './metrics.js';
import type { SourceConfig } from './schema.js';

type HttpSourceConfig = Extract<SourceConfig, { type: 'http' }>;

export interface ServerContext {
  source: HttpSourceConfig | undefined;
  metrics: RelayMetrics;
  logger: Logger;
  ready(): boolean;
  ingest(events: Record<string, unknown>[], source: string): Promise<Envelope[]>;
  destination(name: string): Destination | undefined;
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

function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!match) return false;
  const encoder = new TextEncoder();
  const given = encoder.encode(match[1]!.trim());
  const expected = encoder.encode(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function isLoopback(address: string | undefined): boolean {
  return (
    address !== undefined &&
    (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'))
  );
}

/** Reads the body up to `limit` bytes; past it, drains (bounded) and reports `tooLarge`. */
function readBody(
  req: IncomingMessage,
  limit: number,
): Promise<{ text: string } | { tooLarge: true }> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Uint8Array) => {
      size += chunk.length;
      if (tooLarge) {
        // Reading the rest lets the client see the 413 instead of a reset; beyond a bound,
        // a client that keeps sending is cut off.
        if (size > limit * 16 + 16 * 1024 * 1024) req.destroy();
        return;
      }
      if (size > limit) {
        tooLarge = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () =>
      resolve(
        tooLarge ? { tooLarge: true } : { text: new TextDecoder().decode(concat(chunks, size)) },
      ),
    );
    req.on('error', reject);
  });
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function parseSince(value: string | null): number | undefined {
  if (value === null || value === '') return 0;
  const date = Date.parse(value);
  if (!Number.isNaN(date)) return date;
  const number = Number(value);
  if (Number.isFinite(number)) return number;
  return undefined;
}

/** The request handler; errors are answered with 500 and logged, never thrown. */
export function createHandler(context: ServerContext) {
  const { source, metrics, logger } = context;
  const log = logger.child({ component: 'http' });

  const authorized = (req: IncomingMessage): boolean =>
    source?.token === undefined ? true : tokenMatches(req.headers.authorization, source.token);

  async function ingest(
    req: IncomingMessage,
    res: ServerResponse,
    config: HttpSourceConfig,
  ): Promise<void> {
    const reject = (status: number, error: string, headers: Record<string, string> = {}): void => {
      metrics.rejected.inc({ source: 'http', status: String(status) });
      send(res, status, { error }, headers);
    };
    if (req.method !== 'POST') return reject(405, 'use POST', { allow: 'POST' });
    if (!context.ready())
      return reject(503, 'not ready (starting or draining)', { 'retry-after': '5' });
    if (!authorized(req)) {
      req.resume();
      return reject(401, 'missing or wrong bearer token', { 'www-authenticate': 'Bearer' });
    }
    const body = await readBody(req, config.maxBodySize);
    if ('tooLarge' in body) {
      return reject(413, `body larger than ${config.maxBodySize} bytes`, { connection: 'close' });
    }
    const parsed = parseBody(body.text, req.headers['content-type']);
    if (!parsed.ok) return reject(400, parsed.error);
    let envelopes: Envelope[];
    try {
      envelopes = await context.ingest(parsed.events, 'http');
    } catch (error) {
      log.error({ err: error }, 'could not store events');
      return reject(503, 'could not store the events; nothing was accepted', {
        'retry-after': '1',
      });
    }
    send(res, 202, { accepted: envelopes.length, ids: envelopes.map((e) => e.id) });
  }

  async function admin(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const allowed =
      source?.token !== undefined ? authorized(req) : isLoopback(req.socket.remoteAddress);
    if (!allowed) return send(res, 401, { error: 'admin requests need the bearer token' });
    const match = /^\/admin\/dlq\/([^/]+)(\/replay)?$/.exec(url.pathname);
    const destination = match ? context.destination(decodeURIComponent(match[1]!)) : undefined;
    if (!match || !destination) return send(res, 404, { error: 'no such destination' });
    if (match[2] === undefined && req.method === 'GET') {
      const limit = Number(url.searchParams.get('limit') ?? 1000);
      const entries = destination.listDead({
        limit: Number.isInteger(limit) && limit > 0 ? limit : 1000,
      });
      return send(
        res,
        200,
        entries.map(({ id, event }) => ({ id, ...event })),
      );
    }
    if (match[2] !== undefined && req.method === 'POST') {
      const since = parseSince(url.searchParams.get('since'));
      if (since === undefined)
        return send(res, 400, { error: 'since: expected a date or ms since the epoch' });
      const replayed = await destination.replay(since);
      log.info({ destination: destination.name, replayed }, 'replayed dead letters');
      return send(res, 200, { replayed });
    }
    return send(res, 405, { error: 'method not allowed' });
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://relay.invalid');
    const handle = async (): Promise<void> => {
      if (source && url.pathname === source.path) return ingest(req, res, source);
      if (url.pathname.startsWith('/admin/')) return admin(req, res, url);
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return send(res, 405, { error: 'method not allowed' });
      switch (url.pathname) {
        case '/healthz':
          return send(res, 200, 'ok\n');
        case '/readyz':
          return context.ready() ? send(res, 200, 'ready\n') : send(res, 503, 'not ready\n');
        case '/metrics': {
          const text = await metrics.registry.metrics();
          return send(res, 200, text, { 'content-type': metrics.registry.contentType });
        }
        default:
          return send(res, 404, { error: 'not found' });
      }
    };
    handle().catch((error: unknown) => {
      log.error({ err: error }, 'request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  };
}
