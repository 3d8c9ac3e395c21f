import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isQueueFullError } from '../errors/QueueFullError.js';
import { isSinkClosedError } from '../errors/SinkClosedError.js';
import { Breaker } from '../retry/Breaker.js';
import { ExponentialBackoff } from '../retry/ExponentialBackoff.js';
import { maxAttempts } from '../retry/maxAttempts.js';
import type { DeadLetter } from '../RetryingSink.js';
import type { Sink } from '../Sink.js';
import { Endpoint } from './Endpoint.js';
import { isHttpStatusError, isHttpTransportError } from './errors.js';
import { verifyWebhook } from './signing.js';
import { reply, sleep, startServer, type Received, type TestServer } from './test-utils.js';

interface Ev {
  seq: number;
}

class Letters<E> implements Sink<DeadLetter<E>> {
  readonly letters: DeadLetter<E>[] = [];
  write(letter: DeadLetter<E>): void {
    this.letters.push(letter);
  }
  close(): void {}
}

const secret = `whsec_${randomBytes(32).toString('base64')}`;
// Short backoffs so the suite is quick, and a long timeout so that a loaded machine never turns
// a slow answer into a retry the exact counts below do not expect.
const fast = { threshold: 10, backoff: 5, timeout: 10_000 } as const;
const seqs = (received: Received[]): number[] =>
  received.map((r) => (JSON.parse(r.body.toString()) as Ev).seq);

describe('Endpoint', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer((_, res) => reply(res, 200));
  });
  after(() => server.close());
  const reset = (handler: TestServer['handler']): void => {
    server.handler = handler;
    server.received.length = 0;
  };

  it('happy path: delivers in order, with the metrics of the registry', async () => {
    reset((_, res) => reply(res, 200));
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, fast);
    for (let seq = 0; seq < 50; seq++) assert.equal(endpoint.write({ seq }), undefined);
    await endpoint.close();
    assert.deepEqual(
      seqs(server.received),
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.deepEqual(endpoint.metrics(), {
      pending: 0,
      events: 50,
      successes: 50,
      failures: 0,
      errors: 0,
      dropped: 0,
      statuses: { '200 OK': 50 },
    });
    assert.ok(isSinkClosedError(captureSync(() => endpoint.write({ seq: 99 }))));
  });

  it('503 ×3 then 200: retried, delivered once, counted', async () => {
    let calls = 0;
    reset((_, res) => reply(res, ++calls <= 3 ? 503 : 200));
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, fast);
    void endpoint.write({ seq: 1 });
    await endpoint.close();
    assert.equal(server.received.length, 4);
    assert.deepEqual(endpoint.metrics(), {
      pending: 0,
      events: 1,
      successes: 1,
      failures: 3,
      errors: 0,
      dropped: 0,
      statuses: { '503 Service Unavailable': 3, '200 OK': 1 },
    });
  });

  it('429 with Retry-After is honoured', async () => {
    const at: number[] = [];
    reset((_, res) => {
      at.push(performance.now());
      if (at.length === 1) reply(res, 429, 'slow down', { 'retry-after': '1' });
      else reply(res, 200);
    });
    // No backoff of its own: any wait comes from Retry-After.
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
      threshold: 10,
      backoff: 0,
      timeout: fast.timeout,
    });
    void endpoint.write({ seq: 1 });
    await endpoint.close();
    assert.equal(at.length, 2);
    const gap = at[1]! - at[0]!;
    // A lower bound only: a loaded machine can only make the gap longer.
    assert.ok(gap >= 900, `retried after ${gap} ms`);
    assert.deepEqual(endpoint.metrics().statuses, { '429 Too Many Requests': 1, '200 OK': 1 });
  });

  it('400 goes straight to the dead letter, without retrying or tripping the breaker', async () => {
    reset((received, res) => {
      const { seq } = JSON.parse(received.body.toString()) as Ev;
      reply(res, seq % 2 === 0 ? 400 : 200, seq % 2 === 0 ? 'bad event' : '');
    });
    const dlq = new Letters<Ev>();
    // threshold 1 and a 60 s backoff: a single counted failure would stall this test.
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
      threshold: 1,
      backoff: 60_000,
      timeout: fast.timeout,
      deadLetter: dlq,
    });
    for (let seq = 0; seq < 6; seq++) void endpoint.write({ seq });
    await endpoint.close();
    assert.deepEqual(seqs(server.received), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(
      dlq.letters.map((l) => [l.event.seq, l.attempts]),
      [
        [0, 1],
        [2, 1],
        [4, 1],
      ],
    );
    const error = dlq.letters[0]?.error;
    assert.ok(isHttpStatusError(error));
    assert.equal(error.status, 400);
    assert.equal(error.body, 'bad event');
    const m = endpoint.metrics();
    assert.deepEqual(
      { events: m.events, successes: m.successes, failures: m.failures, dropped: m.dropped },
      { events: 6, successes: 3, failures: 3, dropped: 3 },
    );
    assert.deepEqual(m.statuses, { '400 Bad Request': 3, '200 OK': 3 });
  });

  it('a 302 is not followed: dead-lettered, the target never hit', async () => {
    reset((received, res) => {
      if (received.path === '/stolen') reply(res, 200);
      else reply(res, 302, '', { location: '/stolen' });
    });
    const dlq = new Letters<Ev>();
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, { ...fast, deadLetter: dlq });
    void endpoint.write({ seq: 1 });
    await endpoint.close();
    assert.deepEqual(
      server.received.map((r) => r.path),
      ['/hook'],
    );
    assert.equal(dlq.letters.length, 1);
    assert.equal((dlq.letters[0]?.error as { status?: number }).status, 302);
  });

  it('a handler that never answers: timed out, retried with the same webhook-id', async () => {
    let calls = 0;
    reset((_, res) => {
      // The first request is processed but never answered; the client must time out.
      if (++calls > 1) reply(res, 200);
    });
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
      ...fast,
      timeout: 500,
      signing: { secret },
    });
    void endpoint.write({ seq: 1 });
    await endpoint.close();
    // Two requests, unless a loaded machine made an answer late too: then more, all alike.
    assert.ok(server.received.length >= 2);
    const ids = new Set(server.received.map((r) => r.headers['webhook-id']));
    assert.equal(ids.size, 1);
    const last = server.received.at(-1)!;
    await verifyWebhook(secret, last.headers, last.body);
    const m = endpoint.metrics();
    assert.deepEqual([m.successes, m.errors, m.failures], [1, server.received.length - 1, 0]);
    assert.deepEqual(m.statuses, { '200 OK': 1 });
  });

  it('a connection reset mid-request is retried', async () => {
    let calls = 0;
    reset((_, res, req) => {
      if (++calls <= 2) req.socket.destroy();
      else reply(res, 200);
    });
    const errors: unknown[] = [];
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
      ...fast,
      strategy: {
        proceed: () => 0,
        failure: (_, error) => (errors.push(error), false),
        success() {},
      },
    });
    void endpoint.write({ seq: 1 });
    await endpoint.close();
    assert.equal(server.received.length, 3);
    assert.equal(errors.length, 2);
    assert.ok(errors.every((e) => isHttpTransportError(e) && !e.timeout));
    assert.equal(endpoint.metrics().errors, 2);
  });

  it('a slow response body does not cause a retry', async () => {
    reset((_, res) => {
      res.writeHead(200);
      res.write('partial');
      const timer = setInterval(() => res.write('.'), 50);
      res.on('close', () => clearInterval(timer));
    });
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, { ...fast, timeout: 1000 });
    void endpoint.write({ seq: 1 });
    await endpoint.close();
    assert.equal(server.received.length, 1);
    assert.equal(endpoint.metrics().successes, 1);
  });

  it('ignore: matching events are neither sent nor counted', async () => {
    reset((_, res) => reply(res, 200));
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
      ...fast,
      ignore: { match: (e) => e.seq % 3 === 0 },
    });
    for (let seq = 0; seq < 9; seq++) void endpoint.write({ seq });
    await endpoint.close();
    assert.deepEqual(seqs(server.received), [1, 2, 4, 5, 7, 8]);
    assert.equal(endpoint.metrics().events, 6);
  });

  it('a bounded queue rejects when full under reject, and the count stays right', async () => {
    reset((_, res) => {
      setTimeout(() => reply(res, 200), 20);
    });
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
      ...fast,
      capacity: 2,
      overflow: 'reject',
    });
    let refused = 0;
    for (let seq = 0; seq < 10; seq++) {
      try {
        void endpoint.write({ seq });
      } catch (error) {
        assert.ok(isQueueFullError(error));
        refused++;
      }
    }
    await endpoint.close();
    const m = endpoint.metrics();
    assert.ok(refused > 0);
    assert.equal(m.events, 10 - refused);
    assert.equal(m.successes, m.events);
    assert.equal(m.pending, 0);
  });

  it('close with a deadline drops what is left to onDrop and resolves', async () => {
    reset((_, res) => reply(res, 503));
    const drops: [number, unknown][] = [];
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
      threshold: 0,
      backoff: 50,
      onDrop: (e, reason) => drops.push([e.seq, reason]),
    });
    for (let seq = 0; seq < 5; seq++) void endpoint.write({ seq });
    await sleep(100);
    await endpoint.close({ signal: AbortSignal.timeout(100) });
    // The queue drops what it holds first, then the retrying sink the event it was retrying.
    drops.sort((a, b) => a[0] - b[0]);
    assert.deepEqual(drops, [
      [0, 'closed'],
      [1, 'closed'],
      [2, 'closed'],
      [3, 'closed'],
      [4, 'closed'],
    ]);
    const m = endpoint.metrics();
    assert.deepEqual([m.events, m.pending, m.dropped, m.successes], [5, 0, 5, 0]);
    assert.equal(m.failures, m.statuses['503 Service Unavailable']);
  });

  it('any strategy can replace the breaker', async () => {
    const seen = new Set<number>();
    reset((received, res) => {
      // Each event fails the first time it arrives.
      const { seq } = JSON.parse(received.body.toString()) as Ev;
      reply(res, seen.has(seq) ? 200 : 500);
      seen.add(seq);
    });
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
      timeout: fast.timeout,
      strategy: new ExponentialBackoff({ base: 1, factor: 1, max: 5 }),
    });
    for (let seq = 0; seq < 5; seq++) void endpoint.write({ seq });
    await endpoint.close();
    assert.deepEqual(endpoint.metrics().statuses, { '500 Internal Server Error': 5, '200 OK': 5 });
  });

  describe('batch', () => {
    it('sends arrays of events, in order, each retried as a whole', async () => {
      let calls = 0;
      reset((_, res) => reply(res, ++calls % 3 === 1 ? 503 : 200));
      const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
        ...fast,
        signing: { secret },
        batch: { maxSize: 100, maxDelay: 20 },
      });
      for (let seq = 0; seq < 1050; seq++) void endpoint.write({ seq });
      await endpoint.close();
      for (const r of server.received) {
        await verifyWebhook(secret, r.headers, r.body);
        const batch = JSON.parse(r.body.toString()) as Ev[];
        assert.ok(Array.isArray(batch) && batch.length <= 100 && batch.length > 0);
      }
      // Dedupe by webhook-id as a receiver would: what is left is every event once, in order.
      const seen = new Set<string>();
      const unique: number[] = [];
      for (const r of server.received) {
        const id = String(r.headers['webhook-id']);
        if (seen.has(id)) continue;
        seen.add(id);
        unique.push(...(JSON.parse(r.body.toString()) as Ev[]).map((e) => e.seq));
      }
      assert.deepEqual(
        unique,
        Array.from({ length: 1050 }, (_, i) => i),
      );
      const m = endpoint.metrics();
      assert.equal(m.events, 1050);
      assert.equal(m.successes, 1050);
      assert.equal(m.pending, 0);
      assert.equal(m.statuses['200 OK'], 1050);
      assert.equal(m.failures, m.statuses['503 Service Unavailable'] ?? 0);
      assert.ok(server.received.length < 60, `${server.received.length} requests`);
    });

    it('a refused batch is dead-lettered one event at a time', async () => {
      reset((received, res) => {
        const batch = JSON.parse(received.body.toString()) as Ev[];
        reply(res, batch.some((e) => e.seq === 13) ? 422 : 200);
      });
      const dlq = new Letters<Ev>();
      const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
        ...fast,
        deadLetter: dlq,
        batch: { maxSize: 10, maxDelay: 1000 },
      });
      for (let seq = 0; seq < 30; seq++) void endpoint.write({ seq });
      await endpoint.close();
      assert.deepEqual(
        dlq.letters.map((l) => l.event.seq),
        [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
      );
      assert.ok(dlq.letters.every((l) => l.attempts === 1 && isHttpStatusError(l.error)));
      const m = endpoint.metrics();
      assert.deepEqual(
        [m.events, m.successes, m.dropped, m.failures, m.pending],
        [30, 20, 10, 10, 0],
      );
      assert.deepEqual(m.statuses, { '200 OK': 20, '422 Unprocessable Entity': 10 });
    });
  });

  it('nothing keeps the process alive after close, even with a request stuck and a long backoff', async () => {
    // A receiver that takes the first request and never answers, then refuses with 503.
    let calls = 0;
    reset((_, res) => {
      if (++calls > 1) reply(res, 503);
    });
    const program = `
      import { Endpoint } from './src/http/index.ts';
      const endpoint = new Endpoint(${JSON.stringify(`${server.origin}/hook`)}, {
        timeout: 60_000, threshold: 1, backoff: 60_000, onDrop() {},
      });
      for (let i = 0; i < 5; i++) endpoint.write({ i });
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      await endpoint.close({ signal: AbortSignal.timeout(100) });
      console.log('closed in', Date.now() - started, 'ms', JSON.stringify(endpoint.metrics()));
    `;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', program],
      {
        cwd: new URL('../..', import.meta.url),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const started = Date.now();
    const code = await new Promise<number | null>((resolve) => {
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('exit', (c) => {
        clearTimeout(killer);
        resolve(c);
      });
    });
    assert.equal(code, 0, output);
    assert.match(output, /closed in \d+ ms/);
    assert.match(output, /"pending":0,"events":5,/);
    // The request timeout and the backoff were 60 s: exiting well under that proves that the
    // stuck request was aborted and the timers cancelled.
    assert.ok(Date.now() - started < 25_000, `took ${Date.now() - started} ms: ${output}`);
  });

  it('rejects bad options naming them', () => {
    const url = `${server.origin}/hook`;
    assert.throws(() => new Endpoint(url, { threshold: -1 }), /`threshold`.*`-1`/);
    assert.throws(() => new Endpoint(url, { backoff: NaN }), /`backoff`/);
    assert.throws(() => new Endpoint(url, { timeout: 0 }), /`timeout`/);
    assert.throws(() => new Endpoint(url, { capacity: 0 }), /`capacity`/);
    assert.throws(() => new Endpoint(url, { maxRetryAfter: -1 }), /`maxRetryAfter`/);
    assert.throws(
      () => new Endpoint(url, { batch: { maxSize: 0, maxDelay: 5 } }),
      /`batch.maxSize`/,
    );
    assert.throws(
      () => new Endpoint(url, { batch: { maxSize: 5, maxDelay: -1 } }),
      /`batch.maxDelay`/,
    );
    assert.throws(() => new Endpoint(url, { onDrop: 5 as never }), /`onDrop`/);
    assert.throws(() => new Endpoint('mailto:x@example.com'), /`url`/);
    assert.throws(() => new Endpoint(url, { ignore: 5 as never }), /`ignore`.*`5`/);
    assert.throws(() => new Endpoint(url, { strategy: {} as never }), /`strategy`/);
    assert.throws(() => new Endpoint(url, { batch: 100 as never }), /`batch`/);
  });
});

function captureSync(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('Endpoint with maxAttempts', () => {
  it('passes the attempt on through httpRetryStrategy, so maxAttempts gives up on time', async () => {
    let requests = 0;
    const dead = new Letters<Ev>();
    const endpoint = new Endpoint<Ev>('http://127.0.0.1:1/hook', {
      fetch: async () => {
        requests++;
        return new Response('busy', { status: 503, statusText: 'Service Unavailable' });
      },
      strategy: maxAttempts(new Breaker(100, 0), 3),
      deadLetter: dead,
    });
    await endpoint.write({ seq: 1 });
    await endpoint.write({ seq: 1 });
    await endpoint.close({ signal: AbortSignal.timeout(5000) });
    assert.equal(requests, 6);
    assert.deepEqual(
      dead.letters.map((d) => d.attempts),
      [3, 3],
    );
  });

  it('sinkMetrics is the one shape behind metrics(): answered and unanswered failures, dead letters', async () => {
    let requests = 0;
    const dead = new Letters<Ev>();
    const endpoint = new Endpoint<Ev>('http://127.0.0.1:1/hook', {
      fetch: async () => {
        requests++;
        if (requests === 1) throw new TypeError('fetch failed');
        if (requests <= 3) return new Response('busy', { status: 503, statusText: 'Busy' });
        return new Response('', { status: 200, statusText: 'OK' });
      },
      strategy: maxAttempts(new Breaker(100, 0), 2),
      deadLetter: dead,
    });
    await endpoint.write({ seq: 1 }); // no answer, then 503: dead-lettered
    await endpoint.write({ seq: 2 }); // 503, then 200
    await endpoint.close({ signal: AbortSignal.timeout(5000) });
    const m = endpoint.sinkMetrics;
    assert.equal(m.events, 2);
    assert.equal(m.pending, 0);
    assert.equal(m.successes, 1);
    assert.equal(m.failures, 3);
    assert.equal(m.dropped, 1);
    assert.equal(m.deadLettered, 1);
    assert.equal(dead.letters.length, 1);
    assert.equal(typeof m.lastSuccessAt, 'number');
    assert.match(String(m.lastError), /503/);
    assert.deepEqual(endpoint.metrics(), {
      pending: 0,
      events: 2,
      successes: 1,
      failures: 2,
      errors: 1,
      dropped: 1,
      statuses: { '503 Service Unavailable': 2, '200 OK': 1 },
    });
  });
});
