// The admin API's authorization (server.ts): the order admin.token → http source token →
// loopback only, and the constant-time token check. The requests are plain objects with a
// chosen remote address, since a test server can only be reached over loopback.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { AdminHandler } from './admin.js';
import { RelayMetrics } from './metrics.js';
import { relayConfigSchema } from './schema.js';
import { createHandler, tokenMatches } from './server.js';

describe('tokenMatches', () => {
  it('takes exactly "Bearer <token>"', () => {
    assert.equal(tokenMatches('Bearer s3cret', 's3cret'), true);
    assert.equal(tokenMatches('bearer   s3cret ', 's3cret'), true);
    assert.equal(tokenMatches('Bearer s3cre', 's3cret'), false);
    assert.equal(tokenMatches('Bearer s3cretX', 's3cret'), false);
    assert.equal(tokenMatches('Bearer ' + 's3cret'.repeat(1000), 's3cret'), false);
    assert.equal(tokenMatches('Basic s3cret', 's3cret'), false);
    assert.equal(tokenMatches('s3cret', 's3cret'), false);
    assert.equal(tokenMatches('', 's3cret'), false);
    assert.equal(tokenMatches(undefined, 's3cret'), false);
  });
});

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** Runs one request through the handler, from `remoteAddress`. */
async function request(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  path: string,
  remoteAddress: string,
  authorization?: string,
): Promise<Answer> {
  const req = {
    url: path,
    method: 'GET',
    headers: authorization === undefined ? {} : { authorization },
    socket: { remoteAddress },
    complete: true,
    resume() {},
  } as unknown as IncomingMessage;
  return new Promise((resolve) => {
    let status = 0;
    let headers: Record<string, string> = {};
    const res = {
      req,
      headersSent: false,
      writeHead(code: number, head: Record<string, string>) {
        status = code;
        headers = head;
      },
      end(text: string) {
        // The dashboard's sign-in page is HTML; the rest JSON.
        const json = String(headers['content-type']).startsWith('application/json');
        resolve({ status, headers, body: json ? (JSON.parse(text) as unknown) : text });
      },
    } as unknown as ServerResponse;
    handler(req, res);
  });
}

function handlerFor(yaml: Record<string, unknown>) {
  const config = relayConfigSchema.parse(yaml);
  const admin: AdminHandler = async (_req, res, _url, reply) => reply(res, 200, { ok: true });
  const http = config.sources.find((s) => s.type === 'http');
  return createHandler({
    source: http?.type === 'http' ? http : undefined,
    metrics: new RelayMetrics(() => []),
    logger: pino({ level: 'silent' }),
    ready: () => true,
    draining: () => false,
    accept: () => Promise.reject(new Error('no ingest in this test')),
    admin,
    adminToken: config.admin.token,
  });
}

describe('admin authorization order', () => {
  it('without any token: loopback only', async () => {
    const handler = handlerFor({});
    for (const address of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
      assert.equal((await request(handler, '/admin/destinations', address)).status, 200, address);
    }
    for (const address of ['10.0.0.7', '192.168.1.2', '::ffff:10.0.0.7', 'fe80::1']) {
      const answer = await request(handler, '/admin/destinations', address);
      assert.equal(answer.status, 401, address);
      assert.equal((await request(handler, '/ui/', address)).status, 401, address);
    }
  });

  it('with the http source token only: that token, from any address', async () => {
    const handler = handlerFor({ sources: [{ type: 'http', token: 'ingest' }] });
    assert.equal((await request(handler, '/admin/messages', '127.0.0.1')).status, 401);
    assert.equal(
      (await request(handler, '/admin/messages', '10.0.0.7', 'Bearer ingest')).status,
      200,
    );
  });

  it('with admin.token: only that token, from any address (loopback included)', async () => {
    const handler = handlerFor({
      admin: { token: 'adm' },
      sources: [{ type: 'http', token: 'ingest' }],
    });
    const refused = await request(handler, '/admin/messages', '127.0.0.1');
    assert.equal(refused.status, 401);
    assert.equal(refused.headers['www-authenticate'], 'Bearer');
    assert.equal(
      (await request(handler, '/admin/messages', '127.0.0.1', 'Bearer ingest')).status,
      401,
    );
    assert.equal(
      (await request(handler, '/admin/messages', '127.0.0.1', 'Bearer adm')).status,
      200,
    );
    assert.equal((await request(handler, '/admin/messages', '10.0.0.7', 'Bearer adm')).status, 200);
    assert.equal((await request(handler, '/ui/', '10.0.0.7', 'Bearer admx')).status, 401);
  });

  it('admin.token without an http source still guards the admin API', async () => {
    const handler = handlerFor({ admin: { token: 'adm' }, sources: [{ type: 'stdin' }] });
    assert.equal((await request(handler, '/admin/destinations', '127.0.0.1')).status, 401);
    assert.equal((await request(handler, '/admin/destinations', '::1', 'Bearer adm')).status, 200);
  });

  it('an empty admin.token is a configuration error naming the field', () => {
    const result = relayConfigSchema.safeParse({ admin: { token: '' } });
    assert.equal(result.success, false);
    assert.deepEqual(result.error?.issues[0]?.path, ['admin', 'token']);
    const extra = relayConfigSchema.safeParse({ admin: { tokn: 'x' } });
    assert.equal(extra.success, false);
  });
});
