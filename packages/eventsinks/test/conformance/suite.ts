// The shared broker conformance suite: the same cases, run once per adapter against the real
// broker on this machine. Ported in idea from Watermill's pub/sub tests, plus what they lack
// (ordering under concurrency 1, aborted writes, poison messages, broker restarts).
//
// Every assertion counts unique event ids: at-least-once delivery allows duplicates, so they are
// counted and reported (console.log and t.diagnostic), never failed on; a lost event fails.
// Bounds are generous and nothing asserts on timing: the suite must pass on a loaded 2-core box.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Sink } from '../../src/Sink.js';
import { sleep, waitFor } from '../../src/test-utils.js';
import type {
  BrokerEndpoint,
  ConformanceEvent,
  ConformanceFixture,
  FixtureSinkOptions,
  FixtureSource,
  FixtureSourceOptions,
  PrivateBroker,
} from './types.js';

/** True when running in CI, where a missing service must fail rather than skip. */
export const IN_CI = ((): boolean => {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
})();

// ---------------------------------------------------------------------------------------------
// Helpers

/** What the suite uses of node:test's TestContext (not exported by @types/node 20). */
interface TestContext {
  diagnostic(message: string): void;
  skip(message?: string): void;
}

/** `n` events for `topic`, ids unique to the topic, with non-ASCII bodies to check intactness. */
export function makeEvents(topic: string, n: number, from = 0): ConformanceEvent[] {
  return Array.from({ length: n }, (_, i) => {
    const seq = from + i;
    return { id: `${topic}#${seq}`, seq, body: `événement ${seq} — ✓ 事件 ${'x'.repeat(seq % 7)}` };
  });
}

/** Rejects with `what` if `promise` has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface HungWrite {
  event: ConformanceEvent;
  resolve(): void;
  reject(error: Error): void;
}

/** How a {@link Recorder} behaves on each write. */
interface RecorderBehaviour {
  /** Each write waits this long before resolving. */
  delay?: number;
  /** Reject the first `failFirst` writes (whatever the event). */
  failFirst?: number;
  /** Reject every write for which this returns true. */
  fail?(event: ConformanceEvent): boolean;
  /** Never settle writes for which this returns true (until `release()`). */
  hang?(event: ConformanceEvent): boolean;
}

/**
 * The local destination every source writes into: records each successful write by id, counts
 * attempts and concurrency, and can fail, delay or hang writes on demand.
 */
export class Recorder implements Sink<ConformanceEvent> {
  /** id → number of successful writes. */
  readonly delivered = new Map<string, number>();
  /** id → the first copy delivered (to compare payloads). */
  readonly firstCopy = new Map<string, ConformanceEvent>();
  /** Successful writes in completion order. */
  readonly order: ConformanceEvent[] = [];
  /** id → write attempts (successful or not). */
  readonly attempts = new Map<string, number>();
  readonly hung: HungWrite[] = [];
  inFlight = 0;
  maxInFlight = 0;
  writes = 0;
  #failFirst: number;

  constructor(private readonly behaviour: RecorderBehaviour = {}) {
    this.#failFirst = behaviour.failFirst ?? 0;
  }

  get unique(): number {
    return this.delivered.size;
  }

  write(event: ConformanceEvent): Promise<void> {
    this.writes++;
    this.attempts.set(event.id, (this.attempts.get(event.id) ?? 0) + 1);
    this.inFlight++;
    if (this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
    const { behaviour } = this;
    if (this.#failFirst > 0) {
      this.#failFirst--;
      this.inFlight--;
      return Promise.reject(new Error(`planned failure of ${event.id}`));
    }
    if (behaviour.fail?.(event)) {
      this.inFlight--;
      return Promise.reject(new Error(`poison ${event.id}`));
    }
    if (behaviour.hang?.(event)) {
      return new Promise<void>((resolve, reject) => {
        this.hung.push({
          event,
          resolve: () => {
            this.inFlight--;
            this.#record(event);
            resolve();
          },
          reject: (error: Error) => {
            this.inFlight--;
            reject(error);
          },
        });
      });
    }
    const done = (): void => {
      this.inFlight--;
      this.#record(event);
    };
    if (behaviour.delay !== undefined && behaviour.delay > 0) {
      return new Promise<void>((resolve) =>
        setTimeout(() => {
          done();
          resolve();
        }, behaviour.delay),
      );
    }
    // Asynchronous even when instant, as a real destination would be.
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        done();
        resolve();
      }),
    );
  }

  /** Settles every hung write successfully (late: the source may be gone by then). */
  releaseHung(): void {
    for (const write of this.hung.splice(0)) write.resolve();
  }

  close(): void {}

  #record(event: ConformanceEvent): void {
    this.delivered.set(event.id, (this.delivered.get(event.id) ?? 0) + 1);
    if (!this.firstCopy.has(event.id)) this.firstCopy.set(event.id, event);
    this.order.push(event);
  }
}

/** Unique ids across several recorders. */
function unionSize(recorders: readonly Recorder[]): number {
  if (recorders.length === 1) return recorders[0]!.unique;
  const ids = new Set<string>();
  for (const r of recorders) for (const id of r.delivered.keys()) ids.add(id);
  return ids.size;
}

/** One line of the final report. */
export interface Tally {
  adapter: string;
  case: string;
  expected: number;
  delivered: number;
  duplicates: number;
  lost: number;
  seconds: number;
}

const tallies: Tally[] = [];

/**
 * Counts what `recorders` received against `events`: unique delivered, duplicates (extra
 * copies), lost; reports it, then asserts nothing was lost, nothing unexpected arrived, and every
 * payload arrived intact.
 */
function tally(
  t: TestContext,
  adapter: string,
  name: string,
  events: readonly ConformanceEvent[],
  recorders: readonly Recorder[],
  started: number,
): Tally {
  const expected = new Map(events.map((e) => [e.id, e]));
  const counts = new Map<string, number>();
  for (const r of recorders) {
    for (const [id, n] of r.delivered) counts.set(id, (counts.get(id) ?? 0) + n);
  }
  let delivered = 0;
  let duplicates = 0;
  const unexpected: string[] = [];
  for (const [id, n] of counts) {
    if (!expected.has(id)) unexpected.push(id);
    else delivered++;
    duplicates += n - 1;
  }
  const lost = [...expected.keys()].filter((id) => !counts.has(id));
  const row: Tally = {
    adapter,
    case: name,
    expected: expected.size,
    delivered,
    duplicates,
    lost: lost.length,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
  tallies.push(row);
  const line = `[conformance ${adapter}] ${name}: delivered ${delivered}/${expected.size}, duplicates ${duplicates}, lost ${lost.length} (${row.seconds} s)`;
  console.log(line);
  t.diagnostic(line);
  assert.deepEqual(lost.slice(0, 10), [], `${lost.length} events lost`);
  assert.deepEqual(unexpected.slice(0, 10), [], 'events that were never published arrived');
  for (const r of recorders) {
    for (const [id, copy] of r.firstCopy) {
      const original = expected.get(id);
      if (original) assert.deepEqual(copy, original, `event ${id} arrived altered`);
    }
  }
  return row;
}

/** Writes `events` through `sink` with up to `window` writes outstanding. */
async function publish(
  sink: Sink<ConformanceEvent>,
  events: readonly ConformanceEvent[],
  window = 1,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < events.length) {
      const event = events[next++]!;
      await sink.write(event);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, events.length) }, worker));
}

/**
 * Like {@link publish}, but every write is retried (after `retryDelay` ms) until the broker
 * accepts it: the producer side of the broker-down and restart cases. `onAccepted` runs with the
 * count of accepted events after each success.
 */
async function publishRetrying(
  sink: Sink<ConformanceEvent>,
  events: readonly ConformanceEvent[],
  window: number,
  onAccepted: (accepted: number) => void,
  pace?: { every: number; ms: number },
): Promise<{ failures: number }> {
  let next = 0;
  let accepted = 0;
  let failures = 0;
  const worker = async (): Promise<void> => {
    while (next < events.length) {
      const index = next++;
      const event = events[index]!;
      if (pace && index > 0 && index % pace.every === 0) await sleep(pace.ms);
      for (;;) {
        try {
          await sink.write(event);
          break;
        } catch {
          failures++;
          await sleep(100);
        }
      }
      onAccepted(++accepted);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, events.length) }, worker));
  return { failures };
}

/** What a test opened, so it is closed however the test ends. */
class Resources {
  readonly sinks: Sink<ConformanceEvent>[] = [];
  readonly sources: FixtureSource[] = [];
  readonly topics: { topic: string; endpoint?: BrokerEndpoint }[] = [];
  readonly brokers: PrivateBroker[] = [];
  #groups = 0;

  constructor(private readonly fixture: ConformanceFixture) {}

  topic(endpoint?: BrokerEndpoint): string {
    const topic = this.fixture.topic();
    this.topics.push(endpoint ? { topic, endpoint } : { topic });
    return topic;
  }

  group(label = 'g'): string {
    return `${label}-${++this.#groups}-${Math.random().toString(36).slice(2, 8)}`;
  }

  async sink(options: FixtureSinkOptions): Promise<Sink<ConformanceEvent>> {
    const sink = await this.fixture.createSink(options);
    this.sinks.push(sink);
    return sink;
  }

  async source(dst: Sink<ConformanceEvent>, options: FixtureSourceOptions): Promise<FixtureSource> {
    const source = await within(this.fixture.createSource(dst, options), 30_000, 'createSource');
    this.sources.push(source);
    return source;
  }

  async broker(): Promise<PrivateBroker> {
    const start = this.fixture.startPrivateBroker;
    if (!start) throw new Error('no private broker');
    const broker = await start.call(this.fixture);
    this.brokers.push(broker);
    return broker;
  }

  async release(): Promise<void> {
    // Sources first (they may write dead letters), with a deadline: a test that failed may have
    // left a write hanging. A source whose close hangs anyway is crashed.
    await Promise.all(
      this.sources.map(async (source) => {
        try {
          await within(source.close({ signal: AbortSignal.timeout(3_000) }), 10_000, 'close');
        } catch {
          await source.crash().catch(() => {});
        }
      }),
    );
    await Promise.all(
      this.sinks.map((sink) =>
        within(Promise.resolve(sink.close()), 10_000, 'sink close').catch(() => {}),
      ),
    );
    await Promise.all(
      this.topics.map(({ topic, endpoint }) =>
        within(this.fixture.cleanup(topic, endpoint), 10_000, 'cleanup').catch(() => {}),
      ),
    );
    await Promise.all(this.brokers.map((b) => b.close().catch(() => {})));
  }
}

type Body = (t: TestContext, r: Resources) => Promise<void>;

// ---------------------------------------------------------------------------------------------
// The suite

/**
 * Registers the conformance cases for one adapter as a `describe` block. Resolves once they are
 * registered. When the broker does not answer: outside CI the block is skipped with a loud
 * message naming the service; in CI (`CI=true`) a failing test says which service is missing.
 *
 * @example
 * ```ts
 * // test/conformance/redis.test.ts
 * await runConformance(redisFixture);
 * ```
 */
export async function runConformance(fixture: ConformanceFixture): Promise<void> {
  const title = `conformance: ${fixture.name}`;
  let unavailable: string | undefined;
  try {
    await within(fixture.check(), 10_000, `${fixture.service} check`);
  } catch (error) {
    unavailable = `${fixture.service} does not answer: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (unavailable !== undefined) {
    if (IN_CI) {
      describe(title, () => {
        it(`needs ${fixture.service}`, () => {
          assert.fail(`${unavailable} (CI=true: a missing service is a failure)`);
        });
      });
    } else {
      const banner = '!'.repeat(100);
      console.error(
        `\n${banner}\n!! SKIPPING the ${fixture.name} conformance suite: ${unavailable}\n!! Start ${fixture.service} to run it (in CI this fails).\n${banner}\n`,
      );
      describe(title, { skip: unavailable }, () => {
        it('skipped: service missing', () => {});
      });
    }
    return;
  }

  const name = fixture.name;
  const test = (label: string, timeout: number, body: Body): void => {
    it(label, { timeout }, async (t) => {
      const resources = new Resources(fixture);
      try {
        await body(t, resources);
      } finally {
        await resources.release();
      }
    });
  };
  /** For the private-broker cases: skip loudly outside CI when the fixture cannot run one. */
  const privateBroker = async (
    t: TestContext,
    r: Resources,
  ): Promise<PrivateBroker | undefined> => {
    if (!fixture.startPrivateBroker) {
      const message = `${name} fixture cannot run a private broker: broker-down/restart case skipped`;
      console.error(`!! ${message}`);
      t.skip(message);
      return undefined;
    }
    try {
      return await r.broker();
    } catch (error) {
      const message = `could not start a private ${fixture.service}: ${error instanceof Error ? error.message : String(error)}`;
      if (IN_CI) throw new Error(message, { cause: error });
      console.error(`!! SKIPPING: ${message}`);
      t.skip(message);
      return undefined;
    }
  };

  describe(title, { concurrency: false }, () => {
    after(async () => {
      await fixture.close();
      const mine = tallies.filter((row) => row.adapter === name);
      if (mine.length > 0) {
        console.log(`\n[conformance ${name}] tallies`);
        console.table(mine);
      }
    });

    test('publish/subscribe: 100 events arrive intact', 60_000, async (t, r) => {
      const started = Date.now();
      const topic = r.topic();
      const recorder = new Recorder();
      await r.source(recorder, { topic, group: r.group() });
      const sink = await r.sink({ topic });
      const events = makeEvents(topic, 100);
      await publish(sink, events);
      await waitFor(
        () => recorder.unique >= 100,
        30_000,
        () => `100 events (${recorder.unique})`,
      );
      tally(t, name, 'publish/subscribe 100', events, [recorder], started);
    });

    test(
      'concurrent sources in one group receive everything between them',
      90_000,
      async (t, r) => {
        const started = Date.now();
        const topic = r.topic();
        const group = r.group();
        const recorders = [new Recorder(), new Recorder(), new Recorder()];
        for (const recorder of recorders) await r.source(recorder, { topic, group });
        const sink = await r.sink({ topic, maxInFlight: 16 });
        const events = makeEvents(topic, 600);
        await publish(sink, events, 16);
        await waitFor(
          () => unionSize(recorders) >= 600,
          60_000,
          () => `600 events (${unionSize(recorders)})`,
        );
        tally(t, name, 'concurrent sources, one group', events, recorders, started);
        t.diagnostic(`split between sources: ${recorders.map((x) => x.unique).join(' / ')}`);
      },
    );

    test('topic isolation: a source receives only its own topic', 60_000, async (t, r) => {
      const started = Date.now();
      const topicA = r.topic();
      const topicB = r.topic();
      const a = new Recorder();
      const b = new Recorder();
      await r.source(a, { topic: topicA, group: r.group() });
      await r.source(b, { topic: topicB, group: r.group() });
      const sinkA = await r.sink({ topic: topicA });
      const sinkB = await r.sink({ topic: topicB });
      const eventsA = makeEvents(topicA, 50);
      const eventsB = makeEvents(topicB, 50);
      await Promise.all([publish(sinkA, eventsA), publish(sinkB, eventsB)]);
      await waitFor(() => a.unique >= 50 && b.unique >= 50, 30_000, 'both topics');
      await sleep(300); // room for a stray message to show up
      tally(t, name, 'topic isolation (A)', eventsA, [a], started);
      tally(t, name, 'topic isolation (B)', eventsB, [b], started);
    });

    test('two groups each receive everything', 60_000, async (t, r) => {
      const started = Date.now();
      const topic = r.topic();
      const first = new Recorder();
      const second = new Recorder();
      await r.source(first, { topic, group: r.group('one') });
      await r.source(second, { topic, group: r.group('two') });
      const sink = await r.sink({ topic, maxInFlight: 8 });
      const events = makeEvents(topic, 200);
      await publish(sink, events, 8);
      await waitFor(
        () => first.unique >= 200 && second.unique >= 200,
        30_000,
        () => `both groups (${first.unique}, ${second.unique})`,
      );
      tally(t, name, 'two groups (first)', events, [first], started);
      tally(t, name, 'two groups (second)', events, [second], started);
    });

    test(
      'a sink that rejects the first k writes still ends with everything delivered',
      60_000,
      async (t, r) => {
        const started = Date.now();
        const topic = r.topic();
        const group = r.group();
        const k = 5;
        const recorder = new Recorder({ failFirst: k });
        await r.source(recorder, { topic, group, maxDeliveries: k + 10, retryDelay: 50 });
        const sink = await r.sink({ topic });
        const events = makeEvents(topic, 50);
        await publish(sink, events);
        await waitFor(
          () => recorder.unique >= 50,
          40_000,
          () => `50 events (${recorder.unique})`,
        );
        tally(t, name, `first ${k} writes rejected`, events, [recorder], started);
        assert.ok(
          recorder.writes >= 50 + k,
          `expected at least ${50 + k} attempts, saw ${recorder.writes}`,
        );
        const dead = await fixture.readDeadLetters(topic, group);
        assert.deepEqual(dead, [], 'nothing may be dead-lettered: maxDeliveries was not reached');
      },
    );

    test(
      'with concurrency 1 the next event is not delivered before the previous write resolved',
      60_000,
      async (t, r) => {
        const started = Date.now();
        const topic = r.topic();
        const recorder = new Recorder({ delay: 3 });
        await r.source(recorder, { topic, group: r.group(), concurrency: 1 });
        const sink = await r.sink({ topic });
        const events = makeEvents(topic, 100);
        await publish(sink, events);
        await waitFor(
          () => recorder.unique >= 100,
          30_000,
          () => `100 events (${recorder.unique})`,
        );
        tally(t, name, 'concurrency 1 ordered', events, [recorder], started);
        assert.equal(recorder.maxInFlight, 1, 'two writes overlapped');
        assert.deepEqual(
          recorder.order.map((e) => e.seq),
          events.map((e) => e.seq),
          'delivered out of order',
        );
      },
    );

    test(
      'close and reopen 10 times while consuming 5,000 events loses nothing',
      150_000,
      async (t, r) => {
        const started = Date.now();
        const topic = r.topic();
        const group = r.group();
        const recorder = new Recorder();
        const total = 5_000;
        // The group must exist before the first publish, so the first source comes first.
        let source = await r.source(recorder, { topic, group, redeliverAfter: 1_000 });
        const sink = await r.sink({ topic, maxInFlight: 32 });
        const events = makeEvents(topic, total);
        const publishing = publish(sink, events, 32);
        for (let cycle = 1; cycle <= 10; cycle++) {
          const target = Math.min(total, Math.floor((total * cycle) / 12));
          await waitFor(
            () => recorder.unique >= target,
            60_000,
            () => `cycle ${cycle}: ${target} events (${recorder.unique})`,
          );
          await within(source.close(), 30_000, `close #${cycle}`);
          source = await r.source(recorder, { topic, group, redeliverAfter: 1_000 });
        }
        await publishing;
        await waitFor(
          () => recorder.unique >= total,
          90_000,
          () => `${total} events (${recorder.unique})`,
        );
        tally(t, name, 'close/reopen 10x, 5000 events', events, [recorder], started);
      },
    );

    test('sources closed concurrently lose nothing', 120_000, async (t, r) => {
      const started = Date.now();
      const topic = r.topic();
      const group = r.group();
      const total = 2_000;
      const recorders = [1, 2, 3, 4].map(() => new Recorder({ delay: 1 }));
      const sources: FixtureSource[] = [];
      for (const recorder of recorders) {
        sources.push(
          await r.source(recorder, { topic, group, concurrency: 4, redeliverAfter: 1_000 }),
        );
      }
      const sink = await r.sink({ topic, maxInFlight: 32 });
      const events = makeEvents(topic, total);
      await publish(sink, events, 32);
      await waitFor(() => unionSize(recorders) >= total / 4, 60_000, 'a quarter of the events');
      await within(Promise.all(sources.map((s) => s.close())), 30_000, 'concurrent close');
      const last = new Recorder();
      await r.source(last, { topic, group, concurrency: 4, redeliverAfter: 1_000 });
      const all = [...recorders, last];
      await waitFor(
        () => unionSize(all) >= total,
        90_000,
        () => `${total} events (${unionSize(all)})`,
      );
      tally(t, name, 'sources closed concurrently', events, all, started);
    });

    test(
      'a source abandoned without close has its messages redelivered to a peer',
      90_000,
      async (t, r) => {
        const started = Date.now();
        const topic = r.topic();
        const group = r.group();
        const total = 200;
        // The abandoned source never finishes a write, so everything it took must be redelivered.
        const abandoned = new Recorder({ hang: () => true });
        const peer = new Recorder();
        const crashing = await r.source(abandoned, {
          topic,
          group,
          concurrency: 4,
          redeliverAfter: 1_000,
        });
        const sink = await r.sink({ topic, maxInFlight: 16 });
        const events = makeEvents(topic, total);
        // Publish before the peer exists, so the abandoned source surely takes some.
        await publish(sink, events.slice(0, 20), 16);
        await waitFor(
          () => abandoned.hung.length > 0,
          30_000,
          'the abandoned source to take a message',
        );
        await r.source(peer, { topic, group, concurrency: 4, redeliverAfter: 1_000 });
        await publish(sink, events.slice(20), 16);
        await crashing.crash();
        const taken = abandoned.hung.length;
        await waitFor(
          () => peer.unique >= total,
          60_000,
          () => `${total} events at the peer (${peer.unique})`,
        );
        // Late completions of the abandoned writes must not throw anywhere.
        abandoned.releaseHung();
        tally(t, name, 'abandoned source -> peer', events, [peer], started);
        t.diagnostic(`the abandoned source held ${taken} unfinished writes`);
      },
    );

    test('an aborted write is not acknowledged', 60_000, async (t, r) => {
      const started = Date.now();
      const topic = r.topic();
      const group = r.group();
      const hanging = new Recorder({ hang: () => true });
      const source = await r.source(hanging, { topic, group, redeliverAfter: 1_000 });
      const sink = await r.sink({ topic });
      const events = makeEvents(topic, 3);
      await publish(sink, events);
      await waitFor(() => hanging.hung.length > 0, 30_000, 'the write to start');
      await within(
        source.close({ signal: AbortSignal.timeout(300) }),
        15_000,
        'close with an aborted deadline',
      );
      // Completing the write after the source gave up on it must not acknowledge it now.
      hanging.releaseHung();
      await sleep(200);
      const peer = new Recorder();
      await r.source(peer, { topic, group, redeliverAfter: 1_000 });
      await waitFor(
        () => peer.unique >= events.length,
        40_000,
        () => `${events.length} events at the peer (${peer.unique})`,
      );
      tally(t, name, 'aborted write not acknowledged', events, [peer], started);
    });

    test(
      'poison messages (not JSON, wrong shape) go to the dead letter and do not block',
      60_000,
      async (t, r) => {
        const started = Date.now();
        const topic = r.topic();
        const group = r.group();
        const recorder = new Recorder();
        await r.source(recorder, { topic, group, maxDeliveries: 3, retryDelay: 50 });
        const sink = await r.sink({ topic });
        const before = makeEvents(topic, 5);
        const afterwards = makeEvents(topic, 5, 5);
        await publish(sink, before);
        await fixture.publishRaw(topic, 'this is not JSON {');
        await fixture.publishRaw(topic, JSON.stringify({ hello: 'wrong shape' }));
        await publish(sink, afterwards);
        await waitFor(
          () => recorder.unique >= 10,
          30_000,
          () => `10 good events (${recorder.unique})`,
        );
        let dead = await fixture.readDeadLetters(topic, group);
        for (let i = 0; i < 300 && dead.length < 2; i++) {
          await sleep(100);
          dead = await fixture.readDeadLetters(topic, group);
        }
        tally(t, name, 'poison raw messages', [...before, ...afterwards], [recorder], started);
        assert.equal(dead.length, 2, `dead letters: ${JSON.stringify(dead)}`);
        for (const record of dead)
          assert.ok(record.reason.length > 0, 'a dead letter needs a reason');
        const raws = dead.map((d) => d.raw ?? '');
        assert.ok(
          raws.some((raw) => raw.includes('this is not JSON {')),
          `raw kept: ${JSON.stringify(raws)}`,
        );
        t.diagnostic(`reasons: ${dead.map((d) => d.reason).join(' | ')}`);
      },
    );

    test('a poison event lands in the dead letter after maxDeliveries', 60_000, async (t, r) => {
      const started = Date.now();
      const topic = r.topic();
      const group = r.group();
      const maxDeliveries = 3;
      const events = makeEvents(topic, 10);
      const poison = events[3]!;
      const recorder = new Recorder({ fail: (e) => e.id === poison.id });
      await r.source(recorder, { topic, group, maxDeliveries, retryDelay: 50 });
      const sink = await r.sink({ topic });
      await publish(sink, events);
      const good = events.filter((e) => e !== poison);
      await waitFor(
        () => recorder.unique >= good.length,
        30_000,
        () => `${good.length} good events (${recorder.unique})`,
      );
      let dead = await fixture.readDeadLetters(topic, group);
      for (let i = 0; i < 300 && dead.length < 1; i++) {
        await sleep(100);
        dead = await fixture.readDeadLetters(topic, group);
      }
      tally(t, name, 'poison event -> dead letter', good, [recorder], started);
      assert.equal(dead.length, 1, `dead letters: ${JSON.stringify(dead)}`);
      assert.equal(dead[0]!.id, poison.id);
      assert.ok(dead[0]!.reason.length > 0);
      const attempts = recorder.attempts.get(poison.id) ?? 0;
      assert.ok(
        attempts >= 1 && attempts <= maxDeliveries,
        `poison delivered ${attempts} times (max ${maxDeliveries})`,
      );
      t.diagnostic(`poison attempts: ${attempts}; reason: ${dead[0]!.reason}`);
    });

    test(
      'maxDeliveries counts failed writes only: redeliveries after crashes never dead-letter a healthy event',
      90_000,
      async (t, r) => {
        const started = Date.now();
        const topic = r.topic();
        const group = r.group();
        const events = makeEvents(topic, 3);
        // Two sources in a row take the events and crash before any write finished: each
        // redelivery is a delivery, none is a failed write. The group exists before the
        // publish (the first source creates it).
        for (let round = 0; round < 2; round++) {
          const hanging = new Recorder({ hang: () => true });
          const crashing = await r.source(hanging, {
            topic,
            group,
            maxDeliveries: 1,
            redeliverAfter: 1_000,
          });
          if (round === 0) await publish(await r.sink({ topic }), events);
          await waitFor(() => hanging.hung.length > 0, 30_000, `round ${round}: a write to start`);
          await crashing.crash();
          hanging.releaseHung();
        }
        const healthy = new Recorder();
        await r.source(healthy, { topic, group, maxDeliveries: 1, redeliverAfter: 1_000 });
        await waitFor(
          () => healthy.unique >= events.length,
          60_000,
          () => `${events.length} events at the healthy source (${healthy.unique})`,
        );
        tally(t, name, 'crash loop, maxDeliveries 1', events, [healthy], started);
        assert.deepEqual(await fixture.readDeadLetters(topic, group), [], 'nothing dead-lettered');
      },
    );

    test(
      'a failing event is dead-lettered after exactly maxDeliveries failed writes; Infinity retries on',
      60_000,
      async (t, r) => {
        const started = Date.now();
        const maxDeliveries = 3;
        const topic = r.topic();
        const group = r.group();
        const events = makeEvents(topic, 4);
        const poison = events[1]!;
        const recorder = new Recorder({ fail: (e) => e.id === poison.id });
        await r.source(recorder, { topic, group, maxDeliveries, retryDelay: 20 });
        // Infinity (on a topic of its own, since a dead letter may be per topic): an event that
        // fails 6 times is retried until it is taken.
        const other = r.topic();
        const otherGroup = r.group('infinity');
        const otherEvents = makeEvents(other, 4);
        const stubbornId = otherEvents[1]!.id;
        const stubborn: Recorder = new Recorder({
          fail: (e) => e.id === stubbornId && (stubborn.attempts.get(e.id) ?? 0) <= 6,
        });
        await r.source(stubborn, {
          topic: other,
          group: otherGroup,
          maxDeliveries: Infinity,
          retryDelay: 20,
        });
        await publish(await r.sink({ topic }), events);
        await publish(await r.sink({ topic: other }), otherEvents);
        let dead = await fixture.readDeadLetters(topic, group);
        for (let i = 0; i < 300 && dead.length < 1; i++) {
          await sleep(100);
          dead = await fixture.readDeadLetters(topic, group);
        }
        assert.equal(dead.length, 1, `dead letters: ${JSON.stringify(dead)}`);
        assert.equal(recorder.attempts.get(poison.id), maxDeliveries, 'attempts of the poison');
        await waitFor(
          () => stubborn.unique >= otherEvents.length,
          40_000,
          () => `${otherEvents.length} events with maxDeliveries Infinity (${stubborn.unique})`,
        );
        tally(t, name, 'maxDeliveries Infinity', otherEvents, [stubborn], started);
        assert.equal(stubborn.attempts.get(stubbornId), 7);
        assert.deepEqual(await fixture.readDeadLetters(other, otherGroup), []);
      },
    );

    test(
      'retryDelay does not block other events, even with concurrency 1',
      90_000,
      async (t, r) => {
        const started = Date.now();
        const topic = r.topic();
        const group = r.group();
        const events = makeEvents(topic, 10);
        const first = events[0]!;
        // The first event's first write fails; its retry waits 8 s. The others must not wait.
        const recorder: Recorder = new Recorder({
          fail: (e) => e.id === first.id && recorder.attempts.get(e.id) === 1,
        });
        await r.source(recorder, { topic, group, concurrency: 1, retryDelay: 8_000 });
        const sink = await r.sink({ topic });
        await publish(sink, events);
        await waitFor(
          () => events.slice(1).every((e) => recorder.delivered.has(e.id)),
          30_000,
          () => `the 9 other events (${recorder.unique})`,
        );
        const waited = recorder.delivered.has(first.id);
        await waitFor(() => recorder.unique >= events.length, 40_000, 'the retried event');
        tally(t, name, 'retryDelay does not block', events, [recorder], started);
        assert.equal(waited, false, 'the other events were delivered during the retry delay');
        assert.equal(recorder.maxInFlight, 1, 'concurrency 1 still holds');
      },
    );

    test('a sink writing while the broker is down rejects', 90_000, async (t, r) => {
      const broker = await privateBroker(t, r);
      if (!broker) return;
      const { endpoint } = broker;
      const topic = r.topic(endpoint);
      const sink = await r.sink({ topic, endpoint, timeout: 2_000 });
      const [first, second, third] = makeEvents(topic, 3);
      await sink.write(first!);
      await broker.stop();
      await assert.rejects(
        within(Promise.resolve(sink.write(second!)), 30_000, 'write while down'),
      );
      await broker.start();
      // Back up: the same sink recovers (the client reconnects) and accepts writes again.
      let accepted = false;
      const deadline = Date.now() + 30_000;
      while (!accepted && Date.now() < deadline) {
        try {
          await sink.write(third!);
          accepted = true;
        } catch {
          await sleep(200);
        }
      }
      assert.ok(accepted, 'the sink did not recover after the broker came back');
      console.log(`[conformance ${name}] broker down: write rejected, recovered after restart`);
    });

    test('broker restart at 1/3 and 1/2 of 10,000 events: nothing lost', 150_000, async (t, r) => {
      const broker = await privateBroker(t, r);
      if (!broker) return;
      const started = Date.now();
      const { endpoint } = broker;
      const topic = r.topic(endpoint);
      const group = r.group();
      const total = 10_000;
      const recorder = new Recorder();
      await r.source(recorder, {
        topic,
        group,
        endpoint,
        concurrency: 4,
        redeliverAfter: 2_000,
        retryDelay: 100,
      });
      const sink = await r.sink({ topic, endpoint, maxInFlight: 16, timeout: 2_000 });
      const events = makeEvents(topic, total);
      const restarts: Promise<void>[] = [];
      const marks = [Math.ceil(total / 3), Math.ceil(total / 2)];
      let restarting: Promise<void> = Promise.resolve();
      const consumedAt: number[] = [];
      const { failures } = await publishRetrying(
        sink,
        events,
        16,
        (accepted) => {
          if (marks.length > 0 && accepted >= marks[0]!) {
            marks.shift();
            // One restart at a time; the producer keeps going and retries while it is down.
            restarting = restarting.then(async () => {
              consumedAt.push(recorder.unique);
              await broker.restart();
            });
            restarts.push(restarting);
          }
        },
        { every: 20, ms: 2 },
      );
      await Promise.all(restarts);
      assert.equal(restarts.length, 2, 'both restarts happened');
      await waitFor(
        () => recorder.unique >= total,
        120_000,
        () => `${total} events (${recorder.unique})`,
      );
      tally(t, name, 'broker restart at 1/3 and 1/2 of 10000', events, [recorder], started);
      const line = `[conformance ${name}] restart: ${failures} publish attempts failed and were retried; consumer had ${consumedAt.join(' and ')} events at the restarts`;
      console.log(line);
      t.diagnostic(line);
    });
  });
}
