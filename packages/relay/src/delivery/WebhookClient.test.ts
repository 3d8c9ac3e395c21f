import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isSinkClosedError } from 'eventsinks';
import { isHttpStatusError, isHttpTransportError } from 'eventsinks/http';
import { MAX_RESPONSE_BODY, WebhookClient, parseRetryAfter } from './WebhookClient.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

describe('WebhookClient', () => {
  const seen: Seen[] = [];
  const hanging = new Set<ServerResponse>();
  let origin = '';
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      if (req.url === '/huge') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('y'.repeat(MAX_RESPONSE_BODY * 4));
      } else if (req.url === '/slow-body') {
        // Headers at once, the body never: the deadline cuts the read, delivery stands.
        res.writeHead(200).write('partial');
        hanging.add(res);
      } else if (req.url === '/hang') {
        hanging.add(res);
      } else if (req.url === '/date') {
        res.writeHead(503, { 'retry-after': new Date(Date.now() + 60_000).toUTCString() }).end();
      } else {
        res.writeHead(200).end('ok');
      }
    });
  });
  const clients: WebhookClient[] = [];
  type Options = ConstructorParameters<typeof WebhookClient>[1];
  /** A client of `path` on the receiver; `userinfo` goes into the URL (`user:pw@`). */
  const client = (path: string, extra: Partial<Options> = {}, userinfo = ''): WebhookClient => {
    const made = new WebhookClient(`${origin.replace('//', `//${userinfo}`)}${path}`, {
      method: 'POST',
      headers: {},
      timeout: 5000,
      followRedirects: false,
      connections: 4,
      ...extra,
    });
    clients.push(made);
    return made;
  };
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const c of clients) await c.close(AbortSignal.abort());
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('URL credentials become basic auth, never on the wire or in the shown URL', async () => {
    const c = client('/ok?token=abc', { method: 'PUT' }, 'al%20ice:p%40ss@');
    assert.equal(c.url, `${origin}/ok?…`);
    assert.deepEqual(await c.send('{}', 'evt_1'), { status: 200, body: 'ok' });
    const request = seen.at(-1);
    assert.equal(request?.method, 'PUT');
    assert.equal(request?.url, '/ok?token=abc');
    assert.equal(
      request?.headers.authorization,
      `Basic ${Buffer.from('al ice:p@ss').toString('base64')}`,
    );
    assert.equal(request?.headers['webhook-id'], 'evt_1');
  });

  it('an authorization header wins over URL credentials', async () => {
    const c = client('/ok', { headers: { Authorization: 'Bearer t' } }, 'u:p@');
    await c.send('{}', 'evt_2');
    assert.equal(seen.at(-1)?.headers.authorization, 'Bearer t');
  });

  it('reads at most 64 KiB of a body, and the connection serves the next request', async () => {
    const c = client('/huge');
    const { body } = await c.send('{}', 'evt_3');
    assert.equal(body.length, MAX_RESPONSE_BODY);
    assert.equal((await c.send('{}', 'evt_4')).status, 200);
  });

  it('a body cut by the deadline keeps what arrived; a hang is a timeout', async () => {
    // Long enough for the headers on a loaded machine; the body never ends, so the deadline
    // still cuts it.
    const c = client('/slow-body', { timeout: 2_000 });
    assert.deepEqual(await c.send('{}', 'evt_5'), { status: 200, body: 'partial' });
    const started = Date.now();
    const error: unknown = await client('/hang', { timeout: 300 })
      .send('{}', 'evt_6')
      .catch((e: unknown) => e);
    assert.ok(isHttpTransportError(error));
    assert.match(error.message, /no response within 300 ms/);
    assert.ok(Date.now() - started < 5000);
  });

  it('an HTTP-date Retry-After, in ms from now', async () => {
    const error: unknown = await client('/date')
      .send('{}', 'evt_7')
      .catch((e: unknown) => e);
    assert.ok(isHttpStatusError(error));
    assert.equal(error.status, 503);
    assert.ok(error.retryAfter !== undefined && error.retryAfter > 50_000, `${error.retryAfter}`);
    assert.equal(parseRetryAfter('-1', 0), undefined);
    assert.equal(parseRetryAfter(' 3 ', 0), 3000);
    assert.equal(parseRetryAfter(null, 0), undefined);
  });

  it('a secret that is not base64 fails at construction, without showing it', () => {
    assert.throws(
      () => client('/ok', { secret: 'whsec_abcde' }),
      (error: unknown) => error instanceof TypeError && !error.message.includes('abcde'),
    );
  });

  it('close with a signal cuts a request off at once; later sends are refused', async () => {
    const c = client('/hang', { timeout: 30_000 });
    const sending = c.send('{}', 'evt_8').catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    await c.close(AbortSignal.abort());
    assert.ok(isSinkClosedError(await sending));
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    assert.ok(isSinkClosedError(await c.send('{}', 'evt_9').catch((e: unknown) => e)));
  });
});
