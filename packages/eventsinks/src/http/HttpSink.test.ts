import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { isSinkClosedError } from '../errors/SinkClosedError.js';
import {
  HttpStatusError,
  isHttpEncodeError,
  isHttpStatusError,
  isHttpTransportError,
} from './errors.js';
import { HttpSink } from './HttpSink.js';
import { parseRetryAfter } from './internal.js';
import { reply, sleep, startServer, type TestServer } from './test-utils.js';

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected a rejection');
}

describe('HttpSink', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer((_, res) => reply(res, 200, 'ok'));
  });
  after(() => server.close());
  const reset = (handler: TestServer['handler']): void => {
    server.handler = handler;
    server.received.length = 0;
  };

  it('happy path: POSTs JSON with the given headers and resolves on 2xx', async () => {
    reset((_, res) => reply(res, 204));
    const sink = new HttpSink<{ n: number }>(`${server.origin}/hook`, {
      headers: { 'X-Source': 'tests' },
    });
    await sink.write({ n: 1 });
    await sink.write({ n: 2 });
    assert.equal(server.received.length, 2);
    const [first] = server.received;
    assert.equal(first?.method, 'POST');
    assert.equal(first?.path, '/hook');
    assert.equal(first?.headers['content-type'], 'application/json');
    assert.equal(first?.headers['x-source'], 'tests');
    assert.deepEqual(JSON.parse(first.body.toString()), { n: 1 });
    sink.close();
  });

  it('onResponse hears the status, reason and body of a 2xx and of a failure', async () => {
    const heard: [number, number, string, string][] = [];
    const sink = new HttpSink<number>(`${server.origin}/hook`, {
      onResponse: (event, status, text, body) => heard.push([event, status, text, body]),
    });
    reset((_, res) => reply(res, 200, 'accepted: 1'));
    await sink.write(1);
    reset((_, res) => reply(res, 503, 'busy'));
    const error = await rejection(sink.write(2));
    assert.ok(isHttpStatusError(error));
    reset((_, res) => reply(res, 204));
    await sink.write(3);
    assert.deepEqual(heard, [
      [1, 200, 'OK', 'accepted: 1'],
      [2, 503, 'Service Unavailable', 'busy'],
      [3, 204, 'No Content', ''],
    ]);
    sink.close();
  });

  it('keeps the connection alive across sequential requests', async () => {
    reset((_, res) => reply(res, 200, 'fine'));
    const before = server.connections;
    const sink = new HttpSink<number>(`${server.origin}/hook`);
    for (let i = 0; i < 20; i++) await sink.write(i);
    assert.equal(server.received.length, 20);
    // One connection reused; a second is tolerated (a pooled one may have been closed by then).
    assert.ok(server.connections - before <= 2, `${server.connections - before} connections`);
    sink.close();
  });

  it('a custom method and encoder', async () => {
    reset((_, res) => reply(res, 200));
    const sink = new HttpSink<string>(`${server.origin}/csv`, {
      method: 'put',
      encode: (e) => ({ body: new TextEncoder().encode(`${e}\n`), contentType: 'text/csv' }),
    });
    await sink.write('a,b');
    assert.equal(server.received[0]?.method, 'PUT');
    assert.equal(server.received[0]?.headers['content-type'], 'text/csv');
    assert.equal(server.received[0]?.body.toString(), 'a,b\n');
  });

  it('non-2xx rejects with HttpStatusError: status, retryable, body', async () => {
    const sink = new HttpSink<number>(`${server.origin}/hook`);
    const cases: [number, boolean][] = [
      [400, false],
      [401, false],
      [404, false],
      [408, true],
      [409, false],
      [425, true],
      [429, true],
      [500, true],
      [503, true],
      [504, true],
    ];
    for (const [status, retryable] of cases) {
      reset((_, res) => reply(res, status, `nope ${status}`));
      const error = await rejection(sink.write(1));
      assert.ok(isHttpStatusError(error), String(error));
      assert.ok(error instanceof HttpStatusError);
      assert.equal(error.status, status);
      assert.equal(error.retryable, retryable, `status ${status}`);
      assert.equal(error.body, `nope ${status}`);
      assert.equal(error.code, 'ERR_HTTP_STATUS');
      assert.match(error.message, new RegExp(`^POST http://127\\.0\\.0\\.1:\\d+/hook: ${status} `));
    }
    reset((_, res) => reply(res, 503));
    const error = (await rejection(sink.write(1))) as HttpStatusError;
    assert.equal(error.statusText, 'Service Unavailable');
    assert.equal(error.retryAfter, undefined);
  });

  it('429 with Retry-After: seconds or an HTTP date, in ms', async () => {
    const sink = new HttpSink<number>(`${server.origin}/hook`);
    reset((_, res) => reply(res, 429, '', { 'retry-after': '7' }));
    const seconds = (await rejection(sink.write(1))) as HttpStatusError;
    assert.equal(seconds.retryAfter, 7000);
    const date = new Date(Date.now() + 120_000).toUTCString();
    reset((_, res) => reply(res, 503, '', { 'retry-after': date }));
    const dated = (await rejection(sink.write(1))) as HttpStatusError;
    assert.ok(dated.retryAfter !== undefined && dated.retryAfter > 100_000, `${dated.retryAfter}`);
    assert.ok(dated.retryAfter <= 120_000);
    // Parsing details.
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('-1', now), undefined);
    assert.equal(parseRetryAfter('1.5', now), undefined);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
  });

  it('a handler that never answers: HttpTransportError with timeout', async () => {
    reset(() => {});
    const sink = new HttpSink<number>(`${server.origin}/hook`, { timeout: 200 });
    const error = await rejection(sink.write(1));
    assert.ok(isHttpTransportError(error), String(error));
    assert.equal(error.timeout, true);
    assert.equal(error.retryable, true);
    assert.equal(error.code, 'ERR_HTTP_TRANSPORT');
    assert.match(error.message, /no response within 200 ms/);
  });

  it('a connection reset mid-request: HttpTransportError, not a timeout', async () => {
    reset((_, _res, req) => {
      req.socket.destroy();
    });
    const sink = new HttpSink<number>(`${server.origin}/hook`, { timeout: 5000 });
    const error = await rejection(sink.write(1));
    assert.ok(isHttpTransportError(error), String(error));
    assert.equal(error.timeout, false);
    assert.ok(error.cause !== undefined);
  });

  it('a reset while the request body is still being read', async () => {
    const raw = await startServer(
      (_, _res, req) => {
        req.once('data', () => req.socket.destroy());
      },
      { raw: true },
    );
    try {
      const sink = new HttpSink<string>(`${raw.origin}/hook`, { timeout: 5000 });
      const error = await rejection(sink.write('x'.repeat(1 << 20)));
      assert.ok(isHttpTransportError(error), String(error));
      assert.equal(error.timeout, false);
    } finally {
      await raw.close();
    }
  });

  it('nothing listening: HttpTransportError', async () => {
    const gone = await startServer(() => {});
    const { origin } = gone;
    await gone.close();
    const error = await rejection(new HttpSink<number>(origin).write(1));
    assert.ok(isHttpTransportError(error), String(error));
    assert.equal(error.timeout, false);
  });

  it('a slow response body: a 2xx still counts as delivered, a 5xx keeps what arrived', async () => {
    const trickle = (status: number) => (_: unknown, res: import('node:http').ServerResponse) => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.write('first part;');
      const timer = setInterval(() => res.write('more;'), 50);
      res.on('close', () => clearInterval(timer));
    };
    const sink = new HttpSink<number>(`${server.origin}/hook`, { timeout: 1000 });
    reset(trickle(200));
    await sink.write(1);
    reset(trickle(500));
    const error = await rejection(sink.write(2));
    assert.ok(isHttpStatusError(error), String(error));
    assert.equal(error.status, 500);
    assert.ok(error.body.startsWith('first part;'), error.body);
  });

  it('reads at most 64 KiB of a response body', async () => {
    reset((_, res) => reply(res, 500, 'x'.repeat(1 << 20)));
    const sink = new HttpSink<number>(`${server.origin}/hook`);
    const error = (await rejection(sink.write(1))) as HttpStatusError;
    assert.equal(error.body.length, 64 * 1024);
    assert.ok(error.message.length < 1000);
  });

  it('a 302 is not followed by default; redirect: follow opts in', async () => {
    reset((received, res) => {
      if (received.path === '/elsewhere') reply(res, 200);
      else reply(res, 302, '', { location: '/elsewhere' });
    });
    const sink = new HttpSink<number>(`${server.origin}/hook`);
    const error = await rejection(sink.write(1));
    assert.ok(isHttpStatusError(error), String(error));
    assert.equal(error.status, 302);
    assert.equal(error.retryable, false);
    assert.deepEqual(
      server.received.map((r) => r.path),
      ['/hook'],
    );
    server.received.length = 0;
    await new HttpSink<number>(`${server.origin}/hook`, { redirect: 'follow' }).write(1);
    assert.deepEqual(
      server.received.map((r) => r.path),
      ['/hook', '/elsewhere'],
    );
  });

  it('never puts header values or URL credentials in errors; credentials become basic auth', async () => {
    reset((_, res) => reply(res, 500));
    const url = `http://alice:s3cr3t-pw@${server.origin.slice(7)}/hook?token=t0ken-value`;
    const withCreds = new HttpSink<number>(url);
    assert.equal(withCreds.url, `${server.origin}/hook?…`);
    const statusError = await rejection(withCreds.write(1));
    assert.ok(isHttpStatusError(statusError));
    assert.equal(
      server.received[0]?.headers.authorization,
      `Basic ${Buffer.from('alice:s3cr3t-pw').toString('base64')}`,
    );
    assert.equal(server.received[0]?.path, '/hook?token=t0ken-value');

    const header = new HttpSink<number>(url, { headers: { Authorization: 'Bearer hdr-s3cret' } });
    const statusError2 = await rejection(header.write(1));
    assert.equal(server.received[1]?.headers.authorization, 'Bearer hdr-s3cret');

    reset((_, _res, req) => {
      req.socket.destroy();
    });
    const transportError = await rejection(header.write(1));
    reset(() => {});
    const timeoutError = await rejection(
      new HttpSink<number>(url, {
        headers: { authorization: 'Bearer hdr-s3cret' },
        timeout: 100,
      }).write(1),
    );
    for (const error of [statusError, statusError2, transportError, timeoutError]) {
      const shown = `${String(error)}\n${inspect(error, { depth: 10, showHidden: true })}\n${JSON.stringify(error)}`;
      for (const secret of ['s3cr3t-pw', 'hdr-s3cret', 't0ken-value', 'alice']) {
        assert.ok(!shown.includes(secret), `${secret} leaked into: ${shown}`);
      }
    }
    // A malformed URL is not echoed either.
    assert.throws(
      () => new HttpSink('http://bob:pa55@[bad/hook'),
      (e: unknown) => e instanceof TypeError && !String(e).includes('pa55'),
    );
  });

  it('an encoder that throws: HttpEncodeError, not retryable, nothing sent', async () => {
    reset((_, res) => reply(res, 200));
    const sink = new HttpSink<object>(`${server.origin}/hook`);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const error = await rejection(sink.write(circular));
    assert.ok(isHttpEncodeError(error), String(error));
    assert.equal(error.retryable, false);
    assert.ok(error.cause instanceof TypeError);
    assert.equal(server.received.length, 0);
  });

  it('close aborts requests in flight; later writes reject with SinkClosedError', async () => {
    reset(() => {});
    const sink = new HttpSink<number>(`${server.origin}/hook`, { timeout: 60_000 });
    const pending = sink.write(1);
    while (server.received.length === 0) await sleep(5);
    sink.close();
    sink.close();
    assert.ok(isSinkClosedError(await rejection(pending)));
    assert.ok(isSinkClosedError(await rejection(sink.write(2))));
    assert.equal(sink.closed, true);
  });

  it('rejects bad options naming them', () => {
    const url = `${server.origin}/hook`;
    assert.throws(() => new HttpSink('not a url'), /`url`/);
    assert.throws(() => new HttpSink('ftp://example.com/'), /`url`.*"ftp:"/);
    assert.throws(() => new HttpSink(url, { timeout: 0 }), /`timeout`.*`0`/);
    assert.throws(() => new HttpSink(url, { timeout: -5 }), RangeError);
    assert.throws(() => new HttpSink(url, { method: 'PO ST' }), /`method`/);
    assert.throws(() => new HttpSink(url, { method: 'get' }), /`method`.*"get"/);
    assert.throws(() => new HttpSink(url, { redirect: 'error' as never }), /`redirect`/);
    assert.throws(() => new HttpSink(url, { encode: 'json' as never }), /`encode`/);
    assert.throws(() => new HttpSink(url, { fetch: null as never }), /`fetch`/);
    assert.throws(() => new HttpSink(url, { headers: { a: 1 as never } }), /header `a`/);
    assert.throws(
      () => new HttpSink(url, { signing: { secret: 'whsec_not*base64!' } }),
      (e: unknown) =>
        e instanceof TypeError &&
        /`signing.secret`/.test(e.message) &&
        !e.message.includes('not*base64'),
    );
    assert.throws(() => new HttpSink(url, { signing: { secret: 'whsec_' } }), /`signing.secret`/);
  });
});
