// The Store contract as tests: every implementation runs this suite verbatim, so nothing here
// may know which database is behind the interface.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  DestinationSpecConflictError,
  type NewMessage,
  type Store,
  type StoreOptions,
} from './Store.js';

let counter = 0;

/** A message with a fresh id and the given deliveries. */
function message(
  destinations: readonly string[],
  event: Record<string, unknown> = {},
  fields: Partial<NewMessage> = {},
): NewMessage {
  counter++;
  return {
    id: `m-${process.pid}-${counter}`,
    receivedAt: 1_000_000 + counter,
    source: 'http',
    event: { n: counter, ...event },
    deliveries: destinations.map((destination) => ({ destination })),
    ...fields,
  };
}

/**
 * Registers node:test cases checking that `make` gives a {@link Store} that keeps the contract
 * of Store.ts: all-or-nothing ingest, duplicates and idempotency keys, seq order, retention 0
 * and above, purge, pagination, resend, replay, overflow, counts and destination records.
 * `make` returns a new, empty store (not yet opened) for each case; the suite opens and closes it.
 *
 * @example
 * ```ts
 * storeConformance('SqliteStore', async (options) =>
 *   new SqliteStore({ ...options, path: join(mkdtempSync(join(tmpdir(), 's-')), 'relay.db'), durability: 'process' }),
 * );
 * ```
 */
export function storeConformance(
  label: string,
  make: (options: StoreOptions) => Promise<Store>,
): void {
  describe(`Store conformance: ${label}`, () => {
    const open: Store[] = [];
    async function fresh(retention = 60_000): Promise<Store> {
      const store = await make({ retention });
      await store.open();
      open.push(store);
      return store;
    }
    after(async () => {
      for (const store of open) await store.close();
    });

    describe('ingest', () => {
      let store: Store;
      before(async () => {
        store = await fresh();
      });

      it('stores messages in request order with increasing seq, one delivery per destination', async () => {
        const a = message(['a', 'b'], { kind: 'x' });
        const b = message(['a']);
        const c = message([]);
        const outcome = await store.ingest({ messages: [a, b, c] });
        assert.equal(outcome.replayed, undefined);
        assert.deepEqual(outcome.duplicates, []);
        assert.deepEqual(
          outcome.stored.map((m) => m.id),
          [a.id, b.id, c.id],
        );
        const seqs = outcome.stored.map((m) => m.seq);
        assert.ok(seqs[0]! < seqs[1]! && seqs[1]! < seqs[2]!, `seq increasing: ${seqs.join()}`);
        assert.equal(outcome.stored[0]!.receivedAt, a.receivedAt);
        assert.equal(outcome.stored[0]!.source, 'http');
        const later = await store.ingest({ messages: [message(['a'])] });
        assert.ok(later.stored[0]!.seq > seqs[2]!, 'a later request gets a larger seq');
        const detail = await store.getMessage(a.id);
        assert.deepEqual(detail, {
          id: a.id,
          receivedAt: a.receivedAt,
          source: 'http',
          event: a.event,
          deliveries: [
            { destination: 'a', status: 'pending', attempts: [] },
            { destination: 'b', status: 'pending', attempts: [] },
          ],
        });
        assert.deepEqual((await store.getMessage(c.id))?.deliveries, []);
      });

      it("keeps a message's traceparent: pending, claim, resend and getMessage return it", async () => {
        const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
        const traced = message(['tp'], {}, { traceparent });
        const plain = message(['tp']);
        const { stored } = await store.ingest({ messages: [traced, plain] });
        assert.equal(stored.length, 2);
        assert.equal((await store.getMessage(traced.id))?.traceparent, traceparent);
        const detail = await store.getMessage(plain.id);
        assert.ok(detail !== undefined && !('traceparent' in detail), 'absent, not null');
        const pending = await store.pending('tp', 0, 10);
        assert.deepEqual(
          pending.map((p) => p.traceparent),
          [traceparent, undefined],
        );
        const claimed = await store.claim('tp', 10);
        assert.deepEqual(
          claimed.map((p) => p.traceparent),
          [traceparent, undefined],
        );
        await store
          .release(
            'tp',
            claimed.map((p) => p.seq),
          )
          .catch(() => undefined);
        assert.equal((await store.resend(traced.id, 'tp-again'))?.traceparent, traceparent);
      });

      it('treats ids already stored, and repeats within a batch, as duplicates', async () => {
        const a = message(['dup']);
        await store.ingest({ messages: [a] });
        const again = { ...message(['dup', 'other']), id: a.id, event: { changed: true } };
        const b = message(['dup']);
        const c = message(['dup']);
        const outcome = await store.ingest({ messages: [again, b, c, { ...c, event: { x: 1 } }] });
        assert.deepEqual(outcome.duplicates, [a.id, c.id]);
        assert.deepEqual(
          outcome.stored.map((m) => m.id),
          [b.id, c.id],
        );
        const detail = await store.getMessage(a.id);
        assert.deepEqual(detail?.event, a.event, 'the first copy is kept');
        assert.deepEqual(
          detail?.deliveries.map((d) => d.destination),
          ['dup'],
          'no new delivery for a duplicate',
        );
        assert.deepEqual((await store.getMessage(c.id))?.event, c.event);
        assert.equal((await store.counts('dup')).pending, 3);
        assert.equal((await store.counts('other')).pending, 0);
      });

      it('gives a destination listed twice for a message one delivery', async () => {
        const m = {
          ...message([]),
          deliveries: [{ destination: 'twice', key: 'k' }, { destination: 'twice' }],
        };
        const { stored } = await store.ingest({ messages: [m] });
        assert.equal(stored.length, 1);
        assert.deepEqual(
          (await store.pending('twice', 0, 10)).map((p) => [p.id, p.key]),
          [[m.id, 'k']],
        );
        assert.equal((await store.counts('twice')).pending, 1);
      });

      it('stores nothing of a batch that fails midway', async () => {
        const before = await store.counts('atomic');
        const good = message(['atomic']);
        const bad = message(['atomic'], { big: 10n });
        const key = `key-${counter}`;
        await assert.rejects(
          store.ingest({
            messages: [good, bad, message(['atomic'])],
            idempotencyKey: key,
            answer: 'x',
          }),
        );
        assert.equal(await store.getMessage(good.id), undefined);
        assert.deepEqual(await store.counts('atomic'), before);
        // The key was not kept either: the retry of the request is stored.
        const retry = await store.ingest({ messages: [good], idempotencyKey: key, answer: 'y' });
        assert.equal(retry.replayed, undefined);
        assert.equal(retry.stored.length, 1);
      });

      it('replays the answer of a repeated idempotency key and stores nothing', async () => {
        const first = message(['idem']);
        const one = await store.ingest({
          messages: [first],
          idempotencyKey: 'k-1',
          answer: '{"accepted":1}',
        });
        assert.equal(one.replayed, undefined);
        assert.equal(one.stored.length, 1);
        const second = message(['idem']);
        const two = await store.ingest({
          messages: [second],
          idempotencyKey: 'k-1',
          answer: '{"other":true}',
        });
        assert.deepEqual(two, { replayed: '{"accepted":1}', stored: [], duplicates: [] });
        assert.equal(await store.getMessage(second.id), undefined);
        const other = await store.ingest({
          messages: [second],
          idempotencyKey: 'k-2',
          answer: 'b',
        });
        assert.equal(other.stored.length, 1, 'another key is another request');
        assert.equal((await store.counts('idem')).pending, 2);
      });

      it('keeps the ordering key and pages pending deliveries in seq order', async () => {
        const messages = Array.from({ length: 7 }, (_, i) => ({
          ...message([]),
          deliveries: [{ destination: 'page', key: `k${i % 2}` }, { destination: 'page2' }],
        }));
        const { stored } = await store.ingest({ messages });
        const first = await store.pending('page', 0, 3);
        assert.deepEqual(
          first.map((p) => p.seq),
          stored.slice(0, 3).map((m) => m.seq),
        );
        const rest = await store.pending('page', first.at(-1)!.seq, 100);
        assert.deepEqual(
          rest.map((p) => p.id),
          stored.slice(3).map((m) => m.id),
        );
        const p = first[1]!;
        assert.deepEqual(p, {
          seq: stored[1]!.seq,
          id: messages[1]!.id,
          receivedAt: messages[1]!.receivedAt,
          source: 'http',
          event: messages[1]!.event,
          key: 'k1',
          attempts: 0,
          nextAt: 0,
          batchId: undefined,
        });
        assert.equal((await store.pending('page2', 0, 100))[0]!.key, undefined);
      });
    });

    describe('record, seal and retention', () => {
      it('keeps delivered deliveries and their attempts with retention > 0', async () => {
        const store = await fresh(60_000);
        const { stored } = await store.ingest({ messages: [message(['a', 'b'])] });
        const { seq, id } = stored[0]!;
        await store.record([
          {
            destination: 'a',
            seqs: [seq],
            at: 5000,
            durationMs: 12,
            status: 503,
            error: 'HttpStatusError: 503',
            response: 'busy',
            outcome: 'pending',
            nextAt: 9000,
          },
        ]);
        const retried = (await store.pending('a', 0, 10))[0]!;
        assert.equal(retried.attempts, 1);
        assert.equal(retried.nextAt, 9000);
        await store.record([
          {
            destination: 'a',
            seqs: [seq],
            at: 9000,
            durationMs: 3,
            status: 200,
            outcome: 'delivered',
          },
          {
            destination: 'b',
            seqs: [seq],
            at: 9001,
            durationMs: 4,
            status: 410,
            error: 'gone',
            outcome: 'dead',
          },
        ]);
        assert.deepEqual(await store.pending('a', 0, 10), []);
        assert.deepEqual(await store.pending('b', 0, 10), []);
        const detail = await store.getMessage(id);
        assert.deepEqual(detail?.deliveries, [
          {
            destination: 'a',
            status: 'delivered',
            attempts: [
              {
                at: 5000,
                durationMs: 12,
                status: 503,
                error: 'HttpStatusError: 503',
                response: 'busy',
                nextAt: 9000,
              },
              { at: 9000, durationMs: 3, status: 200 },
            ],
          },
          {
            destination: 'b',
            status: 'dead',
            attempts: [{ at: 9001, durationMs: 4, status: 410, error: 'gone' }],
          },
        ]);
        assert.deepEqual(await store.counts('a'), { pending: 0, delivered: 1, dead: 0 });
        assert.deepEqual(await store.counts('b'), { pending: 0, delivered: 0, dead: 1 });
        const list = await store.listMessages({ limit: 10 });
        assert.deepEqual(list.items[0]?.deliveries, [
          { destination: 'a', status: 'delivered', attempts: 2 },
          { destination: 'b', status: 'dead', attempts: 1 },
        ]);
      });

      it('deletes on delivery with retention 0, and the message once no delivery is left', async () => {
        const store = await fresh(0);
        const { stored } = await store.ingest({ messages: [message(['a', 'b']), message(['a'])] });
        const [one, two] = stored as [(typeof stored)[0], (typeof stored)[0]];
        await store.record([
          {
            destination: 'a',
            seqs: [one.seq, two.seq],
            at: 1,
            durationMs: 1,
            status: 200,
            outcome: 'delivered',
          },
        ]);
        assert.equal(await store.getMessage(two.id), undefined, 'no delivery left');
        const kept = await store.getMessage(one.id);
        assert.deepEqual(kept?.deliveries, [{ destination: 'b', status: 'pending', attempts: [] }]);
        assert.deepEqual(await store.counts('a'), { pending: 0, delivered: 0, dead: 0 });
        await store.record([
          { destination: 'b', seqs: [one.seq], at: 2, durationMs: 1, error: 'x', outcome: 'dead' },
        ]);
        assert.equal(
          (await store.getMessage(one.id))?.deliveries[0]?.status,
          'dead',
          'dead letters stay',
        );
      });

      it('moves only pending deliveries: an attempt on a dead one leaves it dead', async () => {
        const store = await fresh();
        const { stored } = await store.ingest({ messages: [message(['a'])] });
        const seq = stored[0]!.seq;
        await store.record([
          { destination: 'a', seqs: [seq], at: 1, durationMs: 1, error: 'e', outcome: 'dead' },
        ]);
        await store.record([
          {
            destination: 'a',
            seqs: [seq],
            at: 2,
            durationMs: 1,
            status: 200,
            outcome: 'delivered',
          },
          { destination: 'nowhere', seqs: [seq], at: 2, durationMs: 1, outcome: 'delivered' },
        ]);
        assert.deepEqual(await store.counts('a'), { pending: 0, delivered: 0, dead: 1 });
        assert.deepEqual(await store.counts('nowhere'), { pending: 0, delivered: 0, dead: 0 });
        const detail = await store.getMessage(stored[0]!.id);
        assert.deepEqual(
          detail?.deliveries.map((d) => [d.destination, d.status, d.attempts.length]),
          [['a', 'dead', 1]],
        );
      });

      it('keeps a sealed batch id until the batch is delivered', async () => {
        const store = await fresh();
        const { stored } = await store.ingest({
          messages: [message(['a']), message(['a']), message(['a'])],
        });
        const seqs = stored.map((m) => m.seq);
        await store.seal('a', 'batch_1', seqs.slice(0, 2));
        const pending = await store.pending('a', 0, 10);
        assert.deepEqual(
          pending.map((p) => p.batchId),
          ['batch_1', 'batch_1', undefined],
        );
        await store.record([
          {
            destination: 'a',
            seqs: seqs.slice(0, 2),
            at: 1,
            durationMs: 1,
            error: 'e',
            outcome: 'pending',
            nextAt: 5,
          },
        ]);
        assert.deepEqual(
          (await store.pending('a', 0, 10)).map((p) => [p.batchId, p.attempts, p.nextAt]),
          [
            ['batch_1', 1, 5],
            ['batch_1', 1, 5],
            [undefined, 0, 0],
          ],
        );
      });
    });

    describe('resend, replayDead, overflow', () => {
      it('resends a delivered, dead or pending delivery, keeping id and attempt log', async () => {
        const store = await fresh();
        const [d, x, p] = [message(['a']), message(['a']), message(['a'])];
        const { stored } = await store.ingest({ messages: [d, x, p] });
        await store.record([
          {
            destination: 'a',
            seqs: [stored[0]!.seq],
            at: 1,
            durationMs: 1,
            status: 200,
            outcome: 'delivered',
          },
          {
            destination: 'a',
            seqs: [stored[1]!.seq],
            at: 2,
            durationMs: 1,
            status: 400,
            error: 'bad',
            outcome: 'dead',
          },
          {
            destination: 'a',
            seqs: [stored[2]!.seq],
            at: 3,
            durationMs: 1,
            error: 'down',
            outcome: 'pending',
            nextAt: 1e12,
          },
        ]);
        for (const [m, i] of [
          [d, 0],
          [x, 1],
          [p, 2],
        ] as const) {
          const resent = await store.resend(m.id, 'a');
          assert.equal(resent?.id, m.id);
          assert.equal(resent?.seq, stored[i]!.seq);
          assert.equal(resent?.nextAt, 0, 'due at once');
          assert.equal(resent?.attempts, 0, 'the whole retry budget again');
          assert.deepEqual(resent?.event, m.event);
          assert.equal((await store.getMessage(m.id))?.deliveries[0]?.attempts.length, 1);
        }
        assert.deepEqual(await store.counts('a'), { pending: 3, delivered: 0, dead: 0 });
        const created = await store.resend(d.id, 'new');
        assert.equal(created?.attempts, 0, 'a delivery created for another destination');
        assert.deepEqual(
          (await store.getMessage(d.id))?.deliveries.map((v) => [v.destination, v.status]),
          [
            ['a', 'pending'],
            ['new', 'pending'],
          ],
        );
        assert.equal(await store.resend('no-such-id', 'a'), undefined);
      });

      it('a resent or replayed delivery keeps its new budget wherever it is loaded or claimed', async () => {
        const store = await fresh();
        const { stored } = await store.ingest({ messages: [message(['r']), message(['r'])] });
        const [one, two] = stored.map((m) => m.seq) as [number, number];
        const fail = (outcome: 'dead' | 'pending', at: number) =>
          store.record([
            {
              destination: 'r',
              seqs: [one, two],
              at,
              durationMs: 1,
              status: 500,
              error: '500',
              outcome,
              ...(outcome === 'pending' ? { nextAt: 0 } : {}),
            },
          ]);
        await fail('pending', 10);
        await fail('pending', 20);
        await fail('dead', 30);
        assert.equal((await store.resend(stored[0]!.id, 'r'))?.attempts, 0);
        assert.equal((await store.replayDead('r', 0, 10))[0]?.attempts, 0);
        // Another relay, or this one after a restart, sees the same budget.
        assert.deepEqual(
          (await store.pending('r', 0, 10)).map((d) => [d.seq, d.attempts]),
          [
            [one, 0],
            [two, 0],
          ],
        );
        assert.deepEqual(
          (await store.claim('r', 10)).map((d) => [d.seq, d.attempts]),
          [
            [one, 0],
            [two, 0],
          ],
        );
        await fail('pending', 40);
        assert.deepEqual(
          (await store.pending('r', 0, 10)).map((d) => d.attempts),
          [1, 1],
        );
        // The log keeps every attempt, and the list counts them all.
        assert.equal((await store.getMessage(stored[0]!.id))?.deliveries[0]?.attempts.length, 4);
        const listed = await store.listMessages({ destination: 'r', limit: 10 });
        assert.deepEqual(
          listed.items.map((m) => m.deliveries[0]?.attempts),
          [4, 4],
        );
      });

      it('replays dead deliveries dead at or after `since`, up to `limit`', async () => {
        const store = await fresh();
        const { stored } = await store.ingest({
          messages: [message(['a']), message(['a']), message(['a']), message(['b'])],
        });
        const seqs = stored.map((m) => m.seq);
        await store.record([
          {
            destination: 'a',
            seqs: [seqs[0]!],
            at: 100,
            durationMs: 0,
            error: 'e',
            outcome: 'dead',
          },
          {
            destination: 'a',
            seqs: [seqs[1]!, seqs[2]!],
            at: 500,
            durationMs: 0,
            error: 'e',
            outcome: 'dead',
          },
          {
            destination: 'b',
            seqs: [seqs[3]!],
            at: 500,
            durationMs: 0,
            error: 'e',
            outcome: 'dead',
          },
        ]);
        const one = await store.replayDead('a', 300, 1);
        assert.deepEqual(
          one.map((p) => p.seq),
          [seqs[1]],
        );
        assert.equal(one[0]!.nextAt, 0);
        const rest = await store.replayDead('a', 300, 100);
        assert.deepEqual(
          rest.map((p) => p.seq),
          [seqs[2]],
        );
        assert.deepEqual(await store.counts('a'), { pending: 2, delivered: 0, dead: 1 });
        assert.deepEqual(await store.counts('b'), { pending: 0, delivered: 0, dead: 1 });
      });

      it('overflows the oldest pending deliveries not in `busy`, with an attempt saying why', async () => {
        const store = await fresh();
        const messages = Array.from({ length: 6 }, () => message(['a', 'b']));
        const { stored } = await store.ingest({ messages });
        const seqs = stored.map((m) => m.seq);
        const moved = await store.overflow('a', 3, new Set([seqs[0]!, seqs[2]!]), 'overflow');
        assert.deepEqual(moved, [seqs[1], seqs[3], seqs[4]]);
        assert.deepEqual(await store.counts('a'), { pending: 3, delivered: 0, dead: 3 });
        assert.deepEqual(await store.counts('b'), { pending: 6, delivered: 0, dead: 0 });
        const detail = await store.getMessage(messages[1]!.id);
        assert.equal(detail?.deliveries[0]?.status, 'dead');
        assert.equal(detail?.deliveries[0]?.attempts[0]?.error, 'overflow');
        assert.deepEqual(
          (await store.pending('a', 0, 10)).map((p) => p.seq),
          [seqs[0], seqs[2], seqs[5]],
        );
        assert.deepEqual(await store.overflow('a', 10, new Set(seqs), 'overflow'), []);
      });
    });

    describe('claim, renew, subscribe', () => {
      it('claims pending, due deliveries once, the head of each key only, until recorded', async () => {
        const store = await fresh();
        const keyed = (key: string | undefined): NewMessage => ({
          ...message([]),
          deliveries: [key === undefined ? { destination: 'c' } : { destination: 'c', key }],
        });
        const messages = [keyed('k'), keyed('k'), keyed(undefined), keyed('j'), keyed('k')];
        const { stored } = await store.ingest({ messages });
        const [k1, k2, free, j1, k3] = stored.map((m) => m.seq) as [
          number,
          number,
          number,
          number,
          number,
        ];
        const seqs = (list: readonly { seq: number }[]) => list.map((p) => p.seq);
        const first = await store.claim('c', 2);
        assert.deepEqual(seqs(first), [k1, free], 'in seq order, k2 behind k1, up to limit');
        assert.deepEqual(first[0], (await store.pending('c', 0, 1))[0], 'as pending shows it');
        assert.deepEqual(seqs(await store.claim('c', 10)), [j1], 'claimed ones are not returned');
        assert.deepEqual(await store.claim('c', 10), []);
        assert.deepEqual(await store.renew('c', [k1, free, k2]), [k1, free], 'held ones only');
        await store.record([
          {
            destination: 'c',
            seqs: [k1],
            at: 1,
            durationMs: 1,
            error: 'e',
            outcome: 'pending',
            nextAt: 1e15,
          },
        ]);
        assert.deepEqual(await store.claim('c', 10), [], 'k1 waits for its retry, k2 behind it');
        await store.record([
          { destination: 'c', seqs: [free, j1], at: 1, durationMs: 1, outcome: 'delivered' },
        ]);
        assert.deepEqual(await store.renew('c', [free]), [], 'recording ends the lease');
        const resent = await store.resend(messages[0]!.id, 'c');
        assert.equal(resent?.nextAt, 0);
        assert.deepEqual(seqs(await store.claim('c', 10)), [k1], 'due again after resend');
        await store.record([
          { destination: 'c', seqs: [k1], at: 2, durationMs: 1, outcome: 'delivered' },
        ]);
        assert.deepEqual(seqs(await store.claim('c', 10)), [k2]);
        await store.record([
          { destination: 'c', seqs: [k2], at: 3, durationMs: 1, outcome: 'dead', error: 'x' },
        ]);
        assert.deepEqual(seqs(await store.claim('c', 10)), [k3], 'a dead head unblocks its key');
        assert.deepEqual(await store.claim('other', 10), []);
        assert.equal(store.healthy(), true);
      });

      it('release ends leases at once without an attempt, and wakes subscribers', async () => {
        const store = await fresh();
        const heard: string[] = [];
        const unsubscribe = store.subscribe((d) => heard.push(d));
        const deadline = Date.now() + 10_000;
        // A store may set up its wake-ups in the background: ingest until the first arrives.
        while (!heard.includes('r-warm')) {
          assert.ok(Date.now() < deadline, 'no wake-up for an ingest');
          await store.ingest({ messages: [message(['r-warm'])] });
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const { stored } = await store.ingest({
          messages: [message(['r']), message(['r']), message(['r'])],
        });
        const [r1, r2, r3] = stored.map((m) => m.seq) as [number, number, number];
        const seqs = (list: readonly { seq: number }[]) => list.map((p) => p.seq);
        assert.deepEqual(seqs(await store.claim('r', 10)), [r1, r2, r3]);
        await new Promise((resolve) => setTimeout(resolve, 100));
        heard.length = 0;
        await store.release('r', [r1, r3]);
        assert.deepEqual(await store.renew('r', [r1, r2, r3]), [r2], 'only r2 still held');
        assert.deepEqual(seqs(await store.claim('r', 10)), [r1, r3], 'claimable again at once');
        const detail = await store.getMessage(stored[0]!.id);
        assert.deepEqual(detail?.deliveries[0]?.attempts, [], 'a release is not an attempt');
        assert.equal(detail?.deliveries[0]?.status, 'pending');
        await store.release('r', []);
        await store.release('nothing-here', [r1]);
        while (!heard.includes('r')) {
          assert.ok(Date.now() < deadline, 'no wake-up for a release');
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        unsubscribe();
      });

      it('tells subscribers which destinations got new deliveries', async () => {
        const store = await fresh();
        const heard = new Set<string>();
        const unsubscribe = store.subscribe((d) => heard.add(d));
        const deadline = Date.now() + 10_000;
        // A store may set up its wake-ups in the background: ingest until the first arrives.
        while (!heard.has('w1')) {
          assert.ok(Date.now() < deadline, 'no wake-up for an ingest');
          await store.ingest({ messages: [message(['w1', 'w2'])] });
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.ok(heard.has('w2'), 'every destination of the request');
        unsubscribe();
        heard.clear();
        await store.ingest({ messages: [message(['w1'])] });
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.deepEqual([...heard], [], 'nothing after unsubscribe');
      });
    });

    describe('listMessages and getMessage', () => {
      let store: Store;
      const ids: string[] = [];
      before(async () => {
        store = await fresh();
        const messages = Array.from({ length: 25 }, (_, i) =>
          message(i % 3 === 0 ? ['x', 'y'] : ['y'], {}, { receivedAt: 10_000 + i }),
        );
        ids.push(...messages.map((m) => m.id));
        const { stored } = await store.ingest({ messages });
        const dead = stored.filter((_, i) => i % 5 === 0).map((m) => m.seq);
        await store.record([
          { destination: 'y', seqs: dead, at: 1, durationMs: 1, error: 'e', outcome: 'dead' },
        ]);
        const delivered = stored.filter((_, i) => i % 5 === 1).map((m) => m.seq);
        await store.record([
          { destination: 'y', seqs: delivered, at: 1, durationMs: 1, outcome: 'delivered' },
        ]);
      });

      async function all(
        query: { destination?: string; status?: 'pending' | 'dead' | 'delivered'; since?: number },
        limit: number,
      ) {
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        for (;;) {
          const page = await store.listMessages({
            ...query,
            limit,
            ...(cursor === undefined ? {} : { cursor }),
          });
          pages++;
          assert.ok(page.items.length <= limit);
          seen.push(...page.items.map((m) => m.id));
          if (page.next === null) break;
          assert.equal(page.items.length, limit, 'only the last page is short');
          cursor = page.next;
        }
        return { seen, pages };
      }

      it('pages newest first without overlap or gap', async () => {
        const { seen, pages } = await all({}, 4);
        assert.deepEqual(seen, [...ids].reverse());
        assert.equal(pages, 7);
        const exact = await all({}, 5);
        assert.equal(exact.pages, 5, 'no empty page after an exact fit');
      });

      it('filters by destination, status and since, combined', async () => {
        const x = (await all({ destination: 'x' }, 3)).seen;
        assert.deepEqual(x, ids.filter((_, i) => i % 3 === 0).reverse());
        const dead = (await all({ status: 'dead' }, 2)).seen;
        assert.deepEqual(dead, ids.filter((_, i) => i % 5 === 0).reverse());
        const deadY = (await all({ destination: 'y', status: 'dead' }, 2)).seen;
        assert.deepEqual(deadY, dead);
        assert.deepEqual((await all({ destination: 'x', status: 'dead' }, 2)).seen, []);
        const delivered = (await all({ status: 'delivered' }, 2)).seen;
        assert.deepEqual(delivered, ids.filter((_, i) => i % 5 === 1).reverse());
        const pendingX = (await all({ destination: 'x', status: 'pending' }, 10)).seen;
        assert.deepEqual(pendingX, x);
        const pending = (await all({ status: 'pending' }, 3)).seen;
        assert.deepEqual(pending, ids.filter((_, i) => i % 5 > 1 || i % 3 === 0).reverse());
        const since = (await all({ since: 10_020 }, 2)).seen;
        assert.deepEqual(since, ids.slice(20).reverse());
        const sinceY = (await all({ since: 10_015, destination: 'y', status: 'dead' }, 10)).seen;
        assert.deepEqual(sinceY, [ids[20], ids[15]]);
      });

      it('summarises deliveries and refuses a bad limit or cursor', async () => {
        const page = await store.listMessages({ limit: 1, since: 10_024 });
        assert.deepEqual(page.items, [
          {
            id: ids[24],
            receivedAt: 10_024,
            source: 'http',
            deliveries: [
              { destination: 'x', status: 'pending', attempts: 0 },
              { destination: 'y', status: 'pending', attempts: 0 },
            ],
          },
        ]);
        for (const limit of [0, 1001, 1.5]) {
          await assert.rejects(store.listMessages({ limit }), (error: Error) => {
            assert.ok(error instanceof RangeError);
            assert.match(error.message, /limit/);
            return true;
          });
        }
        await assert.rejects(store.listMessages({ limit: 10, cursor: '!!' }), /cursor/);
        assert.equal(await store.getMessage('never-stored'), undefined);
      });
    });

    describe('purge', () => {
      it('deletes delivered messages before `before`, keeps pending and dead, in chunks', async () => {
        const store = await fresh();
        const old = Array.from({ length: 5 }, (_, i) =>
          message(['a'], {}, { receivedAt: 1000 + i }),
        );
        const none = message([], {}, { receivedAt: 1100 });
        const pending = message(['a', 'b'], {}, { receivedAt: 1200 });
        const dead = message(['a'], {}, { receivedAt: 1300 });
        const recent = message(['a'], {}, { receivedAt: 9000 });
        const { stored } = await store.ingest({ messages: [...old, none, pending, dead, recent] });
        const seq = (id: string) => stored.find((m) => m.id === id)!.seq;
        await store.record([
          {
            destination: 'a',
            seqs: [...old, pending, recent].map((m) => seq(m.id)),
            at: 1,
            durationMs: 1,
            outcome: 'delivered',
          },
          {
            destination: 'a',
            seqs: [seq(dead.id)],
            at: 1,
            durationMs: 1,
            error: 'e',
            outcome: 'dead',
          },
        ]);
        assert.equal(await store.purge(5000, 4), 4);
        assert.equal(await store.purge(5000, 4), 2);
        assert.equal(await store.purge(5000, 4), 0);
        for (const m of [...old, none]) assert.equal(await store.getMessage(m.id), undefined, m.id);
        assert.ok(await store.getMessage(pending.id), 'a pending delivery keeps its message');
        assert.ok(await store.getMessage(dead.id), 'a dead letter is kept');
        assert.ok(await store.getMessage(recent.id), 'recent messages are kept');
        assert.deepEqual(await store.counts('a'), { pending: 0, delivered: 2, dead: 1 });
        // Purged ids may be stored again.
        const again = await store.ingest({ messages: [old[0]!] });
        assert.equal(again.stored.length, 1);
      });

      it('deletes idempotency keys created before `before`', async () => {
        const store = await fresh();
        await store.ingest({ messages: [], idempotencyKey: 'old', answer: 'first' });
        assert.equal(
          (await store.ingest({ messages: [], idempotencyKey: 'old' })).replayed,
          'first',
        );
        await store.purge(Date.now() - 60_000, 100);
        assert.equal(
          (await store.ingest({ messages: [], idempotencyKey: 'old' })).replayed,
          'first',
        );
        await store.purge(Date.now() + 60_000, 100);
        const after = await store.ingest({
          messages: [message(['a'])],
          idempotencyKey: 'old',
          answer: 'second',
        });
        assert.equal(after.replayed, undefined);
        assert.equal(after.stored.length, 1);
      });
    });

    describe('destinations and lifecycle', () => {
      it('keeps destination records and merges updates', async () => {
        const store = await fresh();
        assert.deepEqual(await store.destination('a'), {});
        await store.updateDestination('a', {
          state: 'disabled',
          reason: 'disableAfter',
          failingSince: 5,
        });
        await store.updateDestination('a', { lastError: 'boom' });
        assert.deepEqual(await store.destination('a'), {
          state: 'disabled',
          reason: 'disableAfter',
          failingSince: 5,
          lastError: 'boom',
        });
        await store.updateDestination('a', { state: 'enabled', lastSuccessAt: 9 });
        assert.deepEqual(await store.destination('a'), {
          state: 'enabled',
          reason: 'disableAfter',
          failingSince: 5,
          lastSuccessAt: 9,
          lastError: 'boom',
        });
        assert.deepEqual(await store.destination('b'), {});
      });

      it('counts per destination', async () => {
        const store = await fresh();
        assert.deepEqual(await store.counts('none'), { pending: 0, delivered: 0, dead: 0 });
        const { stored } = await store.ingest({
          messages: [message(['a']), message(['a']), message(['a', 'b'])],
        });
        await store.record([
          { destination: 'a', seqs: [stored[0]!.seq], at: 1, durationMs: 1, outcome: 'delivered' },
          {
            destination: 'a',
            seqs: [stored[1]!.seq],
            at: 1,
            durationMs: 1,
            error: 'e',
            outcome: 'dead',
          },
        ]);
        assert.deepEqual(await store.counts('a'), { pending: 1, delivered: 1, dead: 1 });
        assert.deepEqual(await store.counts('b'), { pending: 1, delivered: 0, dead: 0 });
      });

      it('creates, versions, replaces and deletes destination specs', async () => {
        const store = await fresh();
        assert.deepEqual(await store.listDestinationSpecs(), []);
        const config = {
          name: 'b',
          type: 'webhook',
          url: 'http://127.0.0.1:1/x',
          nested: [1, { a: true }],
        };
        const created = await store.putDestinationSpec('b', config, 0);
        assert.equal(created.version, 1);
        assert.deepEqual(created.config, config);
        assert.equal(created.createdAt, created.updatedAt);
        await store.putDestinationSpec('a', { name: 'a', type: 'stdout' });
        const listed = await store.listDestinationSpecs();
        assert.deepEqual(
          listed.map((x) => [x.name, x.version]),
          [
            ['a', 1],
            ['b', 1],
          ],
        );
        assert.deepEqual(listed[1]!.config, config);
        const replaced = await store.putDestinationSpec('b', { ...config, url: 'http://x/y' }, 1);
        assert.equal(replaced.version, 2);
        assert.equal(replaced.createdAt, created.createdAt);
        assert.equal((await store.listDestinationSpecs())[1]!.config['url'], 'http://x/y');
        // Without expectedVersion: replaced whatever the version.
        assert.equal((await store.putDestinationSpec('b', config)).version, 3);
        assert.equal(await store.deleteDestinationSpec('b'), true);
        assert.equal(await store.deleteDestinationSpec('b'), false);
        assert.deepEqual(
          (await store.listDestinationSpecs()).map((x) => x.name),
          ['a'],
        );
      });

      it('rejects a spec write whose expectedVersion does not match', async () => {
        const store = await fresh();
        await store.putDestinationSpec('a', { v: 1 }, 0);
        await assert.rejects(store.putDestinationSpec('a', { v: 2 }, 0), (error: unknown) => {
          assert.ok(error instanceof DestinationSpecConflictError);
          assert.equal(error.code, 'ERR_DESTINATION_SPEC_CONFLICT');
          assert.equal(error.actual, 1);
          assert.match(error.message, /"a" exists already/);
          return true;
        });
        await assert.rejects(store.putDestinationSpec('a', { v: 2 }, 5), (error: unknown) => {
          assert.ok(error instanceof DestinationSpecConflictError);
          assert.equal(error.expected, 5);
          return true;
        });
        await assert.rejects(store.putDestinationSpec('none', { v: 2 }, 1), (error: unknown) => {
          assert.ok(error instanceof DestinationSpecConflictError);
          assert.equal(error.actual, 0);
          assert.match(error.message, /does not exist/);
          return true;
        });
        assert.deepEqual(
          (await store.listDestinationSpecs()).map((x) => [x.name, x.config, x.version]),
          [['a', { v: 1 }, 1]],
        );
      });

      it('lets one of two concurrent creates of a spec win', async () => {
        const store = await fresh();
        const results = await Promise.allSettled([
          store.putDestinationSpec('a', { v: 1 }, 0),
          store.putDestinationSpec('a', { v: 2 }, 0),
        ]);
        assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
        assert.equal((await store.listDestinationSpecs())[0]!.version, 1);
      });

      it('tells spec subscribers of changes', async () => {
        const store = await fresh();
        let calls = 0;
        let heard: () => void = () => undefined;
        const listener = (): void => {
          calls++;
          heard();
        };
        const unsubscribe = store.subscribeSpecs(listener);
        // The PostgreSQL store listens on its own connection: give it time to be listening.
        for (let i = 0; i < 50 && calls === 0; i++) {
          const next = new Promise<void>((resolve) => (heard = resolve));
          await store.putDestinationSpec('a', { i });
          await Promise.race([next, new Promise((resolve) => setTimeout(resolve, 200))]);
        }
        assert.ok(calls > 0, 'a put was heard');
        const before = calls;
        const next = new Promise<void>((resolve) => (heard = resolve));
        await store.deleteDestinationSpec('a');
        await Promise.race([next, new Promise((resolve) => setTimeout(resolve, 10_000))]);
        assert.ok(calls > before, 'a delete was heard');
        unsubscribe();
      });

      it('rejects calls after close', async () => {
        const store = await make({ retention: 0 });
        await store.open();
        await store.close();
        await assert.rejects(store.ingest({ messages: [message(['a'])] }));
        await assert.rejects(store.counts('a'));
      });
    });
  });
}
