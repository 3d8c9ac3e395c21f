// Serves the operations dashboard (issue 17): the static files that packages/relay/ui/build.mjs
// writes into dist/ui/. Only the names in ASSETS are ever read, so no request path reaches the
// file system (no traversal, and the compiled modules that tsc also writes into dist/ui/, such
// as this one, are never served). The page talks to the admin API only, so its CSP allows
// 'self' and nothing else.
import { createHash, type BinaryLike } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What {@link createUiHandler} takes. */
export interface UiHandlerOptions {
  /**
   * The directory holding the built files; default: this package's `dist/ui/` (the same
   * directory from `src/ui/` under tsx and from `dist/ui/` once compiled).
   */
  root?: string;
}

/**
 * The dashboard's handler: true when it answered the request (every `/ui` and `/ui/…` path,
 * known file or not), false when the path is not the dashboard's and the caller goes on.
 */
export type UiHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>;

/** The files of the build and their content types; nothing else under `/ui/` exists. */
export const UI_ASSETS: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'icon.svg': 'image/svg+xml',
};

/** The Content-Security-Policy of every answer under `/ui`: the relay itself and nothing else. */
export const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
  "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; " +
  "frame-ancestors 'none'";

/**
 * The version tag of a file's content, as the build writes it into index.html (`app.js?v=…`):
 * the first 16 hex digits of its SHA-256. A request carrying the current tag may be cached for
 * good, since a new build changes the tag.
 */
export function assetVersion(content: BinaryLike): string {
  return createHash('sha256').update(content).digest('hex').slice(0, 16);
}

const DEFAULT_ROOT = fileURLToPath(new URL('../../dist/ui/', import.meta.url));

interface Loaded {
  body: Buffer;
  etag: string;
  version: string;
}

/** The security headers of every answer under `/ui` (the sign-in page replaces the CSP). */
export const UI_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': UI_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

function answer(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...UI_SECURITY_HEADERS,
    ...headers,
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/**
 * Creates the handler that serves the dashboard at `/ui/` (`/ui` redirects there, so that the
 * page's relative URLs resolve). GET and HEAD only (405 otherwise); 404 naming the path for any
 * other file, and for the page itself when the UI was not built. Files are read once and kept
 * in memory. Caching: index.html is revalidated on every load (ETag, 304); app.js and app.css
 * requested with their current `?v=` tag are immutable for a year, without it revalidated.
 * Authentication is the caller's: server.ts calls it behind the admin API's check.
 *
 * @example
 * const ui = createUiHandler();
 * if (await ui(req, res, url)) return;
 */
export function createUiHandler(options: UiHandlerOptions = {}): UiHandler {
  const root = options.root ?? DEFAULT_ROOT;
  const cache = new Map<string, Promise<Loaded | undefined>>();

  const load = (name: string): Promise<Loaded | undefined> => {
    let loaded = cache.get(name);
    if (!loaded) {
      loaded = readFile(join(root, name)).then(
        (body) => {
          // A view, not a copy: this @types/node's Buffer does not type-check as a BinaryLike.
          const version = assetVersion(new Uint8Array(body.buffer, body.byteOffset, body.length));
          return { body, version, etag: `"${version}"` };
        },
        (error: NodeJS.ErrnoException) => {
          // Not built (or removed): asked again next time, so a later build is picked up.
          cache.delete(name);
          if (error.code === 'ENOENT') return undefined;
          throw error;
        },
      );
      cache.set(name, loaded);
    }
    return loaded;
  };

  return async (req, res, url) => {
    const path = url.pathname;
    if (path !== '/ui' && !path.startsWith('/ui/')) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      req.resume();
      answer(req, res, 405, `use GET for ${path}\n`, { allow: 'GET, HEAD' });
      return true;
    }
    if (path === '/ui') {
      answer(req, res, 308, 'the dashboard is at /ui/\n', { location: `/ui/${url.search}` });
      return true;
    }
    const name = path === '/ui/' ? 'index.html' : path.slice('/ui/'.length);
    const type = Object.hasOwn(UI_ASSETS, name) ? UI_ASSETS[name] : undefined;
    const file = type === undefined ? undefined : await load(name);
    if (type === undefined || file === undefined) {
      const hint =
        type === undefined ? '' : ' (the dashboard is not built: run npm run build in the relay)';
      answer(req, res, 404, `no file ${path}${hint}\n`);
      return true;
    }
    const immutable = name !== 'index.html' && url.searchParams.get('v') === file.version;
    const headers = {
      'content-type': type,
      etag: file.etag,
      // Behind the admin check: a shared cache must not keep it.
      'cache-control': immutable ? 'private, max-age=31536000, immutable' : 'private, no-cache',
      ...UI_SECURITY_HEADERS,
    };
    const match = req.headers['if-none-match'];
    if (match !== undefined && match.split(/\s*,\s*/).includes(file.etag)) {
      res.writeHead(304, headers).end();
      return true;
    }
    res.writeHead(200, { ...headers, 'content-length': file.body.length });
    res.end(req.method === 'HEAD' ? undefined : file.body);
    return true;
  };
}
