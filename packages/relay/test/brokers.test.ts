// The relay with a broker on each side: events published to a Redis stream are ingested by the
// relay's redis source, and every event (from there and from HTTP) is delivered both to a
// webhook and to another Redis stream through the redis destination.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { connect as amqpConnect } from 'amqplib';
import { createClient } from 'redis';
import { RedisStreamSink } from 'eventsinks/redis';
import { Receiver, closeAll, post, startRelay, tempDir, waitFor, writeConfig } from './harness.js';

after(closeAll);

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const NATS_SERVER = '127.0.0.1:4222';
const AMQP_URL = process.env.EVENTSINKS_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** `open()`'s result, or undefined with a loud skip message naming `service` (a failure in CI). */
async function serviceOrSkip<T>(service: string, open: () => Promise<T>): Promise<T | undefined> {
  try {
    return await open();
  } catch (error) {
    if (process.env.CI) {
      throw new Error(`${service} is required in CI and does not answer`, { cause: error });
    }
    console.warn(
      `\n!!! SKIPPED: ${service} does not answer; the relay broker test did not run !!!\n`,
    );
    return undefined;
  }
}

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

  it("carries each event's traceparent to every broker destination as a message header", async (t) => {
    const redis = await redisOrSkip();
    const nc = await serviceOrSkip(`NATS on ${NATS_SERVER}`, () =>
      natsConnect({ servers: NATS_SERVER, timeout: 2_000 }),
    );
    const amqp = await serviceOrSkip(`RabbitMQ at ${AMQP_URL}`, () =>
      amqpConnect(AMQP_URL, { timeout: 2_000 }),
    );
    if (!redis || !nc || !amqp) {
      await redis?.close();
      await nc?.close();
      await amqp?.close();
      return t.skip('a broker is not running');
    }
    const suffix = `${process.pid}-${Date.now()}`;
    const stream = `relay-trace-${suffix}`;
    const natsStream = `relay_trace_${process.pid}_${Date.now()}`;
    const subject = `relay.trace.${process.pid}.${Date.now()}`;
    const queue = `relay-trace-${suffix}`;
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: natsStream, subjects: [subject] });
    const channel = await amqp.createChannel();
    // Declared before the relay publishes, so a get before its first message is not a 404.
    await channel.assertQueue(queue, { durable: true });
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    try {
      const dir = tempDir();
      const file = writeConfig(
        dir,
        `
server: { listen: 127.0.0.1:0 }
destinations:
  - { name: redis, type: redis, url: "${REDIS_URL}", stream: ${stream} }
  - { name: nats, type: nats, servers: "${NATS_SERVER}", subject: ${subject} }
  - { name: amqp, type: amqp, url: "${AMQP_URL}", queue: ${queue} }
`,
      );
      const relay = await startRelay(file, { cwd: dir });
      assert.equal((await post(relay.url, '{"n":1}', { traceparent })).status, 202);
      assert.equal((await post(relay.url, '{"n":2}')).status, 202);

      // Redis: a traceparent field after id and data, on the traced event only.
      let entries: [string, string[]][] = [];
      await waitFor(
        async () => {
          entries = await redis.sendCommand<[string, string[]][]>(['XRANGE', stream, '-', '+']);
          return entries.length >= 2;
        },
        30_000,
        'the redis stream',
      );
      const redisTrace = (n: number): string | undefined => {
        const fields = entries.find(([, f]) => f[f.indexOf('data') + 1] === `{"n":${n}}`)![1];
        const at = fields.indexOf('traceparent');
        return at < 0 ? undefined : fields[at + 1];
      };
      assert.equal(redisTrace(1), traceparent);
      assert.equal(redisTrace(2), undefined);

      // NATS: a traceparent header beside Nats-Msg-Id.
      await waitFor(
        async () => (await jsm.streams.info(natsStream)).state.messages >= 2,
        30_000,
        'the NATS stream',
      );
      const natsTrace = new Map<number, string | undefined>();
      for (const seq of [1, 2]) {
        const stored = await jsm.streams.getMessage(natsStream, { seq });
        const { n } = stored!.json<{ n: number }>();
        natsTrace.set(
          n,
          stored!.header.has('traceparent') ? stored!.header.get('traceparent') : undefined,
        );
        assert.ok(stored!.header.get('Nats-Msg-Id'), 'the message keeps its id');
      }
      assert.deepEqual([...natsTrace].sort(), [
        [1, traceparent],
        [2, undefined],
      ]);

      // AMQP: a traceparent in the message's headers.
      const amqpTrace = new Map<number, unknown>();
      await waitFor(
        async () => {
          const message = await channel.get(queue, { noAck: true });
          if (message !== false) {
            const { n } = JSON.parse(message.content.toString()) as { n: number };
            amqpTrace.set(n, (message.properties.headers ?? {}).traceparent);
          }
          return amqpTrace.size >= 2;
        },
        30_000,
        'the AMQP queue',
      );
      assert.deepEqual([...amqpTrace].sort(), [
        [1, traceparent],
        [2, undefined],
      ]);

      relay.child.kill('SIGTERM');
      assert.equal((await relay.exited).code, 0, relay.stderr());
    } finally {
      await redis.sendCommand(['DEL', stream]);
      await redis.close();
      await jsm.streams.delete(natsStream).catch(() => false);
      await nc.close();
      await channel.deleteQueue(queue).catch(() => undefined);
      await amqp.close().catch(() => undefined);
    }
  });
});
