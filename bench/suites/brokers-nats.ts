// The NATS JetStream suite (issue 7): JetStreamSink publish rate with maxInFlight 1 and 64, and
// JetStreamSource consume+ack rate, each next to the raw nats.js v3 client doing the same loop in
// the same run, against the server on 127.0.0.1:4222 (NATS_URL overrides). Rounds alternate which
// side goes first, and each figure is the median of its rounds.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  AckPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Sink } from 'eventsinks';
import { JetStreamSink, JetStreamSource } from 'eventsinks/nats';
import type { BenchOptions, BenchRow, BenchSuite } from '../types.js';

const SUITE = 'nats';
const URL = process.env.NATS_URL ?? '127.0.0.1:4222';
const RAW = 'nats.js v3 (raw)';
// Watermill's README (different hardware, Go): NATS JetStream publish / subscribe.
const WATERMILL_PUB = { 'Watermill (Go, other hardware)': '51k msg/s publish' };
const WATERMILL_SUB = { 'Watermill (Go, other hardware)': '35k msg/s subscribe' };
/** Messages the source holds at once (concurrency 1 + prefetch 64); the raw loop pulls as many. */
const BATCH = 65;

interface Event {
  action: string;
  repository: string;
  id: number;
}

interface Ctx {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

const event = (id: number): Event => ({ action: 'push', repository: 'library/alpine', id });

/** `writers` loops each await their write before the next; resolves with events per second. */
async function drive(
  total: number,
  writers: number,
  write: (e: Event) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < total) await write(event(next++));
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: writers }, loop));
  return (total / (performance.now() - started)) * 1000;
}

async function withStream<T>(ctx: Ctx, fn: (name: string) => Promise<T>): Promise<T> {
  const name = `bench-${randomUUID().slice(0, 12)}`;
  await ctx.jsm.streams.add({ name, subjects: [name] });
  try {
    return await fn(name);
  } finally {
    await ctx.jsm.streams.delete(name).catch(() => false);
  }
}

async function publishEventsinks(ctx: Ctx, total: number, maxInFlight: number): Promise<number> {
  return withStream(ctx, async (name) => {
    const sink = new JetStreamSink<Event>({ connection: ctx.nc, subject: name, maxInFlight });
    try {
      return await drive(total, maxInFlight, (e) => sink.write(e));
    } finally {
      await sink.close();
    }
  });
}

/** The raw client doing what the sink does: js.publish with a Nats-Msg-Id, awaiting each PubAck. */
async function publishRaw(ctx: Ctx, total: number, writers: number): Promise<number> {
  return withStream(ctx, (name) =>
    drive(total, writers, (e) =>
      ctx.js.publish(name, JSON.stringify(e), { msgID: `${name}-${e.id}` }),
    ),
  );
}

/** A stream holding `total` messages, and a fresh durable at its start. */
async function filled(ctx: Ctx, name: string, total: number): Promise<void> {
  const sink = new JetStreamSink<Event>({ connection: ctx.nc, subject: name, maxInFlight: 64 });
  await drive(total, 64, (e) => sink.write(e));
  await sink.close();
  await ctx.jsm.consumers.add(name, { durable_name: 'bench', ack_policy: AckPolicy.Explicit });
}

async function checkAcked(ctx: Ctx, name: string): Promise<void> {
  await ctx.nc.flush();
  const info = await ctx.jsm.consumers.info(name, 'bench');
  if (info.num_ack_pending !== 0 || info.num_pending !== 0) {
    throw new Error(`${info.num_ack_pending + info.num_pending} messages left unacknowledged`);
  }
}

/** The source into a sink that counts (asynchronously, as a real one would): consume + ack. */
async function consumeEventsinks(ctx: Ctx, total: number): Promise<number> {
  return withStream(ctx, async (name) => {
    await filled(ctx, name, total);
    let delivered = 0;
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => (done = resolve));
    const dst: Sink<Event> = {
      async write() {
        if (++delivered === total) done();
      },
      close() {},
    };
    const started = performance.now();
    const source = new JetStreamSource<Event>(dst, {
      connection: ctx.nc,
      stream: name,
      durable: 'bench',
    });
    await source.start();
    await finished;
    await source.close(); // the last acknowledgements are sent
    const rate = (total / (performance.now() - started)) * 1000;
    await checkAcked(ctx, name);
    return rate;
  });
}

/**
 * The raw client's loop: the pull consumer's `consume()` iterator with the same number of
 * messages outstanding, JSON decode, the same counting sink, `ack()` after each write.
 */
async function consumeRaw(ctx: Ctx, total: number): Promise<number> {
  return withStream(ctx, async (name) => {
    await filled(ctx, name, total);
    let delivered = 0;
    const dst: Sink<Event> = {
      async write() {
        delivered++;
      },
      close() {},
    };
    const started = performance.now();
    const consumer = await ctx.js.consumers.get(name, 'bench');
    const messages = await consumer.consume({ max_messages: BATCH });
    for await (const msg of messages) {
      await dst.write(msg.json<Event>());
      msg.ack();
      if (delivered === total) break;
    }
    const rate = (total / (performance.now() - started)) * 1000;
    await messages.close();
    await checkAcked(ctx, name);
    return rate;
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  let ctx: Ctx;
  try {
    const nc = await connect({ servers: URL, maxReconnectAttempts: 0, timeout: 3_000 });
    const jsm = await jetstreamManager(nc);
    ctx = { nc, jsm, js: jetstream(nc) };
  } catch (error) {
    const message = `NATS JetStream on ${URL} does not answer: ${error instanceof Error ? error.message : String(error)}`;
    if (process.env.CI) throw new Error(message, { cause: error });
    console.error(`!! [bench nats] SKIPPED: ${message}`);
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
      skipped('consume+ack'),
    ];
  }
  const rounds = quick ? 3 : 5;
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
      notes: `${Math.round((ours / raw) * 100)}% of the raw client; ${notes}; ${total} events, median of ${rounds} rounds`,
    });

    const pub1 = await measure(
      () => publishEventsinks(ctx, total, 1),
      () => publishRaw(ctx, total, 1),
    );
    const pub64 = await measure(
      () => publishEventsinks(ctx, total, 64),
      () => publishRaw(ctx, total, 64),
    );
    const consume = await measure(
      () => consumeEventsinks(ctx, total),
      () => consumeRaw(ctx, total),
    );
    return [
      row(
        'publish maxInFlight=1',
        pub1,
        WATERMILL_PUB,
        'one writer awaiting each PubAck; raw: the same loop with js.publish and a msgID',
      ),
      row(
        'publish maxInFlight=64',
        pub64,
        WATERMILL_PUB,
        '64 writers, up to 64 publishes awaiting PubAck; raw: 64 loops of js.publish',
      ),
      row(
        'consume+ack',
        consume,
        WATERMILL_SUB,
        `durable pull consumer, concurrency 1, ${BATCH} messages held, ack after each write; raw: consumer.consume({ max_messages: ${BATCH} }), msg.json(), write, ack`,
      ),
    ];
  } finally {
    await ctx.nc.close();
  }
}

const suite: BenchSuite = { name: SUITE, run };
export default suite;
