// The Redis Streams suite (issue 7): RedisStreamSink publish rate with maxInFlight 1 and 64, and
// RedisStreamSource consume+ack rate, each next to node-redis alone doing the same loop in the
// same run, against the Redis on 127.0.0.1:6379 (REDIS_URL overrides). Rounds alternate which
// side goes first, and each figure is the median of its rounds.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createClient } from 'redis';
import type { Sink } from 'eventsinks';
import { RedisStreamSink, RedisStreamSource } from 'eventsinks/redis';
import type { BenchOptions, BenchRow, BenchSuite } from '../types.js';

const SUITE = 'redis';
const URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const RAW = 'node-redis (raw)';
// Watermill's README (different hardware, Go): Redis Streams publish / subscribe.
const WATERMILL_PUB = { 'Watermill (Go, other hardware)': '59k msg/s publish' };
const WATERMILL_SUB = { 'Watermill (Go, other hardware)': '12k msg/s subscribe' };
/** Entries per XREADGROUP, for the source and for the raw loop alike. */
const BATCH = 16;

interface Event {
  action: string;
  repository: string;
  id: number;
}

function newClient() {
  const client = createClient({ url: URL, socket: { reconnectStrategy: false } });
  client.on('error', (error: unknown) => console.error('[bench redis]', error));
  return client;
}

type Client = ReturnType<typeof newClient>;

/** What `xReadGroup` resolves to (its declared type is a union of RESP shapes). */
type ReadReply = { name: string; messages: { id: string; message: { data: string } }[] }[];

async function connect(): Promise<Client> {
  const client = newClient();
  await client.connect();
  return client;
}

const event = (id: number): Event => ({ action: 'push', repository: 'library/alpine', id });

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

async function publishEventsinks(client: Client, total: number, maxInFlight: number) {
  const stream = `eventsinks:bench:${randomUUID()}`;
  const sink = new RedisStreamSink<Event>(client, { stream, maxInFlight });
  try {
    return await drive(total, maxInFlight, (e) => sink.write(e));
  } finally {
    await sink.close();
    await client.del(stream);
  }
}

/** The raw client doing what the sink does: XADD `{ id, data }`, awaiting each reply. */
async function publishRaw(client: Client, total: number, writers: number) {
  const stream = `eventsinks:bench:${randomUUID()}`;
  try {
    return await drive(total, writers, (e) =>
      client.xAdd(stream, '*', { id: randomUUID(), data: JSON.stringify(e) }),
    );
  } finally {
    await client.del(stream);
  }
}

/** A stream holding `total` entries written by the sink, and a fresh group at its start. */
async function filled(client: Client, total: number): Promise<string> {
  const stream = `eventsinks:bench:${randomUUID()}`;
  const sink = new RedisStreamSink<Event>(client, { stream, maxInFlight: 64 });
  await drive(total, 64, (e) => sink.write(e));
  await sink.close();
  await client.xGroupCreate(stream, 'bench', '0');
  return stream;
}

/** The source into a sink that counts (asynchronously, as a real one would): consume + ack. */
async function consumeEventsinks(client: Client, total: number) {
  const stream = await filled(client, total);
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
  const source = new RedisStreamSource<Event>(client, dst, {
    stream,
    group: 'bench',
    batchSize: BATCH,
  });
  await finished;
  await source.close(); // waits for the last acknowledgements
  const rate = (total / (performance.now() - started)) * 1000;
  await checkAcked(client, stream);
  await client.del(stream);
  return rate;
}

/**
 * The raw client's loop: XREADGROUP a batch on a blocking connection, decode and hand each entry
 * to the same counting sink, one XACK per batch.
 */
async function consumeRaw(client: Client, total: number) {
  const stream = await filled(client, total);
  const reader = client.duplicate();
  reader.on('error', (error: unknown) => console.error('[bench redis]', error));
  await reader.connect();
  let delivered = 0;
  const dst: Sink<Event> = {
    async write() {
      delivered++;
    },
    close() {},
  };
  const started = performance.now();
  while (delivered < total) {
    const reply: ReadReply | null = await reader.xReadGroup(
      'bench',
      'raw',
      { key: stream, id: '>' },
      { COUNT: BATCH, BLOCK: 1000 },
    );
    const messages = reply?.[0]?.messages ?? [];
    const ids: string[] = [];
    for (const message of messages) {
      await dst.write(JSON.parse(message.message.data) as Event);
      ids.push(message.id);
    }
    if (ids.length > 0) await client.xAck(stream, 'bench', ids);
  }
  const rate = (total / (performance.now() - started)) * 1000;
  reader.destroy();
  await checkAcked(client, stream);
  await client.del(stream);
  return rate;
}

async function checkAcked(client: Client, stream: string): Promise<void> {
  const pending = await client.xPending(stream, 'bench');
  if (pending.pending !== 0) throw new Error(`${pending.pending} entries left unacknowledged`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  let client: Client;
  try {
    client = await connect();
  } catch (error) {
    const message = `Redis on ${URL} does not answer: ${error instanceof Error ? error.message : String(error)}`;
    if (process.env.CI) throw new Error(message, { cause: error });
    console.error(`!! [bench redis] SKIPPED: ${message}`);
    const skipped = (scenario: string, unit: string): BenchRow => ({
      suite: SUITE,
      scenario,
      unit,
      better: 'higher',
      results: { eventsinks: null, [RAW]: null },
      notes: message,
    });
    return [
      skipped('publish maxInFlight=1', 'msg/s'),
      skipped('publish maxInFlight=64', 'msg/s'),
      skipped('consume+ack', 'msg/s'),
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
      () => publishEventsinks(client, total, 1),
      () => publishRaw(client, total, 1),
    );
    const pub64 = await measure(
      () => publishEventsinks(client, total, 64),
      () => publishRaw(client, total, 64),
    );
    const consume = await measure(
      () => consumeEventsinks(client, total),
      () => consumeRaw(client, total),
    );
    return [
      row(
        'publish maxInFlight=1',
        pub1,
        WATERMILL_PUB,
        'one writer awaiting each XADD reply; raw: the same loop with client.xAdd',
      ),
      row(
        'publish maxInFlight=64',
        pub64,
        WATERMILL_PUB,
        '64 writers, up to 64 XADDs pipelined; raw: 64 loops of client.xAdd',
      ),
      row(
        'consume+ack',
        consume,
        WATERMILL_SUB,
        `concurrency 1, ${BATCH} entries per XREADGROUP, acknowledged after each write; raw: XREADGROUP ${BATCH}, JSON.parse, write, one XACK per batch`,
      ),
    ];
  } finally {
    await client.close();
  }
}

const suite: BenchSuite = { name: SUITE, run };
export default suite;
