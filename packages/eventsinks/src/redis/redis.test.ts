// What the shared conformance suite (test/conformance/) does not cover: option validation, the
// entry format, maxLen trimming, error reasons, NOGROUP recovery, the own blocking connection,
// the heartbeat that keeps a slow write from being taken over, RESP3, and a clean process exit.
// Talks to the Redis on 127.0.0.1:6379 (REDIS_URL overrides).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { RESP_TYPES, createClient } from 'redis';
import { SinkClosedError, isSinkClosedError } from '../errors/SinkClosedError.js';
import type { Sink } from '../Sink.js';
import {
  RedisStreamSink,
  RedisStreamSource,
  isRedisStreamDecodeError,
  isRedisStreamPublishError,
  type RedisDeadLetter,
} from './index.js';
import {
  IN_CI,
  SHARED_URL,
  freePort,
  newClient,
  sleep,
  unavailable,
  waitFor,
} from './test-utils.js';

const URL = SHARED_URL;
type Client = ReturnType<typeof newClient>;

const missing = await unavailable();
if (missing !== undefined && !IN_CI) {
  console.error(`\n!! SKIPPING src/redis tests: ${missing}\n`);
}

class Collect<E> implements Sink<E> {
  readonly events: E[] = [];
  constructor(private readonly delay = 0) {}
  async write(event: E): Promise<void> {
    if (this.delay > 0) await sleep(this.delay);
    this.events.push(event);
  }
  close(): void {}
}

describe('redis adapter', { skip: !IN_CI && missing !== undefined ? missing : false }, () => {
  let client: Client;
  const streams: string[] = [];
  const stream = (): string => {
    const key = `eventsinks:test:${randomUUID()}`;
    streams.push(key, `${key}:dlq`);
    return key;
  };

  before(async () => {
    if (missing !== undefined) assert.fail(`${missing} (CI=true: a missing service is a failure)`);
    client = newClient();
    await client.connect();
  });
  after(async () => {
    if (!client?.isOpen) return;
    if (streams.length > 0) await client.del(streams);
    await client.close();
  });

  describe('RedisStreamSink', () => {
    it('validates its options, naming the option and the value', () => {
      assert.throws(
        () => new RedisStreamSink(client, { stream: '' }),
        /Expected `stream` to be a non-empty string, got `""` \(string\)/,
      );
      assert.throws(
        () => new RedisStreamSink(client, { stream: 's', maxInFlight: 0 }),
        (e) => e instanceof RangeError && /`maxInFlight`.*`0` \(number\)/.test(e.message),
      );
      assert.throws(
        () => new RedisStreamSink(client, { stream: 's', maxLen: -1 }),
        (e) => e instanceof RangeError && /`maxLen`/.test(e.message),
      );
      assert.throws(() => new RedisStreamSink({} as never, { stream: 's' }), /`client`/);
    });

    it('appends { id, data } entries in write order; idOf gives the stable id', async () => {
      const key = stream();
      const sink = new RedisStreamSink<{ n: number }>(client, {
        stream: key,
        idOf: (e) => `order-${e.n}`,
      });
      await Promise.all([1, 2, 3].map((n) => sink.write({ n })));
      await sink.close();
      const entries = await client.xRange(key, '-', '+');
      assert.deepEqual(
        entries!.map((e) => e.message),
        [1, 2, 3].map((n) => ({ id: `order-${n}`, data: JSON.stringify({ n }) })),
      );
    });

    it('headersOf adds fields after id and data; a bad result fails that write at once', async () => {
      assert.throws(
        () => new RedisStreamSink(client, { stream: 's', headersOf: 1 as never }),
        /`headersOf`/,
      );
      const key = stream();
      const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const sink = new RedisStreamSink<Record<string, unknown>>(client, {
        stream: key,
        idOf: (e) => String(e.n),
        headersOf: (e) => e.headers as Record<string, string> | undefined,
      });
      assert.throws(() => sink.write({ n: 0, headers: { id: 'x' } }), /`headersOf`.*"id"/);
      assert.throws(() => sink.write({ n: 0, headers: { data: 'x' } }), /`headersOf`.*"data"/);
      assert.throws(() => sink.write({ n: 0, headers: { tenant: 1 } }), /"tenant".*`1`/);
      assert.throws(() => sink.write({ n: 0, headers: 'x' }), /`headersOf`.*object/);
      await sink.write({ n: 1, headers: { traceparent, tenant: 'a' } });
      await sink.write({ n: 2 });
      await sink.close();
      const entries = await client.xRange(key, '-', '+');
      assert.deepEqual(
        entries!.map((e) => e.message),
        [
          {
            id: '1',
            data: JSON.stringify({ n: 1, headers: { traceparent, tenant: 'a' } }),
            traceparent,
            tenant: 'a',
          },
          { id: '2', data: JSON.stringify({ n: 2 }) },
        ],
      );
    });

    it('maxInFlight pipelines writes and still resolves each on its reply', async () => {
      const key = stream();
      const sink = new RedisStreamSink<number>(client, { stream: key, maxInFlight: 64 });
      const writes = Array.from({ length: 500 }, (_, i) => sink.write(i));
      assert.ok(sink.inFlight <= 64 && sink.inFlight > 1, `inFlight ${sink.inFlight}`);
      assert.equal(sink.pending, 500 - sink.inFlight);
      await Promise.all(writes);
      await sink.close();
      assert.equal(await client.xLen(key), 500);
    });

    it('maxLen trims the stream approximately (MAXLEN ~)', async () => {
      const key = stream();
      const sink = new RedisStreamSink<number>(client, {
        stream: key,
        maxLen: 100,
        maxInFlight: 32,
      });
      await Promise.all(Array.from({ length: 2_000 }, (_, i) => sink.write(i)));
      await sink.close();
      const length = await client.xLen(key);
      assert.ok(length >= 100 && length < 2_000, `length ${length}`);
    });

    it('rejects with a reason: rejected (error reply), closed (client closed)', async () => {
      const key = stream();
      await client.set(key, 'not a stream');
      const sink = new RedisStreamSink<number>(client, { stream: key });
      await assert.rejects(
        sink.write(1),
        (e) => isRedisStreamPublishError(e) && e.reason === 'rejected' && e.stream === key,
      );
      const other = newClient();
      await other.connect();
      const closedSink = new RedisStreamSink<number>(other, { stream: stream() });
      other.destroy();
      await assert.rejects(
        closedSink.write(1),
        (e) => isRedisStreamPublishError(e) && e.reason === 'closed',
      );
    });

    it("rejects with reason 'timeout' when no reply comes within `timeout`", async () => {
      // A private redis-server, so pausing it disturbs nobody else's tests.
      const port = await freePort();
      const server = spawn(
        'redis-server',
        ['--port', String(port), '--save', '', '--bind', '127.0.0.1'],
        {
          stdio: 'ignore',
        },
      );
      const other = createClient({ url: `redis://127.0.0.1:${port}` });
      other.on('error', () => {});
      try {
        for (let i = 0; ; i++) {
          try {
            await other.connect();
            break;
          } catch (error) {
            if (i > 100) throw error;
            await sleep(50);
          }
        }
        const sink = new RedisStreamSink<number>(other, {
          stream: 'paused',
          timeout: 400,
          maxInFlight: 4,
        });
        await sink.write(0);
        // Holds every write command for 3 s: the XADDs get no reply in time.
        await other.sendCommand(['CLIENT', 'PAUSE', '3000', 'WRITE']);
        const started = Date.now();
        const results = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => sink.write(n)));
        for (const result of results) {
          assert.equal(result.status, 'rejected');
          const reason: unknown = result.status === 'rejected' ? result.reason : undefined;
          assert.ok(
            isRedisStreamPublishError(reason) && reason.reason === 'timeout',
            String(reason),
          );
        }
        assert.ok(Date.now() - started < 2_800, 'rejected before the pause ended');
        await sink.close();
      } finally {
        if (other.isOpen) other.destroy();
        server.kill('SIGKILL');
      }
    });

    it('close waits for outstanding replies; later writes throw SinkClosedError', async () => {
      const key = stream();
      const sink = new RedisStreamSink<number>(client, { stream: key, maxInFlight: 4 });
      let resolved = 0;
      for (let i = 0; i < 100; i++) void sink.write(i).then(() => resolved++);
      await sink.close();
      await sink.close();
      assert.equal(resolved, 100);
      assert.throws(() => sink.write(1), isSinkClosedError);
    });
  });

  describe('RedisStreamSource', () => {
    it('validates its options', () => {
      const dst = new Collect<number>();
      const base = { stream: 's', group: 'g' };
      assert.throws(() => new RedisStreamSource(client, dst, { ...base, group: '' }), /`group`/);
      assert.throws(
        () => new RedisStreamSource(client, dst, { ...base, concurrency: 0 }),
        RangeError,
      );
      assert.throws(
        () => new RedisStreamSource(client, dst, { ...base, maxDeliveries: 0 }),
        RangeError,
      );
      assert.throws(
        () => new RedisStreamSource(client, dst, { ...base, deadLetterStream: 's' }),
        /differ/,
      );
      assert.throws(
        () => new RedisStreamSource(client, dst, { ...base, blockingClient: client }),
        /connection of its own/,
      );
      assert.throws(() => new RedisStreamSource(client, {} as never, base), /`dst`/);
    });

    it('blocks on its own connection and closes promptly (CLIENT UNBLOCK)', async () => {
      const key = stream();
      const dst = new Collect<number>();
      const source = new RedisStreamSource(client, dst, { stream: key, group: 'g', block: 20_000 });
      await source.ready;
      await sleep(100); // the blocking read is now waiting
      const started = Date.now();
      await client.ping(); // the shared client is not held by the blocking read
      assert.ok(Date.now() - started < 2_000);
      const closing = Date.now();
      await source.close();
      assert.ok(Date.now() - closing < 10_000, `close took ${Date.now() - closing} ms`);
    });

    it("a blocking read longer than node-redis's 5 s command timeout still delivers", async () => {
      const key = stream();
      const dst = new Collect<{ n: number }>();
      const errors: unknown[] = [];
      const source = new RedisStreamSource(client, dst, {
        stream: key,
        group: 'g',
        block: 9_000,
        onError: (e) => errors.push(e),
      });
      await source.ready;
      await sleep(5_600); // past node-redis's default per-command timeout, within BLOCK
      await client.xAdd(key, '*', { data: JSON.stringify({ n: 1 }) });
      await waitFor(() => dst.events.length === 1, 3_000, 'the entry, from the same blocking read');
      await source.close();
      assert.deepEqual(errors, []);
    });

    it('recreates its group after NOGROUP and goes on', async () => {
      const key = stream();
      const dst = new Collect<{ n: number }>();
      const errors: unknown[] = [];
      const source = new RedisStreamSource(client, dst, {
        stream: key,
        group: 'g',
        block: 200,
        onError: (e) => errors.push(e),
      });
      await source.ready;
      const sink = new RedisStreamSink<{ n: number }>(client, { stream: key });
      await sink.write({ n: 1 });
      await waitFor(() => dst.events.length === 1, 10_000, 'first event');
      await client.xGroupDestroy(key, 'g');
      await sink.write({ n: 2 });
      await waitFor(() => dst.events.some((e) => e.n === 2), 15_000, 'event after NOGROUP');
      await source.close();
      await sink.close();
      const groups = await client.xInfoGroups(key);
      assert.equal(groups.length, 1);
    });

    it('dead-letters with the reason, deliveries and entry id, and tells onDeadLetter', async () => {
      const key = stream();
      const letters: RedisDeadLetter<{ n: number }>[] = [];
      const dst: Sink<{ n: number }> = {
        write(e) {
          if (e.n === 2) throw new Error('cannot take 2');
        },
        close() {},
      };
      const source = new RedisStreamSource(client, dst, {
        stream: key,
        group: 'g',
        maxDeliveries: 2,
        retryDelay: 10,
        onError: () => {},
        onDeadLetter: (letter) => letters.push(letter),
      });
      await source.ready;
      await client.xAdd(key, '*', { data: 'nope' });
      const sink = new RedisStreamSink<{ n: number }>(client, {
        stream: key,
        idOf: (e) => `n${e.n}`,
      });
      for (const n of [1, 2, 3]) await sink.write({ n });
      await waitFor(() => letters.length === 2, 10_000, 'two dead letters');
      await source.close();
      await sink.close();
      const decode = letters.find((l) => isRedisStreamDecodeError(l.error));
      assert.ok(decode);
      assert.equal(decode.data, 'nope');
      assert.equal(decode.event, undefined);
      const poison = letters.find((l) => l.id === 'n2');
      assert.ok(poison);
      assert.equal(poison.deliveries, 2);
      assert.equal(poison.messageId, 'n2', 'messageId, as in every adapter');
      assert.deepEqual(poison.event, { n: 2 });
      const dlq = await client.xRange(`${key}:dlq`, '-', '+');
      assert.equal(dlq!.length, 2);
      const record = dlq!.find((e) => e.message.id === 'n2')!;
      assert.equal(record.message.reason, 'cannot take 2');
      assert.equal(record.message.deliveries, '2');
      assert.equal(record.message.group, 'g');
      assert.equal(record.message.entry, poison.entryId);
      const pending = await client.xPending(key, 'g');
      assert.equal(pending.pending, 0, 'dead letters are acknowledged');
    });

    it('dead-letters a payload that is not valid UTF-8 with its exact bytes', async () => {
      const key = stream();
      const letters: RedisDeadLetter<unknown>[] = [];
      const source = new RedisStreamSource(client, new Collect<unknown>(), {
        stream: key,
        group: 'g',
        block: 200,
        onError: () => {},
        onDeadLetter: (letter) => letters.push(letter),
      });
      await source.ready;
      // Lone continuation bytes, a truncated sequence and an invalid lead byte: none is UTF-8.
      const raw = Buffer.from([0x7b, 0x22, 0x80, 0xff, 0xfe, 0xc3, 0x22, 0x7d, 0xe2, 0x82]);
      await client.sendCommand(['XADD', key, '*', 'id', 'bin', 'data', raw]);
      await waitFor(() => letters.length === 1, 10_000, 'the dead letter');
      await source.close();
      const bytes = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
      const dlq = await bytes.sendCommand<[Buffer, Buffer[]][]>(['XRANGE', `${key}:dlq`, '-', '+']);
      assert.equal(dlq.length, 1);
      const fields = dlq[0]![1];
      const at = fields.findIndex((f) => f.toString() === 'data');
      assert.ok(at >= 0, 'the dead letter has a data field');
      assert.ok(Buffer.isBuffer(fields[at + 1]));
      assert.deepEqual([...fields[at + 1]!], [...raw], 'the bytes are kept exactly');
      assert.equal(fields[fields.findIndex((f) => f.toString() === 'id') + 1]!.toString(), 'bin');
      assert.ok(isRedisStreamDecodeError(letters[0]!.error));
    });

    it('a slow write is not taken over by a peer: the heartbeat keeps it fresh', async () => {
      const key = stream();
      const slow = new Collect<{ n: number }>(1_500);
      const peer = new Collect<{ n: number }>();
      const a = new RedisStreamSource(client, slow, {
        stream: key,
        group: 'g',
        minIdle: 300,
        block: 200,
      });
      await a.ready;
      const sink = new RedisStreamSink<{ n: number }>(client, { stream: key });
      await sink.write({ n: 1 });
      await waitFor(() => a.active === 1, 10_000, 'the slow write to start');
      const b = new RedisStreamSource(client, peer, {
        stream: key,
        group: 'g',
        minIdle: 300,
        claimInterval: 50,
        block: 200,
      });
      await b.ready;
      await waitFor(() => slow.events.length === 1, 10_000, 'the slow write');
      await sleep(300);
      await Promise.all([a.close(), b.close(), sink.close()]);
      assert.deepEqual(peer.events, [], 'the peer took over a healthy slow write');
    });

    it('a destination answering SinkClosedError stops the source; the entry stays unacknowledged', async () => {
      const key = stream();
      const errors: unknown[] = [];
      const dst: Sink<{ n: number }> = {
        write() {
          throw new SinkClosedError('gone');
        },
        close() {},
      };
      const source = new RedisStreamSource(client, dst, {
        stream: key,
        group: 'g',
        block: 200,
        onError: (e) => errors.push(e),
      });
      await source.ready;
      await client.xAdd(key, '*', { id: 'x', data: JSON.stringify({ n: 1 }) });
      await waitFor(() => source.closed, 10_000, 'the source to close itself');
      await source.close();
      const pending = await client.xPending(key, 'g');
      assert.equal(pending.pending, 1, 'not acknowledged');
      assert.ok(errors.some(isSinkClosedError));
      const dlq = await client.xLen(`${key}:dlq`);
      assert.equal(dlq, 0, 'not dead-lettered');
    });

    it('works with a RESP3 client', async () => {
      const key = stream();
      const resp3 = newClient(3);
      await resp3.connect();
      const dst = new Collect<{ n: number }>();
      const source = new RedisStreamSource(resp3, dst, { stream: key, group: 'g', block: 200 });
      await source.ready;
      const sink = new RedisStreamSink<{ n: number }>(resp3, { stream: key });
      for (let n = 0; n < 20; n++) await sink.write({ n });
      await waitFor(() => dst.events.length === 20, 10_000, '20 events');
      await source.close();
      await sink.close();
      await resp3.close();
      assert.deepEqual(
        dst.events.map((e) => e.n),
        Array.from({ length: 20 }, (_, n) => n),
      );
    });

    it('the signal option closes the source', async () => {
      const key = stream();
      const controller = new AbortController();
      const source = new RedisStreamSource(client, new Collect<number>(), {
        stream: key,
        group: 'g',
        block: 200,
        signal: controller.signal,
      });
      await source.ready;
      controller.abort();
      await waitFor(() => source.closed, 5_000, 'the source to close');
      await source.close();
    });

    it('forgets its generated consumer name on a clean close', async () => {
      const key = stream();
      const dst = new Collect<number>();
      const source = new RedisStreamSource(client, dst, { stream: key, group: 'g', block: 200 });
      await source.ready;
      await sleep(50);
      await source.close();
      const consumers = await client.xInfoConsumers(key, 'g');
      assert.ok(!consumers.some((c) => c.name === source.consumer));
    });

    it('leaves nothing that keeps the process alive after close', async () => {
      const program = `
        import { createClient } from 'redis';
        import { RedisStreamSink, RedisStreamSource } from './src/redis/index.ts';
        const client = createClient({ url: ${JSON.stringify(URL)} });
        client.on('error', () => {});
        await client.connect();
        const key = 'eventsinks:test:exit:' + process.pid;
        let n = 0;
        const source = new RedisStreamSource(client, { write() { n++; }, close() {} },
          { stream: key, group: 'g', block: 30000, minIdle: 60000, retryDelay: 60000 });
        await source.ready;
        const sink = new RedisStreamSink(client, { stream: key, maxInFlight: 8 });
        for (let i = 0; i < 50; i++) await sink.write({ i });
        while (n < 50) await new Promise((r) => setTimeout(r, 10));
        await source.close();
        await sink.close();
        await client.del([key, key + ':dlq']);
        await client.close();
        console.log('closed', n);
      `;
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', program],
        { cwd: new globalThis.URL('../..', import.meta.url), stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const started = Date.now();
      const code = await new Promise<number | null>((resolve) => {
        const killer = setTimeout(() => child.kill('SIGKILL'), 25_000);
        child.on('exit', (c) => {
          clearTimeout(killer);
          resolve(c);
        });
      });
      assert.equal(code, 0, output);
      assert.match(output, /closed 50/);
      // The blocking read was for 30 s and retries for 60 s: exiting well before proves close
      // ended them.
      assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms: ${output}`);
    });
  });
});
