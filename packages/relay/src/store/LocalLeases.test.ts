import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LocalLeases } from './LocalLeases.js';
import type { PendingDelivery } from './Store.js';

function delivery(seq: number, key?: string, nextAt = 0): PendingDelivery {
  return {
    seq,
    id: `m${seq}`,
    receivedAt: 0,
    source: 'http',
    event: {},
    key,
    attempts: 0,
    nextAt,
    batchId: undefined,
  };
}

describe('LocalLeases', () => {
  it('pages past a long blocked key to fill the claim, and keeps leases until released', async () => {
    // 2500 deliveries of one key, then unkeyed ones: the pages of 1000 must be walked.
    const all = [
      ...Array.from({ length: 2500 }, (_, i) => delivery(i + 1, 'k')),
      delivery(2501),
      delivery(2502, undefined, 5_000),
      delivery(2503),
    ];
    const pages: number[] = [];
    const leases = new LocalLeases(
      (_d, after, limit) => {
        pages.push(after);
        return Promise.resolve(all.filter((p) => p.seq > after).slice(0, limit));
      },
      { now: () => 1_000 },
    );
    const seqs = async (limit: number) => (await leases.claim('d', limit)).map((p) => p.seq);
    assert.deepEqual(await seqs(10), [1, 2501, 2503], 'the head of k, unkeyed ones that are due');
    assert.deepEqual(pages, [0, 1000, 2000]);
    assert.deepEqual(await seqs(10), []);
    assert.deepEqual(leases.renew('d', [1, 2, 2501]), [1, 2501]);
    leases.release('d', [1]);
    all.shift();
    assert.deepEqual(await seqs(1), [2], 'the next of k once the head is gone');
  });

  it('wakes each subscriber once per destination and survives one that throws', () => {
    const errors: unknown[] = [];
    const leases = new LocalLeases(() => Promise.resolve([]), { onError: (e) => errors.push(e) });
    const heard: string[] = [];
    leases.subscribe(() => {
      throw new Error('boom');
    });
    const off = leases.subscribe((d) => heard.push(d));
    leases.wake(['a', 'b', 'a']);
    assert.deepEqual(heard, ['a', 'b']);
    assert.equal(errors.length, 2);
    off();
    leases.wake(['a']);
    assert.deepEqual(heard, ['a', 'b']);
  });
});
