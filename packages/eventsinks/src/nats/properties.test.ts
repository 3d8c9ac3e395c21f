// Property tests against the real server: random failure plans, concurrency, prefetch and
// maxDeliveries for JetStreamSource, random maxInFlight and re-writes for JetStreamSink. The
// invariants: every event whose writes fail fewer than maxDeliveries times is delivered (acked
// only after a successful write); every other one is dead-lettered after exactly maxDeliveries
// attempts and never delivered; with concurrency 1 and no failures, order is kept; a sink stores
// each distinct id once however often it is written. `npm run test:long` runs 10× more cases.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import fc from 'fast-check';
import type { Sink } from '../Sink.js';
import { JetStreamSink } from './JetStreamSink.js';
import { JetStreamSource, type JetStreamDeadLetter } from './JetStreamSource.js';
import { SERVICE, deleteStreams, sharedConnection, uniqueName, waitFor } from './test-utils.js';

const nc = await sharedConnection();
const skip = nc === undefined ? `${SERVICE} does not answer` : false;
const RUNS = process.env.EVENTSINKS_LONG === '1' ? 300 : 30;

interface Plan {
  failures: number[];
  concurrency: number;
  prefetch: number;
  maxDeliveries: number;
}

const planArb: fc.Arbitrary<Plan> = fc
  .record({
    maxDeliveries: fc.integer({ min: 1, max: 4 }),
    concurrency: fc.integer({ min: 1, max: 4 }),
    prefetch: fc.integer({ min: 0, max: 8 }),
    count: fc.integer({ min: 1, max: 30 }),
  })
  .chain(({ maxDeliveries, concurrency, prefetch, count }) =>
    fc
      .array(fc.integer({ min: 0, max: maxDeliveries + 1 }), {
        minLength: count,
        maxLength: count,
      })
      .map((failures) => ({ failures, concurrency, prefetch, maxDeliveries })),
  );

describe('JetStream properties', { skip }, () => {
  let jsm: JetStreamManager;
  const streams: string[] = [];
  before(async () => {
    jsm = await jetstreamManager(nc!);
  });
  after(async () => {
    await deleteStreams(jsm, streams);
    await nc?.close();
  });

  it('JetStreamSource: delivered unless maxDeliveries writes failed, then dead-lettered after exactly that many', async () => {
    await fc.assert(
      fc.asyncProperty(planArb, async ({ failures, concurrency, prefetch, maxDeliveries }) => {
        const name = uniqueName('prop');
        streams.push(name);
        await jsm.streams.add({ name, subjects: [name] });
        const js = jetstream(nc!);
        for (let i = 0; i < failures.length; i++) {
          await js.publish(name, JSON.stringify(i), { msgID: `e${i}` });
        }
        const attempts = new Map<number, number>();
        const delivered: number[] = [];
        let inFlight = 0;
        let peak = 0;
        const dst: Sink<number> = {
          async write(i) {
            const n = (attempts.get(i) ?? 0) + 1;
            attempts.set(i, n);
            inFlight++;
            peak = Math.max(peak, inFlight);
            await new Promise((resolve) => setImmediate(resolve));
            inFlight--;
            if (n <= failures[i]!) throw new Error(`planned failure ${n} of ${i}`);
            delivered.push(i);
          },
          close() {},
        };
        const letters: JetStreamDeadLetter[] = [];
        const source = new JetStreamSource(dst, {
          connection: nc!,
          stream: name,
          durable: 'd',
          concurrency,
          prefetch,
          maxDeliveries,
          retryDelay: 5,
          onError: () => {},
          onDeadLetter: (letter) => letters.push(letter),
        });
        await source.start();
        const expectDelivered = failures.flatMap((f, i) => (f < maxDeliveries ? [i] : []));
        const expectDead = failures.flatMap((f, i) => (f >= maxDeliveries ? [i] : []));
        try {
          await waitFor(
            () =>
              new Set(delivered).size === expectDelivered.length &&
              letters.length >= expectDead.length,
            30_000,
            'every event delivered or dead-lettered',
          );
        } finally {
          await source.close();
        }
        assert.deepEqual(
          [...new Set(delivered)].sort((a, b) => a - b),
          expectDelivered,
        );
        assert.deepEqual(
          letters.map((l) => l.event as number).sort((a, b) => a - b),
          expectDead,
        );
        for (const i of expectDead)
          assert.equal(attempts.get(i), maxDeliveries, `attempts of ${i}`);
        for (const letter of letters) {
          assert.equal(letter.reason, 'max-deliveries');
          assert.equal(letter.msgId, `e${letter.event as number}`);
        }
        assert.ok(peak <= concurrency, `${peak} writes at once with concurrency ${concurrency}`);
        if (concurrency === 1 && expectDead.length === 0 && failures.every((f) => f === 0)) {
          assert.deepEqual(delivered, expectDelivered, 'order kept with concurrency 1');
        }
        // Acks are fire-and-forget: give the server a moment to have processed the last ones.
        await waitFor(
          async () => (await jsm.consumers.info(name, 'd')).num_ack_pending === 0,
          10_000,
          `everything acknowledged or terminated (${JSON.stringify(source.stats)})`,
        );
        await jsm.streams.delete(name);
      }),
      { numRuns: RUNS },
    );
  });

  it('JetStreamSink: every distinct event stored once, in order with maxInFlight 1, however often written', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 16 }),
        fc.array(fc.integer({ min: 0, max: 19 }), { minLength: 1, maxLength: 60 }),
        async (maxInFlight, picks) => {
          const name = uniqueName('propsink');
          streams.push(name);
          await jsm.streams.add({ name, subjects: [name] });
          const events = Array.from({ length: 20 }, (_, i) => ({ i }));
          const sink = new JetStreamSink<{ i: number }>({
            connection: nc!,
            subject: name,
            maxInFlight,
          });
          // Rewriting the same object is a retry: the generated Nats-Msg-Id is reused.
          await Promise.all(picks.map((p) => sink.write(events[p]!)));
          await sink.close();
          const distinct = [...new Set(picks)];
          const info = await jsm.streams.info(name);
          assert.equal(info.state.messages, distinct.length);
          assert.equal(sink.stats.acked, picks.length);
          assert.equal(sink.stats.duplicates, picks.length - distinct.length);
          if (maxInFlight === 1) {
            const stored: number[] = [];
            for (let seq = 1; seq <= info.state.last_seq; seq++) {
              stored.push((await jsm.streams.getMessage(name, { seq }))!.json<{ i: number }>().i);
            }
            assert.deepEqual(stored, distinct, 'stored in first-write order');
          }
          await jsm.streams.delete(name);
        },
      ),
      { numRuns: RUNS * 2 },
    );
  });
});
