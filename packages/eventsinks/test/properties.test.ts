// Property tests: random programs of write/add/remove/close over failing and slow sinks, checked
// against a simple reference model. The invariant everywhere: every accepted event reaches each
// sink it should reach exactly once, in write order, unless it was reported to a hook (onDrop /
// onError) — and then it was reported exactly once. `npm run test:long` runs 10× more programs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  BatchingSink,
  Breaker,
  Broadcaster,
  Filter,
  Queue,
  RetryingSink,
  SinkClosedError,
  isQueueFullError,
  maxAttempts,
  type OverflowPolicy,
  type Sink,
} from '../src/index.js';

const LONG = process.env.EVENTSINKS_LONG === '1';
const RUNS = LONG ? 10_000 : 1_000;

interface Behaviour {
  failPattern: boolean[];
  async: boolean;
  hops: number;
}

const behaviourArb: fc.Arbitrary<Behaviour> = fc.record({
  failPattern: fc.array(fc.boolean(), { maxLength: 5 }),
  async: fc.boolean(),
  hops: fc.integer({ min: 0, max: 3 }),
});

/** A sink that fails by a fixed pattern of attempts, synchronously or after some microtasks. */
class ModelSink<E> implements Sink<E> {
  readonly received: E[] = [];
  attempts = 0;
  closed = false;
  constructor(readonly behaviour: Behaviour) {}
  write(event: E): void | Promise<void> {
    if (this.closed) throw new SinkClosedError();
    const { failPattern, async, hops } = this.behaviour;
    const fail = failPattern.length > 0 && failPattern[this.attempts++ % failPattern.length]!;
    if (!async) {
      if (fail) throw new Error(`fail ${String(event)}`);
      this.received.push(event);
      return;
    }
    return (async () => {
      for (let i = 0; i < hops; i++) await null;
      if (fail) throw new Error(`fail ${String(event)}`);
      this.received.push(event);
    })();
  }
  close(): void {
    this.closed = true;
  }
}

function assertIncreasing(values: number[], what: string): void {
  for (let i = 1; i < values.length; i++) {
    assert.ok(values[i]! > values[i - 1]!, `${what} out of order: ${values.join(',')}`);
  }
}

/** Every event in `expected` is in exactly one of the outcome lists, and nothing else is. */
function assertPartition(expected: number[], outcomes: Record<string, number[]>): void {
  const seen = new Map<number, string>();
  for (const [name, list] of Object.entries(outcomes)) {
    for (const e of list) {
      assert.ok(!seen.has(e), `event ${e} both ${seen.get(e)} and ${name}`);
      seen.set(e, name);
    }
  }
  assert.deepEqual(
    [...seen.keys()].sort((a, b) => a - b),
    [...expected].sort((a, b) => a - b),
  );
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('properties', () => {
  it(`Broadcaster: each sink gets exactly the events written while it was a member, in order (${RUNS} runs)`, async () => {
    const command = fc.oneof(
      { weight: 5, arbitrary: fc.constant({ op: 'write' as const, k: 0 }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('add' as const), k: fc.nat(3) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('remove' as const), k: fc.nat(3) }) },
      { weight: 1, arbitrary: fc.constant({ op: 'yield' as const, k: 0 }) },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(behaviourArb, { minLength: 4, maxLength: 4 }),
        fc.array(command, { maxLength: 40 }),
        async (behaviours, commands) => {
          const sinks = behaviours.map((b) => new ModelSink<number>(b));
          const errors = new Map<Sink<number>, number[]>(sinks.map((s) => [s, []]));
          const b = new Broadcaster<number>([], {
            onError: (_e, event, sink) => errors.get(sink)!.push(event!),
          });
          const members = new Set<number>();
          const expected = sinks.map((): number[] => []);
          const pending: (void | Promise<void>)[] = [];
          let next = 0;
          for (const c of commands) {
            if (c.op === 'write') {
              const event = next++;
              for (const k of members) expected[k]!.push(event);
              pending.push(b.write(event));
            } else if (c.op === 'add') {
              members.add(c.k);
              pending.push(b.add(sinks[c.k]!));
            } else if (c.op === 'remove') {
              members.delete(c.k);
              pending.push(b.remove(sinks[c.k]!));
            } else {
              await tick();
            }
          }
          await Promise.all(pending);
          await b.close();
          sinks.forEach((sink, k) => {
            assertIncreasing(sink.received, `sink ${k}`);
            assertPartition(expected[k]!, { received: sink.received, errored: errors.get(sink)! });
            assert.equal(sink.closed, members.has(k));
          });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it(`Queue (bounded or not, every overflow policy): accepted events are delivered once in order, dropped or errored (${RUNS} runs)`, async () => {
    const capacityArb = fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 4 }));
    const overflowArb = fc.constantFrom<OverflowPolicy>(
      'block',
      'drop-oldest',
      'drop-newest',
      'reject',
    );
    const command = fc.oneof(
      { weight: 4, arbitrary: fc.constant('write' as const) },
      { weight: 1, arbitrary: fc.constant('yield' as const) },
    );
    await fc.assert(
      fc.asyncProperty(
        capacityArb,
        overflowArb,
        fc.integer({ min: 1, max: 3 }),
        behaviourArb,
        fc.array(command, { maxLength: 40 }),
        async (capacity, overflow, maxInFlight, behaviour, commands) => {
          const sink = new ModelSink<number>(behaviour);
          const dropped: number[] = [];
          const errored: number[] = [];
          const queue = new Queue(sink, {
            capacity,
            overflow,
            maxInFlight,
            onDrop: (e) => dropped.push(e),
            onError: (_error, e) => errored.push(e),
          });
          const accepted: number[] = [];
          const blocked: Promise<void>[] = [];
          let next = 0;
          for (const c of commands) {
            if (c === 'yield') {
              await tick();
              continue;
            }
            const event = next++;
            try {
              const result = queue.write(event);
              if (result === undefined) accepted.push(event);
              else blocked.push(result.then(() => void accepted.push(event)));
            } catch (error) {
              assert.ok(isQueueFullError(error), String(error));
              assert.equal(overflow, 'reject');
            }
          }
          // Blocked writers get in as the queue drains; close would reject those still waiting.
          await Promise.allSettled(blocked);
          await queue.close();
          assert.equal(sink.closed, true);
          if (maxInFlight === 1 || !behaviour.async) assertIncreasing(sink.received, 'delivered');
          assertPartition(accepted, { delivered: sink.received, dropped, errored });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it(`RetryingSink: every event is delivered once in order or dropped once (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        behaviourArb,
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 30 }),
        async (behaviour, threshold, attempts, count) => {
          const sink = new ModelSink<number>(behaviour);
          const dropped: number[] = [];
          const retrying = new RetryingSink(
            sink,
            maxAttempts(new Breaker(threshold, 0), attempts),
            {
              onDrop: (e) => dropped.push(e),
            },
          );
          const writes: (void | Promise<void>)[] = [];
          for (let i = 0; i < count; i++) writes.push(retrying.write(i));
          await Promise.all(writes);
          await retrying.close();
          assertIncreasing(sink.received, 'delivered');
          assertPartition(
            Array.from({ length: count }, (_, i) => i),
            { delivered: sink.received, dropped },
          );
        },
      ),
      { numRuns: RUNS },
    );
  });

  it(`Pipeline: Broadcaster → Queue → RetryingSink → Filter per branch, with add/remove (${RUNS} runs)`, async () => {
    const branchArb = fc.record({
      behaviour: behaviourArb,
      capacity: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 5 })),
      overflow: fc.constantFrom<OverflowPolicy>('drop-oldest', 'drop-newest'),
      attempts: fc.integer({ min: 1, max: 4 }),
      evenOnly: fc.boolean(),
    });
    const command = fc.oneof(
      { weight: 6, arbitrary: fc.constant({ op: 'write' as const, k: 0 }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('remove' as const), k: fc.nat(2) }) },
      { weight: 1, arbitrary: fc.constant({ op: 'yield' as const, k: 0 }) },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(branchArb, { minLength: 3, maxLength: 3 }),
        fc.array(command, { maxLength: 50 }),
        async (branches, commands) => {
          const built = branches.map((branch) => {
            const sink = new ModelSink<number>(branch.behaviour);
            const dropped: number[] = [];
            const filter = new Filter(sink, (e: number) => !branch.evenOnly || e % 2 === 0);
            const retrying = new RetryingSink(
              filter,
              maxAttempts(new Breaker(1, 0), branch.attempts),
              {
                onDrop: (e) => dropped.push(e),
              },
            );
            const queue = new Queue(retrying, {
              capacity: branch.capacity,
              overflow: branch.overflow,
              onDrop: (e) => dropped.push(e),
              onError: (error) => assert.fail(`RetryingSink below never fails: ${String(error)}`),
            });
            return { sink, dropped, queue, branch, expected: [] as number[], member: true };
          });
          const b = new Broadcaster<number>(built.map((x) => x.queue));
          const pending: (void | Promise<void>)[] = [];
          let next = 0;
          for (const c of commands) {
            if (c.op === 'write') {
              const event = next++;
              for (const x of built) {
                if (x.member && (!x.branch.evenOnly || event % 2 === 0)) x.expected.push(event);
              }
              pending.push(b.write(event));
            } else if (c.op === 'remove') {
              built[c.k]!.member = false;
              pending.push(b.remove(built[c.k]!.queue));
            } else {
              await tick();
            }
          }
          await Promise.all(pending);
          await b.close();
          for (const x of built) {
            if (!x.member) await x.queue.close();
            assertIncreasing(x.sink.received, 'branch');
            // Filtered-out events may be dropped before the filter: count only those that match.
            const matching = x.dropped.filter((e) => !x.branch.evenOnly || e % 2 === 0);
            assertPartition(x.expected, { delivered: x.sink.received, dropped: matching });
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it(`BatchingSink behind a Queue: batches concatenate to exactly the accepted events (${Math.ceil(RUNS / 10)} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 6 }),
        behaviourArb,
        fc.integer({ min: 0, max: 40 }),
        async (maxSize, maxInFlight, behaviour, count) => {
          const sink = new ModelSink<number[]>(behaviour);
          const errored: number[] = [];
          const queue = new Queue(new BatchingSink(sink, { maxSize, maxDelay: 0 }), {
            maxInFlight,
            onError: (_e, event) => errored.push(event),
          });
          for (let i = 0; i < count; i++) void queue.write(i);
          await queue.close();
          const delivered = sink.received.flat();
          for (const batch of sink.received) assert.ok(batch.length <= maxSize);
          assertIncreasing(delivered, 'batched');
          assertPartition(
            Array.from({ length: count }, (_, i) => i),
            { delivered, errored },
          );
        },
      ),
      { numRuns: Math.ceil(RUNS / 10) },
    );
  });
});
