// The relay with a broker on each side: events published to a Redis stream are ingested by the
// relay's redis source, and every event (from there and from HTTP) is delivered both to a
// webhook and to another Redis stream through the redis destination.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createClient } from 'redis';
import { RedisStreamSink } from 'eventsinks/redis';
import { Receiver, closeAll, post, startRelay, tempDir, waitFor, writeConfig } from './harness.js';

after(closeAll);

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function redisOrSkip() {
  const client = createClient({
    url: REDIS_URL,
    socket: { reconnectStrategy: false, connectTimeout: 2000 },
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return client;
  } catch (error) {
    if (process.env.CI)
      throw new Error(`Redis is required in CI and does not answer at ${REDIS_URL}`, {
        cause: error,
      });
    console.warn(
      `\n!!! SKIPPED: Redis does not answer at ${REDIS_URL}; the relay broker test did not run !!!\n`,
    );
    return undefined;
  }
}

describe('relay with brokers', () => {
  it('a redis source feeds the relay; a redis destination receives everything', async (t) => {
    const client = await redisOrSkip();
    if (!client) return t.skip('Redis is not running');
    const suffix = `${process.pid}-${Date.now()}`;
    const input = `relay-test-in-${suffix}`;
    const output = `relay-test-out-${suffix}`;
    try {
      const receiver = await new Receiver().start();
      const dir = tempDir();
      const file = writeConfig(
        dir,
        `
server: { listen: 127.0.0.1:0 }
sources:
  - { type: http }
  - { type: redis, url: "${REDIS_URL}", stream: ${input}, group: relay }
destinations:
  - { name: hook, type: webhook, url: ${receiver.url} }
  - { name: out, type: redis, url: "${REDIS_URL}", stream: ${output} }
`,
      );
      const relay = await startRelay(file, { cwd: dir });
      const producer = new RedisStreamSink<{ seq: number }>(client, {
        stream: input,
        maxInFlight: 8,
      });
      await Promise.all(Array.from({ length: 20 }, (_, seq) => producer.write({ seq })));
      await producer.close();
      for (let seq = 20; seq < 25; seq++) {
        assert.equal((await post(relay.url, JSON.stringify({ seq }))).status, 202);
      }
      await waitFor(() => new Set(receiver.seqs()).size === 25, 30_000, 'the webhook');
      let entries: unknown[] = [];
      await waitFor(
        async () => {
          entries = await client.sendCommand<unknown[]>(['XRANGE', output, '-', '+']);
          return entries.length >= 25;
        },
        30_000,
        'the output stream',
      );
      const seqs = new Set<number>();
      const ids = new Set<string>();
      for (const entry of entries as [string, string[]][]) {
        const fields = entry[1];
        const data = fields[fields.indexOf('data') + 1]!;
        ids.add(fields[fields.indexOf('id') + 1]!);
        seqs.add((JSON.parse(data) as { seq: number }).seq);
      }
      assert.equal(seqs.size, 25);
      assert.equal(ids.size, entries.length, 'each message carries its own stable id');
      relay.child.kill('SIGTERM');
      assert.equal((await relay.exited).code, 0, relay.stderr());
      // The source acknowledged what it stored: nothing is left pending in the group.
      const pending = await client.sendCommand<unknown[]>(['XPENDING', input, 'relay']);
      assert.equal(Number(pending[0]), 0);
      await receiver.close();
    } finally {
      await client.sendCommand(['DEL', input, output, `${input}:dlq`]);
      await client.close();
    }
  });
});
