import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchingSink } from './BatchingSink.js';
import { isSinkClosedError } from './errors/SinkClosedError.js';
import { Queue } from './Queue.js';
import type { Sink } from './Sink.js';
import { RecordingSink, checkClose, range } from './test-utils.js';

describe('BatchingSink', () => {
  it('flushes on size, in order', async () => {
    const dst = new RecordingSink<number[]>();
    const batching = new BatchingSink(dst, { maxSize: 3, maxDelay: 60_000 });
    await Promise.all(
      range(7)
        .map((i) => batching.write(i))
        .slice(0, 6),
    );
    assert.deepEqual(dst.events, [
      [0, 1, 2],
      [3, 4, 5],
    ]);
    assert.equal(batching.size, 1);
    await batching.close();
    assert.deepEqual(dst.events[2], [6]);
    assert.equal(dst.closed, true);
  });

  it('keyOf re-forms batches formed earlier, whole and apart from new ones; onBatch sees each', async () => {
    const dst = new RecordingSink<number[]>();
    const sealed: [number[], string | undefined][] = [];
    // 0–4 were one batch before a restart (more than maxSize now), 5–6 another; 7– are new.
    const keyOf = (n: number): string | undefined => (n < 5 ? 'a' : n < 7 ? 'b' : undefined);
    const batching = new BatchingSink(dst, {
      maxSize: 3,
      maxDelay: 60_000,
      keyOf,
      onBatch: (batch, key) => void sealed.push([[...batch], key]),
    });
    const writes = range(11).map((i) => batching.write(i));
    await batching.close();
    await Promise.all(writes);
    assert.deepEqual(dst.events, [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9], [10]]);
    assert.deepEqual(sealed, [
      [[0, 1, 2, 3, 4], 'a'],
      [[5, 6], 'b'],
      [[7, 8, 9], undefined],
      [[10], undefined],
    ]);
  });

  it('a throwing onBatch fails that batch, which is not sent', async () => {
    const dst = new RecordingSink<number[]>();
    const batching = new BatchingSink(dst, {
      maxSize: 2,
      maxDelay: 60_000,
      onBatch: (batch) => {
        if (batch[0] === 0) throw new Error('cannot seal');
      },
    });
    const results = await Promise.allSettled(range(4).map((i) => batching.write(i)));
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected', 'fulfilled', 'fulfilled'],
    );
    assert.deepEqual(dst.events, [[2, 3]]);
    await batching.close();
  });

  it('flushes on time', async (t) => {
    t.mock.timers.enable(['setTimeout']);
    const dst = new RecordingSink<number[]>();
    const batching = new BatchingSink(dst, { maxSize: 100, maxDelay: 50 });
    const writes = [batching.write(1), batching.write(2)];
    t.mock.timers.tick(49);
    await Promise.resolve();
    assert.deepEqual(dst.events, []);
    t.mock.timers.tick(1);
    await Promise.all(writes);
    assert.deepEqual(dst.events, [[1, 2]]);
  });

  it('a failed batch fails every write in it, and only those', async () => {
    let calls = 0;
    const dst: Sink<number[]> = {
      write: async () => {
        if (calls++ === 0) throw new Error('batch failed');
      },
      close() {},
    };
    const batching = new BatchingSink(dst, { maxSize: 2, maxDelay: 60_000 });
    const results = await Promise.allSettled(range(4).map((i) => batching.write(i)));
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected', 'fulfilled', 'fulfilled'],
    );
    await checkClose(batching, 9, (e) => assert.ok(isSinkClosedError(e)));
  });

  it('batches what a Queue with maxInFlight keeps in flight', async () => {
    const dst = new RecordingSink<number[]>({ delay: 1 });
    const queue = new Queue(new BatchingSink(dst, { maxSize: 10, maxDelay: 5 }), {
      maxInFlight: 10,
    });
    for (const i of range(100)) void queue.write(i);
    await queue.close();
    assert.deepEqual(dst.events.flat(), range(100));
    assert.ok(dst.events.length <= 20, `expected batching, got ${dst.events.length} batches`);
  });

  it('rejects bad options naming them', () => {
    const dst = new RecordingSink<number[]>();
    assert.throws(() => new BatchingSink(dst, { maxSize: 0, maxDelay: 1 }), /`maxSize`.*`0`/);
    assert.throws(() => new BatchingSink(dst, { maxSize: 1, maxDelay: -1 }), /`maxDelay`.*`-1`/);
    assert.throws(() => new BatchingSink(dst, { maxSize: 1, maxDelay: NaN }), /`maxDelay`/);
    assert.throws(() => new BatchingSink(dst, undefined as never), /`options`/);
  });
});
