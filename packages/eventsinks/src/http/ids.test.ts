// Issue 12, items 8 and 9: a webhook-id a receiver can deduplicate on, also across restarts,
// and a durable, signed composition that cannot lose events (see crash.test.ts for the kills).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { isSinkClosedError, SinkClosedError } from '../errors/SinkClosedError.js';
import { Breaker } from '../retry/Breaker.js';
import { RetryingSink, type DeadLetter } from '../RetryingSink.js';
import { DurableQueue, durableId } from '../sqlite/index.js';
import { Endpoint } from './Endpoint.js';
import { HttpSink } from './HttpSink.js';
import { httpRetryStrategy } from './httpRetryStrategy.js';
import { reply, sleep, startServer, type Received, type TestServer } from './test-utils.js';
import { WebhookSink } from './WebhookSink.js';

const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

async function until(condition: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function verify(r: Received): unknown {
  const headers: Record<string, string> = {};
  for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
    headers[name] = String(r.headers[name]);
  }
  return new Webhook(secret).verify(r.body.toString('utf8'), headers);
}

const idOf = (r: Received): string => String(r.headers['webhook-id']);

describe('webhook ids', () => {
  let server: TestServer;
  const root = mkdtempSync(join(tmpdir(), 'eventsinks-ids-'));
  before(async () => {
    server = await startServer((_, res) => reply(res, 200));
  });
  after(async () => {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  });
  const reset = (handler: TestServer['handler']): void => {
    server.handler = handler;
    server.received.length = 0;
  };

  it('HttpSink idOf: the webhook-id of every attempt, signed or not', async () => {
    reset((_, res) => reply(res, 200));
    const signed = new HttpSink<{ key: string }>(`${server.origin}/a`, {
      signing: { secret },
      idOf: (e) => `evt_${e.key}`,
    });
    await signed.write({ key: 'one' });
    // A new sink (a restart) and a copy of the event: the same id, because it comes from the event.
    const again = new HttpSink<{ key: string }>(`${server.origin}/a`, {
      signing: { secret },
      idOf: (e) => `evt_${e.key}`,
    });
    await again.write({ key: 'one' });
    const unsigned = new HttpSink<{ key: string }>(`${server.origin}/a`, {
      idOf: (e) => `evt_${e.key}`,
    });
    await unsigned.write({ key: 'two' });
    assert.deepEqual(server.received.map(idOf), ['evt_one', 'evt_one', 'evt_two']);
    verify(server.received[0]!);
    verify(server.received[1]!);
    assert.equal(server.received[2]!.headers['webhook-signature'], undefined);
    assert.throws(
      () => new HttpSink(server.origin, { idOf: 'x' as never }),
      (e: unknown) => e instanceof TypeError && /`idOf`/.test(e.message),
    );
    assert.throws(
      () => new HttpSink(server.origin, { idOf: () => 'a', signing: { secret, id: () => 'b' } }),
      (e: unknown) => e instanceof TypeError && /`idOf` and `signing.id`/.test(e.message),
    );
  });

  it('Endpoint idOf: per event, and a batch named by its first and last ids and size', async () => {
    reset((_, res) => reply(res, 200));
    const single = new Endpoint<{ n: number }>(`${server.origin}/e`, {
      signing: { secret },
      idOf: (e) => `evt_${e.n}`,
    });
    void single.write({ n: 1 });
    void single.write({ n: 2 });
    await single.close();
    assert.deepEqual(server.received.map(idOf), ['evt_1', 'evt_2']);
    server.received.forEach((r) => verify(r));

    reset((_, res) => reply(res, 200));
    const batched = new Endpoint<{ n: number }>(`${server.origin}/b`, {
      signing: { secret },
      idOf: (e) => `evt_${e.n}`,
      batch: { maxSize: 3, maxDelay: 10_000 },
    });
    for (let n = 1; n <= 3; n++) void batched.write({ n });
    await batched.close();
    assert.deepEqual(server.received.map(idOf), ['batch_evt_1_evt_3_3']);
    verify(server.received[0]!);
  });

  it('durableId: the stored id, the same after reopening the file, different in another file', async () => {
    const path = join(root, 'ids.db');
    const seen: (string | undefined)[] = [];
    // SinkClosedError: nothing delivered, delivery stops and the events stay in the file.
    const refusing = {
      write(event: { n: number }) {
        seen.push(durableId(event));
        throw new SinkClosedError('not now');
      },
      close() {},
    };
    const first = new DurableQueue(refusing, { path, onError: () => {} });
    await first.write({ n: 1 });
    await until(() => seen.length === 1, 'the first delivery attempt');
    await first.close();

    const delivered: { n: number; id: string | undefined }[] = [];
    const recording = {
      write(event: { n: number }) {
        delivered.push({ n: event.n, id: durableId(event) });
      },
      close() {},
    };
    const second = new DurableQueue(recording, { path });
    await second.write({ n: 2 });
    await second.close();
    assert.match(String(seen[0]), /^msg_[0-9a-f]{32}_\d+$/);
    assert.equal(delivered.length, 2);
    assert.deepEqual(delivered[0], { n: 1, id: seen[0] });
    assert.notEqual(delivered[1]!.id, delivered[0]?.id);
    assert.equal(delivered[1]!.id!.split('_')[1], seen[0]!.split('_')[1], 'one file, one file id');

    const other: (string | undefined)[] = [];
    const elsewhere = new DurableQueue(
      {
        write: (event: unknown) => void other.push(durableId(event)),
        close() {},
      },
      { path: join(root, 'other.db') },
    );
    await elsewhere.write({ n: 1 });
    await elsewhere.close();
    assert.notEqual(other[0], seen[0], 'row 1 of another file has another id');
    assert.equal(durableId({ n: 1 }), undefined);
    assert.equal(durableId('a string'), undefined);
  });

  it('DurableQueue → RetryingSink → HttpSink({ signing }): the same webhook-id after a restart', async () => {
    const path = join(root, 'restart.db');
    reset((_, res) => reply(res, 503));
    const composition = (): RetryingSink<{ n: number }> =>
      new RetryingSink(
        new HttpSink<{ n: number }>(`${server.origin}/r`, { signing: { secret } }),
        httpRetryStrategy(new Breaker(1, 20)),
      );
    const first = new DurableQueue(composition(), { path, onError: () => {} });
    await first.write({ n: 1 });
    await until(() => server.received.length >= 2, 'two attempts at the first event');
    // The restart: the attempt in progress is abandoned, the event stays in the file.
    await first.close({ signal: AbortSignal.abort() });
    const before = server.received.map(idOf);

    reset((_, res) => reply(res, 200));
    const second = new DurableQueue(composition(), { path });
    await second.write({ n: 2 });
    await second.close();
    const afterRestart = server.received.map(idOf);
    assert.equal(new Set(before).size, 1, `one id for every attempt: ${before.join(', ')}`);
    assert.equal(afterRestart.length, 2);
    assert.equal(afterRestart[0], before[0], 'the stored event keeps its id across the restart');
    assert.notEqual(afterRestart[1], afterRestart[0]);
    assert.deepEqual(
      server.received.map((r) => verify(r)),
      [{ n: 1 }, { n: 2 }],
    );
  });

  it('a DurableQueue refuses an Endpoint (its queue would let events leave the file undelivered)', () => {
    const endpoint = new Endpoint(`${server.origin}/x`);
    try {
      assert.throws(
        () => new DurableQueue(endpoint, { path: join(root, 'refused.db') }),
        (e: unknown) => e instanceof TypeError && /WebhookSink/.test(e.message),
      );
    } finally {
      void endpoint.close();
    }
  });

  it('WebhookSink: write settles on delivery or dead letter, with one id for every attempt', async () => {
    let calls = 0;
    reset((_, res) => reply(res, ++calls < 3 ? 503 : 200));
    const letters: DeadLetter<{ n: number }>[] = [];
    const sink = new WebhookSink<{ n: number }>(`${server.origin}/w`, {
      signing: { secret },
      threshold: 1,
      backoff: 10,
      deadLetter: { write: (letter) => void letters.push(letter), close() {} },
    });
    assert.match(sink.url, /^http:\/\/127\.0\.0\.1:\d+\/w$/);
    await sink.write({ n: 1 });
    assert.equal(server.received.length, 3, 'resolved only after the 2xx');
    assert.equal(new Set(server.received.map(idOf)).size, 1);
    server.received.forEach((r) => verify(r));

    reset((_, res) => reply(res, 400));
    await sink.write({ n: 2 });
    assert.equal(letters.length, 1, 'a 400 is dead-lettered at once');
    assert.deepEqual(letters[0]!.event, { n: 2 });

    reset(() => {}); // never answers
    const pending = sink.write({ n: 3 });
    await until(() => server.received.length === 1, 'the request');
    await sink.close();
    await assert.rejects(Promise.resolve(pending), (e: unknown) => isSinkClosedError(e));
    assert.equal(sink.closed, true);
    assert.throws(
      () => new WebhookSink(server.origin, { threshold: -1 }),
      (e: unknown) => e instanceof RangeError || e instanceof TypeError,
    );
  });
});
