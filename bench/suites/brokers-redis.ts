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
const RAW = 'node-redis xAdd (raw)';
const RAW_SEND = 'node-redis sendCommand (raw)';
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

/** What one run measures: messages per second (wall clock) and this process's CPU per message. */
interface Sample {
  rate: number;
  cpu: number;
}

/** Starts a wall and a CPU clock; `stop(n)` turns them into a {@link Sample} for n messages. */
function clock(): { stop(messages: number): Sample } {
  const wall = performance.now();
  const cpu = process.cpuUsage();
  return {
    stop(messages) {
      const used = process.cpuUsage(cpu);
      return {
        rate: (messages / (performance.now() - wall)) * 1000,
        cpu: (used.user + used.system) / messages,
      };
    },
  };
}

const event = (id: number): Event => ({ action: 'push', repository: 'library/alpine', id });

/** `writers` loops each await their write before the next; resolves with events per second. */
async function drive(total: number, writers: number, write: (e: Event) => Promise<unknown>) {
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < total) await write(event(next++));
  };
  const timer = clock();
  await Promise.all(Array.from({ length: writers }, loop));
  return timer.stop(total);
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

/**
 * The raw client doing what the sink does: XADD `{ id, data }`, awaiting each reply, through the
 * typed `xAdd` a user would write or the untyped `sendCommand` the sink uses.
 */
async function publishRaw(client: Client, total: number, writers: number, untyped: boolean) {
  const stream = `eventsinks:bench:${randomUUID()}`;
  try {
    return await drive(total, writers, (e) =>
      untyped
        ? client.sendCommand(['XADD', stream, '*', 'id', randomUUID(), 'data', JSON.stringify(e)])
        : client.xAdd(stream, '*', { id: randomUUID(), data: JSON.stringify(e) }),
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
  const timer = clock();
  const source = new RedisStreamSource<Event>(client, dst, {
    stream,
    group: 'bench',
    batchSize: BATCH,
  });
  await finished;
  await source.close(); // waits for the last acknowledgements
  const sample = timer.stop(total);
  await checkAcked(client, stream);
  await client.del(stream);
  return sample;
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
  const timer = clock();
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
  const sample = timer.stop(total);
  reader.destroy();
  await checkAcked(client, stream);
  await client.del(stream);
  return sample;
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
      results: { eventsinks: null, [RAW]: null, [RAW_SEND]: null },
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
    /** Runs each implementation once to warm up, then `rounds` times, rotating who goes first. */
    const measure = async (
      impls: Record<string, () => Promise<Sample>>,
    ): Promise<{ rate: Record<string, number>; cpu: Record<string, number> }> => {
      const names = Object.keys(impls);
      const samples = new Map<string, Sample[]>(names.map((n) => [n, []]));
      for (const name of names) await impls[name]!();
      for (let i = 0; i < rounds; i++) {
        for (let j = 0; j < names.length; j++) {
          const name = names[(i + j) % names.length]!;
          samples.get(name)!.push(await impls[name]!());
        }
      }
      const pick = (f: (x: Sample) => number, round: (x: number) => number) =>
        Object.fromEntries(names.map((n) => [n, round(median(samples.get(n)!.map(f)))]));
      return {
        rate: pick((x) => x.rate, Math.round),
        cpu: pick(
          (x) => x.cpu,
          (x) => Math.round(x * 10) / 10,
        ),
      };
    };
    /** Two rows per scenario: the rate (wall clock), and this process's CPU per message. */
    const rows = (
      scenario: string,
      measured: { rate: Record<string, number>; cpu: Record<string, number> },
      reference: Record<string, string>,
      notes: string,
    ): BenchRow[] => {
      const ratios = (results: Record<string, number>, invert: boolean): string =>
        Object.entries(results)
          .filter(([name]) => name !== 'eventsinks')
          .map(([name, value]) => {
            const ratio = invert ? value / results.eventsinks! : results.eventsinks! / value;
            return `${Math.round(ratio * 100)}% of ${name}`;
          })
          .join(', ');
      const common = `${total} events, median of ${rounds} rounds`;
      return [
        {
          suite: SUITE,
          scenario,
          unit: 'msg/s',
          better: 'higher',
          results: measured.rate,
          reference,
          notes: `${ratios(measured.rate, false)}; ${notes}; ${common}`,
        },
        {
          suite: SUITE,
          scenario: `${scenario} CPU`,
          unit: 'µs CPU/msg',
          better: 'lower',
          results: measured.cpu,
          notes: `this process's CPU time (user + system) per message, the client's own cost whatever the load on the machine (Redis's time is not in it); throughput relative to it: ${ratios(measured.cpu, true)}; ${common}`,
        },
      ];
    };

    const pub1 = await measure({
      eventsinks: () => publishEventsinks(client, total, 1),
      [RAW]: () => publishRaw(client, total, 1, false),
      [RAW_SEND]: () => publishRaw(client, total, 1, true),
    });
    const pub64 = await measure({
      eventsinks: () => publishEventsinks(client, total, 64),
      [RAW]: () => publishRaw(client, total, 64, false),
      [RAW_SEND]: () => publishRaw(client, total, 64, true),
    });
    const consume = await measure({
      eventsinks: () => consumeEventsinks(client, total),
      [RAW]: () => consumeRaw(client, total),
    });
    return [
      ...rows(
        'publish maxInFlight=1',
        pub1,
        WATERMILL_PUB,
        "one writer awaiting each XADD reply; raw: the same loop with client.xAdd, and with client.sendCommand (what the sink uses). The sink turns off node-redis's per-command timer (an AbortSignal.timeout per command, only until the command is written) and keeps one timer of its own for every write in flight: most of its CPU lead",
      ),
      ...rows(
        'publish maxInFlight=64',
        pub64,
        WATERMILL_PUB,
        '64 writers, up to 64 XADDs pipelined; raw: 64 loops of client.xAdd / client.sendCommand',
      ),
      ...rows(
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
