// The core suite: the seven go-events shapes of issue 3, run against the built package and, for
// broadcast (1) and async fan-out (7), against the emitters a user would pick instead.
import { EventEmitter as NodeEventEmitter, setMaxListeners } from 'node:events';
import { getHeapStatistics } from 'node:v8';
import Emittery from 'emittery';
import { EventEmitter as EventEmitter3 } from 'eventemitter3';
import mittImport from 'mitt';
import { Subject } from 'rxjs';
import { Breaker, Broadcaster, Channel, Filter, Queue, RetryingSink, type Sink } from 'eventsinks';
import { collect, time, type Timing } from '../lib/measure.js';
import type { BenchOptions, BenchRow, BenchSuite } from '../types.js';

const SUITE = 'core';

// mitt ships CommonJS types for an ES module: under nodenext TypeScript sees the namespace
// where Node hands over the function itself.
const mitt = mittImport as unknown as typeof mittImport.default;

// go-events' figures (Go 1.19, 2-core Intel Xeon 2.5 GHz, 2026-11-28), copied from
// ../shared/bench/go-events-baseline.md so a fresh clone can print them. They were measured
// separately, never in this run.
const GO_EVENTS: Record<string, string> = {
  Broadcast10: '1.85–2.06 µs/op',
  Broadcast100: '6.5–7.5 µs/op',
  Broadcast1000: '80–125 µs/op',
  Broadcast10000: '1.14–1.39 ms/op',
  QueueThroughput: '293–357 ns/event',
  QueueHeap: '64 B/event',
  RetryNoFail: '1.20–1.60 µs/op',
  FilterHalf: '43–50 ns/op',
  ChannelBuffered: '227–249 ns/event',
  Pipeline10: '11.7–12.3 µs/event',
};

/** The event every scenario moves: allocated once, so no figure includes allocating it. */
const EVENT = { action: 'push', repository: 'library/alpine', id: 1 };
type Event = typeof EVENT;

// go-events' test sink appends to a pre-allocated slice; a fixed ring of slots does the same
// work without growing (10 000 sinks × 64 slots stays a few MB).
const SLOTS = 64;

/** A listener that stores each event into its own pre-allocated array. */
function storing(): (event: unknown) => void {
  const items = new Array<unknown>(SLOTS).fill(null);
  let n = 0;
  return (event) => {
    items[n++ & (SLOTS - 1)] = event;
  };
}

function storingSink(): Sink<Event> {
  return { write: storing(), close() {} };
}

function asyncStoringSink(): Sink<Event> {
  const store = storing();
  return {
    async write(event) {
      store(event);
    },
    close() {},
  };
}

/** One contender in a scenario: builds its setup, returns the operation to time. */
interface Contender {
  name: string;
  /** Returns the operation; `undefined` when this contender has no equivalent. */
  prepare(): (() => unknown) | undefined;
}

/** The peers of scenarios 1 and 7: each gets `n` copies of the same listener. */
// Scenario 7 hands async listeners to emitters that ignore their promises on purpose: that is
// the behaviour being compared.
/* eslint-disable @typescript-eslint/no-misused-promises */
function emitterPeers(
  n: number,
  listener: () => (event: Event) => void | Promise<void>,
): Contender[] {
  return [
    {
      name: 'EventEmitter',
      prepare() {
        const emitter = new NodeEventEmitter();
        emitter.setMaxListeners(0);
        for (let i = 0; i < n; i++) emitter.on('e', listener());
        return () => emitter.emit('e', EVENT);
      },
    },
    {
      name: 'EventTarget',
      prepare() {
        const target = new EventTarget();
        setMaxListeners(n + 1, target);
        for (let i = 0; i < n; i++) {
          const store = listener();
          target.addEventListener('e', (event) => store(event as unknown as Event));
        }
        // EventTarget can only dispatch an Event; one is reused, as the others reuse EVENT.
        const event = new Event('e');
        return () => target.dispatchEvent(event);
      },
    },
    {
      name: 'eventemitter3',
      prepare() {
        const emitter = new EventEmitter3();
        for (let i = 0; i < n; i++) emitter.on('e', listener());
        return () => emitter.emit('e', EVENT);
      },
    },
    {
      name: 'mitt',
      prepare() {
        const emitter = mitt<{ e: Event }>();
        for (let i = 0; i < n; i++) emitter.on('e', listener());
        return () => emitter.emit('e', EVENT);
      },
    },
    {
      name: 'emittery',
      prepare() {
        const emitter = new Emittery<{ e: Event }>();
        for (let i = 0; i < n; i++) emitter.on('e', listener());
        // emittery's emit is always asynchronous: it resolves once every listener has.
        return () => emitter.emit('e', EVENT);
      },
    },
    {
      name: 'RxJS Subject',
      prepare() {
        const subject = new Subject<Event>();
        for (let i = 0; i < n; i++) subject.subscribe(listener());
        return () => subject.next(EVENT);
      },
    },
  ];
}

/* eslint-enable @typescript-eslint/no-misused-promises */

// Not a library: the same sinks called by a bare loop, the least any broadcaster can cost.
const FLOOR = 'bare loop (floor)';

const PEERS = [
  FLOOR,
  'EventEmitter',
  'EventTarget',
  'eventemitter3',
  'mitt',
  'emittery',
  'RxJS Subject',
] as const;

function round(value: number): number {
  return Number(value.toPrecision(4));
}

function describeTiming(t: Timing): string {
  return `p50 ${round(t.p50)}, avg ${round(t.avg)}, p99 ${round(t.p99)}`;
}

async function measureAll(
  scenario: string,
  unit: string,
  contenders: Contender[],
  options: BenchOptions,
  perOp: number,
  notes: string,
): Promise<BenchRow> {
  const results: Record<string, number | null> = {};
  const spread: string[] = [];
  for (const contender of contenders) {
    const op = contender.prepare();
    if (op === undefined) {
      results[contender.name] = null;
      continue;
    }
    // Every contender starts from a collected heap, its setup promoted out of the young
    // generation, so none pays for the garbage of the one before or for a scavenge moving its
    // listeners mid-measurement.
    collect();
    const timing = await time(op, { quick: options.quick, perOp });
    results[contender.name] = round(timing.p50);
    spread.push(`${contender.name}: ${describeTiming(timing)}`);
  }
  const reference = GO_EVENTS[scenario];
  return {
    suite: SUITE,
    scenario,
    unit,
    better: 'lower',
    results,
    ...(reference === undefined ? {} : { reference: { 'go-events': reference } }),
    notes: `${notes} Median of mitata samples; ${spread.join('; ')}.`,
  };
}

/** Contenders with no equivalent get a null column, so every row has the same columns. */
function onlyEventsinks(prepare: () => () => unknown, peers: readonly string[]): Contender[] {
  return [
    { name: 'eventsinks', prepare },
    ...peers.map((name) => ({ name, prepare: () => undefined })),
  ];
}

// 1. Broadcast to N synchronous storing sinks.
async function broadcast(n: number, options: BenchOptions): Promise<BenchRow> {
  const contenders: Contender[] = [
    {
      name: 'eventsinks',
      prepare() {
        const broadcaster = new Broadcaster<Event>(Array.from({ length: n }, storingSink));
        return () => broadcaster.write(EVENT);
      },
    },
    {
      name: FLOOR,
      prepare() {
        const sinks = Array.from({ length: n }, storingSink);
        return () => {
          for (let i = 0; i < sinks.length; i++) void sinks[i]!.write(EVENT);
        };
      },
    },
    ...emitterPeers(n, storing),
  ];
  return measureAll(
    `Broadcast${n}`,
    'ns/event',
    contenders,
    options,
    1,
    `One event delivered to ${n} listeners that store it in a pre-allocated array; the bare loop calls the same sink objects; emittery awaits its asynchronous emit.`,
  );
}

// 2. Queue throughput: write a batch into a fresh Queue, then close, which flushes.
const QUEUE_BATCH = 10_000;

async function queueThroughput(options: BenchOptions): Promise<BenchRow> {
  return measureAll(
    'QueueThroughput',
    'ns/event',
    onlyEventsinks(
      () => async () => {
        const queue = new Queue<Event>(storingSink());
        // Unbounded: every write returns synchronously.
        for (let i = 0; i < QUEUE_BATCH; i++) void queue.write(EVENT);
        await queue.close();
      },
      PEERS,
    ),
    options,
    QUEUE_BATCH,
    `new Queue, ${QUEUE_BATCH} writes, close (flush); per event.`,
  );
}

// 2b. Heap held per event waiting in a Queue behind a sink that never finishes a write.
const WAITING = 1_000_000;

function heapUsed(): number {
  const stats = getHeapStatistics();
  return stats.used_heap_size + stats.malloced_memory;
}

/** Collects until what earlier work left behind (microtasks, weak callbacks) is gone too. */
async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    collect();
  }
  return heapUsed();
}

/**
 * Fills a Queue behind a blocked sink, reads the heap, then releases the queue. The caller reads
 * the heap again once this frame, the last holder of the queue, is gone.
 */
async function fillAndRelease(): Promise<{ held: number; waiting: number }> {
  let release!: () => void;
  const blocked: Sink<Event> = {
    write: () => new Promise<void>((resolve) => (release = resolve)),
    close() {},
  };
  const queue = new Queue<Event>(blocked, { onDrop() {} });
  for (let i = 0; i < WAITING; i++) void queue.write(EVENT);
  // settledHeap() lets the drain start: one event is in the blocked write, the rest wait.
  const held = await settledHeap();
  const waiting = queue.size;
  // Drop what waits (onDrop is a no-op) and free the blocked write. Measured as what releasing
  // the queue frees, not as growth, so garbage that earlier work leaves to be freed later can
  // only overstate the figure.
  const controller = new AbortController();
  const closed = queue.close({ signal: controller.signal });
  controller.abort();
  release();
  await closed;
  return { held, waiting };
}

async function queueHeap(): Promise<BenchRow> {
  const RUNS = 5;
  const samples: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const { held, waiting } = await fillAndRelease();
    samples.push((held - (await settledHeap())) / waiting);
  }
  samples.sort((a, b) => a - b);
  const median = samples[(RUNS - 1) / 2]!;
  return {
    suite: SUITE,
    scenario: 'QueueHeap',
    unit: 'bytes/event',
    better: 'lower',
    results: { eventsinks: round(median), ...Object.fromEntries(PEERS.map((p) => [p, null])) },
    reference: { 'go-events': GO_EVENTS.QueueHeap! },
    notes: `Heap (V8 used + malloced) freed by releasing a Queue that held ${WAITING - 1} events behind a blocked sink (full GCs before and after), per waiting event; median of ${RUNS} (${samples.map(round).join(', ')}).`,
  };
}

// 3. RetryingSink(Breaker) over a sink that never fails.
async function retryNoFail(options: BenchOptions): Promise<BenchRow> {
  return measureAll(
    'RetryNoFail',
    'ns/write',
    onlyEventsinks(() => {
      const sink = new RetryingSink(storingSink(), new Breaker(3, 1));
      return () => sink.write(EVENT);
    }, PEERS),
    options,
    1,
    'RetryingSink(storing sink, Breaker(3, 1 ms)); every write succeeds at once.',
  );
}

// 4. Filter passing half of the events to a counting sink.
async function filterHalf(options: BenchOptions): Promise<BenchRow> {
  return measureAll(
    'FilterHalf',
    'ns/write',
    onlyEventsinks(() => {
      let count = 0;
      const counting: Sink<number> = {
        write() {
          count++;
        },
        close() {},
      };
      const filter = new Filter(counting, (n: number) => (n & 1) === 0);
      let i = 0;
      return () => {
        void filter.write(i++);
        return count;
      };
    }, PEERS),
    options,
    1,
    'Filter(counting sink, even integers); half the writes pass.',
  );
}

// 5. Channel with a buffer of 1024, one producer, one `for await` consumer.
const CHANNEL_BATCH = 10_000;

async function channelBuffered(options: BenchOptions): Promise<BenchRow> {
  return measureAll(
    'ChannelBuffered',
    'ns/event',
    onlyEventsinks(
      () => async () => {
        const channel = new Channel<number>(1024);
        const consumer = (async () => {
          let sum = 0;
          for await (const value of channel) sum += value;
          return sum;
        })();
        for (let i = 0; i < CHANNEL_BATCH; i++) {
          const accepted = channel.write(i);
          if (accepted !== undefined) await accepted;
        }
        channel.close();
        if ((await consumer) !== (CHANNEL_BATCH * (CHANNEL_BATCH - 1)) / 2) {
          throw new Error('the channel lost events');
        }
      },
      PEERS,
    ),
    options,
    CHANNEL_BATCH,
    `new Channel(1024), ${CHANNEL_BATCH} events from one producer to one for-await consumer; per event.`,
  );
}

// 6. Pipeline10: Broadcaster → 10 × Queue(RetryingSink(Breaker(5, 1000), sink)).
const PIPELINE_BATCH = 10_000;

async function pipeline10(options: BenchOptions): Promise<BenchRow> {
  return measureAll(
    'Pipeline10',
    'ns/event',
    onlyEventsinks(
      () => async () => {
        const broadcaster = new Broadcaster<Event>(
          Array.from(
            { length: 10 },
            () => new Queue(new RetryingSink(storingSink(), new Breaker(5, 1000))),
          ),
        );
        // Every sink below the Broadcaster is an unbounded Queue, so writes return synchronously.
        for (let i = 0; i < PIPELINE_BATCH; i++) void broadcaster.write(EVENT);
        await broadcaster.close();
      },
      PEERS,
    ),
    options,
    PIPELINE_BATCH,
    `Pipeline built, ${PIPELINE_BATCH} events written, closed (every queue flushed); per event.`,
  );
}

// 7. Async fan-out: 10 sinks whose write is async, awaited per event.
async function asyncFanOut(options: BenchOptions): Promise<BenchRow> {
  const asyncStoring = (): ((event: Event) => Promise<void>) => {
    const store = storing();
    return async (event) => store(event);
  };
  const contenders: Contender[] = [
    {
      name: 'eventsinks',
      prepare() {
        const broadcaster = new Broadcaster<Event>(Array.from({ length: 10 }, asyncStoringSink));
        // Returned, not awaited here: mitata awaits it, as it awaits emittery's emit.
        return () => broadcaster.write(EVENT);
      },
    },
    {
      name: FLOOR,
      prepare() {
        const sinks = Array.from({ length: 10 }, asyncStoringSink);
        return async () => {
          for (let i = 0; i < sinks.length; i++) await sinks[i]!.write(EVENT);
        };
      },
    },
    ...emitterPeers(10, asyncStoring),
  ];
  return measureAll(
    'AsyncFanOut10',
    'ns/event',
    contenders,
    options,
    1,
    'Ten async listeners that store the event. eventsinks awaits each in turn (its documented order), emittery awaits all of them together, the bare loop awaits each in turn; EventEmitter, EventTarget, eventemitter3, mitt and RxJS call them and drop the promises (they cannot await).',
  );
}

const suite: BenchSuite = {
  name: SUITE,
  async run(options) {
    // The heap figure first, while the heap holds nothing from the timing scenarios.
    const heap = await queueHeap();
    const rows: BenchRow[] = [];
    for (const n of [10, 100, 1000, 10_000]) rows.push(await broadcast(n, options));
    rows.push(await queueThroughput(options));
    rows.push(heap);
    rows.push(await retryNoFail(options));
    rows.push(await filterHalf(options));
    rows.push(await channelBuffered(options));
    rows.push(await pipeline10(options));
    rows.push(await asyncFanOut(options));
    return rows;
  },
};

export default suite;
