// Per-key order (issue 14's `orderingKey`), the relay as a child process: events with the same
// key are delivered one at a time in ingest order, whatever fails on the way; a retry holds back
// only its own key; different keys go in parallel.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { FAST_RETRY, Receiver, closeAll, idsOf, post, relayIn, stop, waitFor } from './harness.js';

after(closeAll);

const keyed = (receiver: Receiver, concurrency: number): string => `
server: { listen: 127.0.0.1:0 }
log: { level: warn }
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}
    orderingKey: k
    concurrency: ${concurrency}${FAST_RETRY}
`;

interface Keyed {
  seq: number;
  k: string;
}

describe('orderingKey', () => {
  it('per key, the first successful deliveries come in ingest order under random failures', async () => {
    const scenario = fc.record({
      keys: fc.integer({ min: 1, max: 4 }),
      concurrency: fc.integer({ min: 2, max: 8 }),
      // One request per entry, sent one after another: event → key, failures before success,
      // and the receiver's latency.
      requests: fc.array(
        fc.array(
          fc.record({
            key: fc.nat(3),
            failures: fc.integer({ min: 0, max: 2 }),
            latency: fc.integer({ min: 0, max: 30 }),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        { minLength: 2, maxLength: 6 },
      ),
    });
    await fc.assert(
      fc.asyncProperty(scenario, async ({ keys, concurrency, requests }) => {
        const receiver = await new Receiver().start();
        const plan = requests.flat();
        const tries = new Map<number, number>();
        receiver.script = ({ body }) => {
          const { seq } = body as Keyed;
          const step = plan[seq]!;
          const n = tries.get(seq) ?? 0;
          tries.set(seq, n + 1);
          return { status: n < step.failures ? 503 : 200, delay: step.latency };
        };
        const { relay } = await relayIn(keyed(receiver, concurrency));
        try {
          let seq = 0;
          for (const request of requests) {
            const body = request.map((e) => ({ seq: seq++, k: `key-${e.key % keys}` }));
            idsOf(await post(relay.url, JSON.stringify(body)));
          }
          await waitFor(
            () => new Set(receiver.seqs()).size === plan.length,
            30_000,
            `${plan.length} events delivered`,
          );
          const first = new Map<string, number[]>();
          const seen = new Set<number>();
          for (const { body } of receiver.received) {
            const event = body as Keyed;
            if (seen.has(event.seq)) continue;
            seen.add(event.seq);
            first.set(event.k, [...(first.get(event.k) ?? []), event.seq]);
          }
          for (const [key, seqs] of first) {
            assert.deepEqual(
              seqs,
              [...seqs].sort((a, b) => a - b),
              `key ${key} delivered out of order`,
            );
          }
        } finally {
          await stop(relay);
          await receiver.close();
        }
      }),
      { numRuns: 5, seed: 14, endOnFailure: true },
    );
  });

  it('one key is sent one at a time; different keys in parallel up to concurrency', async () => {
    const receiver = await new Receiver().start();
    receiver.delay = 200;
    const { relay } = await relayIn(keyed(receiver, 4));
    idsOf(
      await post(
        relay.url,
        JSON.stringify(Array.from({ length: 4 }, (_, i) => ({ seq: i, k: 'same' }))),
      ),
    );
    await waitFor(() => receiver.received.length >= 4, 10_000, 'the same key delivered');
    assert.equal(receiver.maxInFlight, 1, 'one key: one request at a time');
    assert.deepEqual(receiver.seqs(), [0, 1, 2, 3]);

    receiver.maxInFlight = 0;
    idsOf(
      await post(
        relay.url,
        JSON.stringify(Array.from({ length: 8 }, (_, i) => ({ seq: 4 + i, k: `k${i}` }))),
      ),
    );
    await waitFor(() => receiver.received.length >= 12, 10_000, 'eight keys delivered');
    assert.equal(receiver.maxInFlight, 4, 'eight keys: concurrency 4 in flight');
    assert.equal(await stop(relay), 0);
  });

  it('a retry holds back only its own key', async () => {
    const receiver = await new Receiver().start();
    let failing = true;
    receiver.script = ({ body }) =>
      (body as Keyed).k === 'bad' && failing ? { status: 500 } : undefined;
    const { relay } = await relayIn(keyed(receiver, 4));
    idsOf(
      await post(
        relay.url,
        JSON.stringify([
          { seq: 0, k: 'bad' },
          { seq: 1, k: 'bad' },
          ...Array.from({ length: 10 }, (_, i) => ({ seq: 2 + i, k: `good${i % 2}` })),
        ]),
      ),
    );
    await waitFor(() => receiver.received.length >= 10, 10_000, 'the good keys delivered');
    assert.deepEqual(
      receiver.seqs().sort((a, b) => a - b),
      Array.from({ length: 10 }, (_, i) => 2 + i),
    );
    // The failing key's second event waits for its first.
    assert.ok(
      receiver.log.every((r) => (r.body as Keyed).seq !== 1),
      'seq 1 was sent while seq 0 of its key was failing',
    );
    failing = false;
    await waitFor(() => receiver.received.length >= 12, 10_000, 'the bad key delivered');
    const bad = receiver.seqs().filter((s) => s < 2);
    assert.deepEqual(bad, [0, 1]);
    assert.equal(await stop(relay), 0);
  });
});
