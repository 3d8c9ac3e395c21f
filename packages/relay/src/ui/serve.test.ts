import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UI_CSP, assetVersion, createUiHandler, type UiHandler } from './serve.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw request: `path` goes out as written (fetch would normalize `..` away). */
function get(
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      { method: options.method ?? 'GET', headers: options.headers ?? {} },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function serve(handler: UiHandler): Promise<{ base: string; server: Server }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://relay.invalid');
    void handler(req, res, url).then((handled) => {
      if (!handled) res.writeHead(418).end('not the dashboard');
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }),
    ),
  );
}

describe('createUiHandler', () => {
  const root = mkdtempSync(join(tmpdir(), 'eventsinks-ui-'));
  const js = 'console.log("dashboard");\n';
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(root, 'app.js'), js);
  writeFileSync(join(root, 'app.css'), 'body{}');
  // Beside the assets, as tsc writes the compiled modules into dist/ui/: never served.
  writeFileSync(join(root, 'serve.js'), 'export {}');
  let base = '';
  let server: Server | undefined;
  before(async () => {
    ({ base, server } = await serve(createUiHandler({ root })));
  });
  after(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  it('redirects /ui to /ui/ and serves the page there with its headers', async () => {
    const redirect = await get(base, '/ui?x=1');
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.location, '/ui/?x=1');
    const page = await get(base, '/ui/');
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['content-security-policy'], UI_CSP);
    assert.match(UI_CSP, /default-src 'none'/);
    assert.doesNotMatch(UI_CSP, /unsafe|https?:|\*/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.equal(page.headers['cache-control'], 'private, no-cache');
    assert.equal(page.body, '<!doctype html><title>t</title>');
    assert.equal(page.headers.etag, `"${assetVersion('<!doctype html><title>t</title>')}"`);
  });

  it('answers 304 to a matching If-None-Match', async () => {
    const first = await get(base, '/ui/app.css');
    const again = await get(base, '/ui/app.css', {
      headers: { 'if-none-match': `"other", ${String(first.headers.etag)}` },
    });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
  });

  it('lets a bundle asked for with its current version be cached for good, else revalidated', async () => {
    const tagged = await get(base, `/ui/app.js?v=${assetVersion(js)}`);
    assert.equal(tagged.status, 200);
    assert.equal(tagged.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(tagged.headers['cache-control'], 'private, max-age=31536000, immutable');
    assert.equal(tagged.body, js);
    const stale = await get(base, '/ui/app.js?v=0000000000000000');
    assert.equal(stale.headers['cache-control'], 'private, no-cache');
    const bare = await get(base, '/ui/app.js');
    assert.equal(bare.headers['cache-control'], 'private, no-cache');
  });

  it('answers 404 for any other name, and never reads outside the build', async () => {
    for (const path of [
      '/ui/serve.js',
      '/ui/nope.html',
      '/ui/..%2fpackage.json',
      '/ui/%2e%2e%2f%2e%2e%2fpackage.json',
      '/ui/constructor',
      '/ui/toString',
      '/ui/app.js/',
    ]) {
      const answer = await get(base, path);
      assert.equal(answer.status, 404, path);
      assert.match(answer.body, /^no file \/ui\//, path);
      assert.equal(answer.headers['content-security-policy'], UI_CSP, path);
    }
  });

  it('leaves paths that are not the dashboard to the caller (dot segments resolved first)', async () => {
    for (const path of ['/uix', '/', '/ui/../package.json', '/ui/%2e%2e/package.json']) {
      assert.equal((await get(base, path)).status, 418, path);
    }
  });

  it('takes GET and HEAD only', async () => {
    const post = await get(base, '/ui/', { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const head = await get(base, '/ui/app.css', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '6');
    assert.equal(head.body, '');
  });

  it('says the dashboard is not built when a file of the build is missing', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'eventsinks-ui-empty-'));
    const { base: other, server: second } = await serve(createUiHandler({ root: empty }));
    try {
      const answer = await get(other, '/ui/');
      assert.equal(answer.status, 404);
      assert.match(answer.body, /not built: run npm run build/);
      // Built later: picked up without a restart.
      writeFileSync(join(empty, 'index.html'), 'now');
      assert.equal((await get(other, '/ui/')).body, 'now');
    } finally {
      await new Promise<void>((resolve) => second.close(() => resolve()));
    }
  });

  it('serves the real build from the package by default', async () => {
    const { base: real, server: third } = await serve(createUiHandler());
    try {
      const page = await get(real, '/ui/');
      assert.equal(page.status, 200, 'run npm run build first');
      const scripts = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
      assert.ok(
        scripts.some((s) => s.startsWith('app.js?v=')),
        page.body,
      );
      for (const asset of scripts) {
        const answer = await get(real, `/ui/${asset}`);
        assert.equal(answer.status, 200, asset);
        // The page's tags are the files' current versions.
        assert.equal(
          answer.headers['cache-control'],
          'private, max-age=31536000, immutable',
          asset,
        );
      }
    } finally {
      await new Promise<void>((resolve) => third.close(() => resolve()));
    }
  });
});
