// The RabbitMQ suite (issue 7): AmqpSink publish rate with maxInFlight 1 and 64, and AmqpSource
// consume+ack rate with concurrency 1 and 64, each next to amqplib alone doing the same loop in
// the same run, against the RabbitMQ on 127.0.0.1:5672 (AMQP_URL overrides). Both sides publish
// persistent messages to a durable queue on a confirm channel and wait for each confirm; both
// consume with the same prefetch and ack each message after the same counting write. Rounds
// alternate which side goes first, and each figure is the median of its rounds.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import type { Sink } from 'eventsinks';
import { AmqpSink, AmqpSource } from 'eventsinks/amqp';
import type { BenchOptions, BenchRow, BenchSuite } from '../types.js';

const SUITE = 'amqp';
const URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const RAW = 'amqplib (raw)';
// Watermill's README (different hardware, Go): RabbitMQ publish / subscribe.
const WATERMILL_PUB = { 'Watermill (Go, other hardware)': '2.8k msg/s publish' };
const WATERMILL_SUB = { 'Watermill (Go, other hardware)': '14.6k msg/s subscribe' };

interface Event {
  action: string;
  repository: string;
  id: number;
}

const event = (id: number): Event => ({ action: 'push', repository: 'library/alpine', id });

const queueName = (): string => `eventsinks.bench.${randomUUID()}`;

/** `writers` loops each await their write before the next; resolves with events per second. */
async function drive(total: number, writers: number, write: (e: Event) => Promise<unknown>) {
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < total) await write(event(next++));
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: writers }, loop));
  return (total / (performance.now() - started)) * 1000;
}

async function deleteQueue(model: ChannelModel, queue: string): Promise<void> {
  const channel = await model.createChannel();
  await channel.deleteQueue(queue);
  await channel.close();
}

async function publishEventsinks(model: ChannelModel, total: number, maxInFlight: number) {
  const queue = queueName();
  const sink = new AmqpSink<Event>({ url: URL, queue, maxInFlight });
  try {
    return await drive(total, maxInFlight, (e) => sink.write(e));
  } finally {
    await sink.close();
    await deleteQueue(model, queue);
  }
}

/** amqplib doing what the sink does: a persistent, mandatory publish with a messageId, confirmed. */
function confirmedPublish(channel: ConfirmChannel, queue: string, e: Event): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    channel.publish(
      '',
      queue,
      Buffer.from(JSON.stringify(e)),
      {
        persistent: true,
        mandatory: true,
        messageId: randomUUID(),
        contentType: 'application/json',
        timestamp: Date.now(),
      },
      (error: unknown) =>
        error ? reject(new Error('not confirmed', { cause: error })) : resolve(),
    );
  });
}

async function publishRaw(model: ChannelModel, total: number, writers: number) {
  const queue = queueName();
  const channel = await model.createConfirmChannel();
  await channel.assertQueue(queue, { durable: true });
  try {
    return await drive(total, writers, (e) => confirmedPublish(channel, queue, e));
  } finally {
    await channel.close();
    await deleteQueue(model, queue);
  }
}

/** A durable queue holding `total` persistent messages. */
async function filled(model: ChannelModel, total: number): Promise<string> {
  const queue = queueName();
  const channel = await model.createConfirmChannel();
  await channel.assertQueue(queue, { durable: true });
  await drive(total, 64, (e) => confirmedPublish(channel, queue, e));
  await channel.close();
  return queue;
}

function counter(total: number): { dst: Sink<Event>; finished: Promise<void> } {
  let delivered = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => (done = resolve));
  // Asynchronous, as a real destination would be.
  const dst: Sink<Event> = {
    async write() {
      if (++delivered === total) done();
    },
    close() {},
  };
  return { dst, finished };
}

async function checkEmpty(model: ChannelModel, queue: string): Promise<void> {
  const channel = await model.createChannel();
  const { messageCount } = await channel.checkQueue(queue);
  await channel.close();
  if (messageCount !== 0) throw new Error(`${messageCount} messages left unacknowledged`);
}

/** The source into the counting sink: consume, write, ack. */
async function consumeEventsinks(model: ChannelModel, total: number, concurrency: number) {
  const queue = await filled(model, total);
  const { dst, finished } = counter(total);
  const started = performance.now();
  const source = new AmqpSource<Event>(dst, {
    url: URL,
    queue,
    concurrency,
    // The bench queue is declared by `filled`; the source only consumes it.
    assertTopology: false,
  });
  await finished;
  await source.close(); // waits for the last acknowledgements
  const rate = (total / (performance.now() - started)) * 1000;
  await checkEmpty(model, queue);
  await deleteQueue(model, queue);
  return rate;
}

/** amqplib's loop: prefetch, consume, JSON.parse, the same counting write, ack each message. */
async function consumeRaw(model: ChannelModel, total: number, concurrency: number) {
  const queue = await filled(model, total);
  const { dst, finished } = counter(total);
  const started = performance.now();
  const connection = await connect(URL);
  const channel = await connection.createChannel();
  await channel.prefetch(concurrency);
  let acked = 0;
  let allAcked: () => void = () => {};
  const acknowledged = new Promise<void>((resolve) => (allAcked = resolve));
  await channel.consume(queue, (message) => {
    if (message === null) return;
    void Promise.resolve(dst.write(JSON.parse(message.content.toString('utf8')) as Event)).then(
      () => {
        channel.ack(message);
        if (++acked === total) allAcked();
      },
    );
  });
  await finished;
  await acknowledged;
  await channel.close();
  await connection.close();
  const rate = (total / (performance.now() - started)) * 1000;
  await checkEmpty(model, queue);
  await deleteQueue(model, queue);
  return rate;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  let model: ChannelModel;
  try {
    model = await connect(URL, { timeout: 5_000 });
  } catch (error) {
    const message = `RabbitMQ on ${URL.replace(/\/\/[^@]*@/, '//')} does not answer: ${error instanceof Error ? error.message : String(error)}`;
    if (process.env.CI) throw new Error(message, { cause: error });
    console.error(`!! [bench amqp] SKIPPED: ${message}`);
    const skipped = (scenario: string): BenchRow => ({
      suite: SUITE,
      scenario,
      unit: 'msg/s',
      better: 'higher',
      results: { eventsinks: null, [RAW]: null },
      notes: message,
    });
    return [
      skipped('publish maxInFlight=1'),
      skipped('publish maxInFlight=64'),
      skipped('consume+ack concurrency=1'),
      skipped('consume+ack concurrency=64'),
    ];
  }
  model.on('error', (error: unknown) => console.error('[bench amqp]', error));
  const rounds = quick ? 3 : 5;
  // Each confirm of a persistent message waits for the broker's disk: the serial case is slow.
  const serialTotal = quick ? 500 : 3_000;
  const total = quick ? 3_000 : 20_000;
  try {
    const measure = async (
      ours: () => Promise<number>,
      raw: () => Promise<number>,
    ): Promise<{ ours: number; raw: number }> => {
      // A warm-up pair, then rounds alternating who goes first.
      await ours();
      await raw();
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < rounds; i++) {
        if (i % 2 === 0) {
          a.push(await ours());
          b.push(await raw());
        } else {
          b.push(await raw());
          a.push(await ours());
        }
      }
      return { ours: median(a), raw: median(b) };
    };
    const row = (
      scenario: string,
      { ours, raw }: { ours: number; raw: number },
      reference: Record<string, string>,
      notes: string,
    ): BenchRow => ({
      suite: SUITE,
      scenario,
      unit: 'msg/s',
      better: 'higher',
      results: { eventsinks: Math.round(ours), [RAW]: Math.round(raw) },
      reference,
      notes: `${Math.round((ours / raw) * 100)}% of the raw client; ${notes}; median of ${rounds} rounds`,
    });

    const pub1 = await measure(
      () => publishEventsinks(model, serialTotal, 1),
      () => publishRaw(model, serialTotal, 1),
    );
    const pub64 = await measure(
      () => publishEventsinks(model, total, 64),
      () => publishRaw(model, total, 64),
    );
    const consume1 = await measure(
      () => consumeEventsinks(model, total, 1),
      () => consumeRaw(model, total, 1),
    );
    const consume64 = await measure(
      () => consumeEventsinks(model, total, 64),
      () => consumeRaw(model, total, 64),
    );
    return [
      row(
        'publish maxInFlight=1',
        pub1,
        WATERMILL_PUB,
        `one writer awaiting each publisher confirm (persistent, durable queue); raw: the same loop on an amqplib confirm channel; ${serialTotal} events`,
      ),
      row(
        'publish maxInFlight=64',
        pub64,
        WATERMILL_PUB,
        `64 writers, up to 64 confirms outstanding; raw: 64 loops on one confirm channel; ${total} events`,
      ),
      row(
        'consume+ack concurrency=1',
        consume1,
        WATERMILL_SUB,
        `prefetch 1, each message acknowledged after its write resolved (ordered); raw: the same consume/parse/write/ack loop; ${total} events`,
      ),
      row(
        'consume+ack concurrency=64',
        consume64,
        WATERMILL_SUB,
        `prefetch 64, acknowledged one by one after each write; raw: the same loop with prefetch 64; ${total} events`,
      ),
    ];
  } finally {
    await model.close();
  }
}

const suite: BenchSuite = { name: SUITE, run };
export default suite;
