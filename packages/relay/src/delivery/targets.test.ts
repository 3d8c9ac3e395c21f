import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { createConnection, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import type { Envelope } from '../envelope.js';
import { relayConfigSchema } from '../schema.js';
import { BATCH_ID_FIELD, createTarget, utf8Prefix } from './targets.js';
import type { Target } from './Target.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

function destination(raw: Record<string, unknown>) {
  const [config] = relayConfigSchema.parse({ destinations: [{ name: 'd', ...raw }] }).destinations;
  assert.ok(config);
  return config;
}

function envelope(n: number): Envelope {
  return { id: `evt_${n}`, receivedAt: 1_700_000_000_000, source: 'http', event: { n } };
}

interface Request {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** Answers by path: /ok/<text>, /status/<code>, /retry-after/<seconds>, /hang, /big. */
class Receiver {
  readonly requests: Request[] = [];
  readonly #server: Server = createServer((req, res) => void this.#handle(req, res));
  readonly #hanging = new Set<ServerResponse>();
  origin = '';

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += (chunk as Buffer).toString();
    const path = req.url ?? '/';
    this.requests.push({ path, headers: req.headers, body });
    const [, kind = '', arg = ''] = path.split('/');
    if (kind === 'ok') res.writeHead(200, { 'content-type': 'text/plain' }).end(arg);
    else if (kind === 'status') res.writeHead(Number(arg)).end(`refused with ${arg}`);
    else if (kind === 'retry-after') res.writeHead(429, { 'retry-after': arg }).end('slow down');
    else if (kind === 'big') res.writeHead(500).end(`${'x'.repeat(1023)}é and more`);
    else if (kind === 'redirect') res.writeHead(302, { location: '/ok/moved' }).end();
    else this.#hanging.add(res);
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** A port that nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('webhook target', () => {
  const receiver = new Receiver();
  const targets: Target[] = [];
  const webhook = (path: string, extra: Record<string, unknown> = {}): Target => {
    const target = createTarget(
      destination({ type: 'webhook', url: `${receiver.origin}${path}`, ...extra }),
      { stdout: process.stdout },
    );
    targets.push(target);
    return target;
  };
  before(() => receiver.start());
  after(async () => {
    for (const target of targets) await target.close({ signal: AbortSignal.abort() });
    await receiver.close();
  });

  it('a 2xx: ok, the status and the body; the event JSON with webhook-id, unsigned', async () => {
    const outcome = await webhook('/ok/thanks').send([envelope(1)], undefined);
    assert.deepEqual(outcome, { ok: true, retryable: false, status: 200, response: 'thanks' });
    const request = receiver.requests.at(-1);
    assert.deepEqual(JSON.parse(request?.body ?? ''), { n: 1 });
    assert.equal(request?.headers['webhook-id'], 'evt_1');
    assert.equal(request?.headers['webhook-signature'], undefined);
    assert.equal(request?.headers['content-type'], 'application/json');
  });

  it('signed the Standard Webhooks way; a batch carries its id and each event its own', async () => {
    const target = webhook('/ok/batch', { signing: { secret: SECRET }, headers: { 'x-a': 'b' } });
    const outcome = await target.send([envelope(1), envelope(2)], 'batch_7');
    assert.equal(outcome.ok, true);
    const request = receiver.requests.at(-1);
    assert.ok(request);
    assert.equal(request.headers['webhook-id'], 'batch_7');
    assert.equal(request.headers['x-a'], 'b');
    const headers = {
      'webhook-id': String(request.headers['webhook-id']),
      'webhook-timestamp': String(request.headers['webhook-timestamp']),
      'webhook-signature': String(request.headers['webhook-signature']),
    };
    // Throws when the signature does not match the body.
    const verified = new Webhook(SECRET).verify(request.body, headers);
    assert.deepEqual(verified, [
      { n: 1, [BATCH_ID_FIELD]: 'evt_1' },
      { n: 2, [BATCH_ID_FIELD]: 'evt_2' },
    ]);
    assert.throws(() => new Webhook(SECRET).verify(`${request.body} `, headers));
  });

  it('a 500 is retryable, with the body; a 400 is not; 409 is', async () => {
    const server = await webhook('/status/500').send([envelope(1)], undefined);
    assert.deepEqual(server, {
      ok: false,
      retryable: true,
      status: 500,
      response: 'refused with 500',
      error: '500 Internal Server Error',
    });
    const client = await webhook('/status/400').send([envelope(1)], undefined);
    assert.equal(client.retryable, false);
    assert.equal(client.status, 400);
    assert.equal(client.response, 'refused with 400');
    assert.equal(client.error, '400 Bad Request');
    assert.equal((await webhook('/status/409').send([envelope(1)], undefined)).retryable, true);
    assert.equal((await webhook('/status/408').send([envelope(1)], undefined)).retryable, true);
    assert.equal((await webhook('/status/404').send([envelope(1)], undefined)).retryable, false);
  });

  it('a 3xx is not followed and not retryable (followRedirects opts in)', async () => {
    const manual = await webhook('/redirect').send([envelope(1)], undefined);
    assert.equal(manual.ok, false);
    assert.equal(manual.status, 302);
    assert.equal(manual.retryable, false);
    const follow = await webhook('/redirect', { followRedirects: true }).send(
      [envelope(1)],
      undefined,
    );
    assert.deepEqual(follow, { ok: true, retryable: false, status: 200, response: 'moved' });
  });

  it('a 429 with Retry-After: retryable, retryAfter in ms', async () => {
    const outcome = await webhook('/retry-after/7').send([envelope(1)], undefined);
    assert.equal(outcome.status, 429);
    assert.equal(outcome.retryable, true);
    assert.equal(outcome.retryAfter, 7000);
    assert.equal(outcome.response, 'slow down');
  });

  it('keeps the first 1 KiB of a response, cut on a character boundary', async () => {
    const outcome = await webhook('/big').send([envelope(1)], undefined);
    // 1023 ASCII bytes, then a 2-byte é that does not fit in 1024.
    assert.equal(outcome.response, 'x'.repeat(1023));
    assert.equal(utf8Prefix('héllo', 2), 'h');
    assert.equal(utf8Prefix('héllo', 3), 'hé');
    assert.equal(utf8Prefix('😀😀', 5), '😀');
    assert.equal(utf8Prefix('short'), 'short');
  });

  it('a hanging receiver: a retryable timeout, no status', async () => {
    const started = Date.now();
    const outcome = await webhook('/hang', { timeout: '200ms' }).send([envelope(1)], undefined);
    assert.equal(outcome.ok, false);
    assert.equal(outcome.retryable, true);
    assert.equal(outcome.status, undefined);
    assert.match(outcome.error ?? '', /no response within 200 ms/);
    assert.ok(Date.now() - started < 5000);
  });

  it('a closed port: a retryable transport error on one line, no header values', async () => {
    const port = await closedPort();
    const target = createTarget(
      destination({
        type: 'webhook',
        url: `http://127.0.0.1:${port}/hook`,
        headers: { authorization: 'Bearer s3cr3t-token' },
      }),
      { stdout: process.stdout },
    );
    targets.push(target);
    const outcome = await target.send([envelope(1)], undefined);
    assert.equal(outcome.ok, false);
    assert.equal(outcome.retryable, true);
    assert.match(outcome.error ?? '', /ECONNREFUSED|request failed/);
    assert.doesNotMatch(outcome.error ?? '', /\n|s3cr3t|at .*\.js:\d+/);
  });

  it('refuses several events without a batchId, not retryable, nothing sent', async () => {
    const before = receiver.requests.length;
    const outcome = await webhook('/ok/x').send([envelope(1), envelope(2)], undefined);
    assert.equal(outcome.ok, false);
    assert.equal(outcome.retryable, false);
    assert.match(outcome.error ?? '', /2 events without a batchId/);
    assert.equal(receiver.requests.length, before);
  });

  it('close with an aborted signal returns at once and settles a hanging attempt', async () => {
    const target = webhook('/hang', { timeout: '30s' });
    const sending = target.send([envelope(1)], undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const controller = new AbortController();
    const closing = target.close({ signal: controller.signal });
    const started = Date.now();
    controller.abort();
    await closing;
    const outcome = await sending;
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    assert.equal(outcome.ok, false);
    assert.equal(outcome.retryable, true);
    assert.deepEqual(await target.send([envelope(2)], undefined), {
      ok: false,
      retryable: true,
      error: 'the target is closed',
    });
  });

  it('close without a signal waits for the attempt in flight', async () => {
    const target = webhook('/ok/late');
    const sending = target.send([envelope(1)], undefined);
    await target.close();
    assert.equal((await sending).ok, true);
  });
});

describe('stdout and file targets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'targets-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('stdout: NDJSON lines of the events, a batch as one line each', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (chunk: Buffer) => (text += chunk.toString()));
    const target = createTarget(destination({ type: 'stdout' }), { stdout: out });
    assert.deepEqual(await target.send([envelope(1)], undefined), { ok: true, retryable: false });
    assert.equal((await target.send([envelope(2), envelope(3)], 'b1')).ok, true);
    await target.close();
    assert.equal(text, '{"n":1}\n{"n":2}\n{"n":3}\n');
  });

  it('stdout: a slow reader holds the attempt (backpressure)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const lines: string[] = [];
    const slow = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _encoding, callback) {
        void gate.then(() => {
          lines.push(chunk.toString());
          callback();
        });
      },
    });
    const target = createTarget(destination({ type: 'stdout' }), { stdout: slow });
    let done = false;
    const sending = target.send([envelope(1)], undefined).then((outcome) => {
      done = true;
      return outcome;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(done, false, 'the attempt finished before the stream took the line');
    release();
    assert.equal((await sending).ok, true);
    assert.deepEqual(lines, ['{"n":1}\n']);
    await target.close();
  });

  it('stdout: an I/O error is a retryable outcome, not a crash', async () => {
    const broken = new Writable({
      write(_chunk, _encoding, callback) {
        callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const reported: unknown[] = [];
    const target = createTarget(destination({ type: 'stdout' }), {
      stdout: broken,
      onError: (error) => reported.push(error),
    });
    const outcome = await target.send([envelope(1)], undefined);
    assert.equal(outcome.ok, false);
    assert.equal(outcome.retryable, true);
    assert.match(outcome.error ?? '', /EPIPE/);
    await target.close();
  });

  it('file: appends NDJSON lines, across targets', async () => {
    const path = join(dir, 'out.ndjson');
    const first = createTarget(destination({ type: 'file', path }), { stdout: process.stdout });
    assert.equal((await first.send([envelope(1)], undefined)).ok, true);
    assert.equal((await first.send([envelope(2), envelope(3)], 'b')).ok, true);
    await first.close();
    const second = createTarget(destination({ type: 'file', path }), { stdout: process.stdout });
    assert.equal((await second.send([envelope(4)], undefined)).ok, true);
    await second.close({ signal: AbortSignal.timeout(5000) });
    assert.equal(readFileSync(path, 'utf8'), '{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n');
  });

  it('file: an unwritable path is retryable, and a later attempt opens it again', async () => {
    const sub = join(dir, 'later');
    const path = join(sub, 'out.ndjson');
    const target = createTarget(destination({ type: 'file', path }), { stdout: process.stdout });
    const failed = await target.send([envelope(1)], undefined);
    assert.equal(failed.ok, false);
    assert.equal(failed.retryable, true);
    assert.match(failed.error ?? '', /ENOENT/);
    mkdirSync(sub);
    assert.equal((await target.send([envelope(1)], undefined)).ok, true);
    await target.close();
    assert.equal(readFileSync(path, 'utf8'), '{"n":1}\n');
  });
});

/** Whether something accepts connections on 127.0.0.1:port. */
function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

describe('broker target (redis)', async () => {
  const redisUp = await reachable(6379);
  if (!redisUp && process.env.CI === undefined) {
    console.warn('SKIPPING the redis target tests: nothing listens on 127.0.0.1:6379');
  }
  const options = redisUp || process.env.CI !== undefined ? {} : { skip: 'redis not reachable' };
  const stream = `targets-test-${process.pid}-${Date.now()}`;

  it('writes an event as the envelope id + event, a batch as its events', options, async () => {
    const { createClient } = await import('redis');
    const client = createClient({ url: 'redis://127.0.0.1:6379' });
    await client.connect();
    try {
      const target = createTarget(destination({ type: 'redis', stream }), {
        stdout: process.stdout,
      });
      assert.deepEqual(await target.send([envelope(1)], undefined), { ok: true, retryable: false });
      assert.equal((await target.send([envelope(2), envelope(3)], 'b')).ok, true);
      await target.close({ signal: AbortSignal.timeout(5000) });
      const entries = (await client.xRange(stream, '-', '+')) ?? [];
      assert.equal(entries.length, 3);
      const text = JSON.stringify(entries.map((e) => e.message));
      for (const n of [1, 2, 3]) {
        assert.ok(text.includes(`evt_${n}`), `evt_${n} in ${text}`);
        assert.ok(text.includes(`{\\"n\\":${n}}`), `event ${n} in ${text}`);
      }
    } finally {
      await client.del(stream);
      client.destroy();
    }
  });

  it('a broker that is not there: a retryable failure; close returns at once', async () => {
    const port = await closedPort();
    const target = createTarget(
      destination({ type: 'redis', url: `redis://127.0.0.1:${port}`, stream }),
      { stdout: process.stdout },
    );
    const outcome = await target.send([envelope(1)], undefined);
    assert.equal(outcome.ok, false);
    assert.equal(outcome.retryable, true);
    assert.match(outcome.error ?? '', /ECONNREFUSED|connect/i);
    const started = Date.now();
    await target.close({ signal: AbortSignal.abort() });
    assert.ok(Date.now() - started < 1000);
  });
});
