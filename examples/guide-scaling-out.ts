// Guide: Scaling out on brokers (docs/guide/scaling-out.md), with Redis Streams.
// Run: node --import tsx examples/guide-scaling-out.ts
//
// The page's producer and three copies of its consumer, in one process for the example: the
// producer publishes 1,000 orders to a stream, three consumers in the `billing` group share
// them, and every order is charged exactly once. Talks to the Redis on 127.0.0.1:6379
// (REDIS_URL overrides), on a stream with a unique name that is deleted at the end. Without
// Redis it prints a loud SKIPPED line and exits 0, except in CI, where it fails.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';
import { Breaker, RetryingSink, type Sink } from 'eventsinks';
import { RedisStreamSink, RedisStreamSource } from 'eventsinks/redis';

interface Order {
  orderId: string;
  total: number;
}

const URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const IN_CI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';

// An admin connection that gives up at once: to check Redis is there, to count what is left
// pending in the group, and to delete the stream afterwards.
const admin = createClient({ url: URL, socket: { reconnectStrategy: false } });
admin.on('error', () => {});
try {
  await admin.connect();
  await admin.ping();
} catch (error) {
  const why = `Redis on ${URL} does not answer: ${error instanceof Error ? error.message : String(error)}`;
  if (IN_CI)
    throw new Error(`examples/guide-scaling-out.ts needs Redis in CI. ${why}`, { cause: error });
  console.log(`\n!! SKIPPED examples/guide-scaling-out.ts: ${why}\n`);
  console.error(`!! SKIPPED examples/guide-scaling-out.ts: ${why}`);
  process.exit(0);
}

const stream = `guide-orders-${randomUUID()}`;
const ORDERS = 1_000;

/** One copy of the page's consumer.ts: its own connection, its own `billing` sink. */
async function startConsumer() {
  const charged: string[] = [];
  async function chargeCustomer(order: Order): Promise<void> {
    await sleep(1); // the work
    charged.push(order.orderId);
  }

  const client = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
  client.on('error', (error: Error) => console.error('redis:', error.message));
  await client.connect();

  // Any Sink: the source acknowledges an entry only after this write resolved.
  const billing: Sink<Order> = {
    async write(order) {
      await chargeCustomer(order); // throw to have the entry retried, then dead-lettered
    },
    close() {},
  };

  const source = new RedisStreamSource<Order>(billing, {
    client,
    stream,
    group: 'billing',
    concurrency: 8, // up to 8 orders at once (1, the default, keeps stream order)
    maxDeliveries: 5, // then to the `orders:dlq` stream, with the reason
    retryDelay: 1_000,
    minIdle: 30_000, // take over what a crashed consumer left unacknowledged for 30 s
    validate: (value) => typeof (value as Order).orderId === 'string', // else dead letter
  });
  await source.ready;

  let stopped: Promise<void> | undefined;
  return {
    charged,
    // The page's graceful stop (its SIGTERM handler), once.
    stop: () =>
      (stopped ??= (async () => {
        await source.close({ signal: AbortSignal.timeout(10_000) });
        await client.close();
      })()),
  };
}

const consumers: Awaited<ReturnType<typeof startConsumer>>[] = [];
try {
  // Three consumers join the group, then the producer publishes.
  consumers.push(...(await Promise.all([startConsumer(), startConsumer(), startConsumer()])));
  const started = Date.now();

  {
    const client = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
    client.on('error', (error: Error) => console.error('redis:', error.message));
    await client.connect();

    // Resolves once Redis has the entry; the order id is the entry's stable `id` field.
    const redis = new RedisStreamSink<Order>(client, {
      stream,
      maxInFlight: 64, // pipeline up to 64 XADDs (writes from concurrent callers)
      maxLen: 1_000_000, // keep about the last million entries (MAXLEN ~)
      idOf: (order) => order.orderId,
    });
    // While Redis restarts, writes reject: retry them (the id stays the same on every attempt).
    const sink = new RetryingSink(redis, new Breaker(1, 500));

    for (let i = 0; i < 1_000; i++) {
      await sink.write({ orderId: `order-${i}`, total: i });
    }

    await sink.close(); // waits for the outstanding replies (and closes `redis`)
    await client.close();
  }
  assert.equal(await admin.xLen(stream), ORDERS);

  const total = (): number => consumers.reduce((sum, c) => sum + c.charged.length, 0);
  while (total() < ORDERS) {
    if (Date.now() - started > 8_000) {
      const charged = new Set(consumers.flatMap((c) => c.charged));
      const missing = Array.from({ length: ORDERS }, (_, i) => `order-${i}`).filter(
        (id) => !charged.has(id),
      );
      const pending = await admin.xPending(stream, 'billing');
      throw new Error(
        `only ${total()} of ${ORDERS} charged after 8 s; missing ${missing.slice(0, 10).join(', ')}; ` +
          `XPENDING ${JSON.stringify(pending)}`,
      );
    }
    await sleep(10);
  }
  await Promise.all(consumers.map((c) => c.stop()));

  // Each order charged once, by one consumer of the group; nothing left unacknowledged.
  const all = consumers.flatMap((c) => c.charged);
  assert.equal(all.length, ORDERS);
  assert.deepEqual(new Set(all), new Set(Array.from({ length: ORDERS }, (_, i) => `order-${i}`)));
  assert.equal((await admin.xPending(stream, 'billing')).pending, 0);
  assert.equal(await admin.exists(`${stream}:dlq`), 0);
  console.log(
    `${ORDERS} orders published, split ${consumers.map((c) => c.charged.length).join(' / ')}`,
    `between 3 consumers of one group in ${Date.now() - started} ms:`,
    'each charged once, XPENDING 0, no dead letters',
  );
} finally {
  await Promise.all(consumers.map((c) => c.stop()));
  await admin.del([stream, `${stream}:dlq`]);
  await admin.close();
}
