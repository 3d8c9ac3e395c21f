import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isQueueFullError } from './errors/QueueFullError.js';
import { isSinkClosedError } from './errors/SinkClosedError.js';
import { Queue, type DropReason } from './Queue.js';
import { RecordingSink, checkClose, range, sleep, GatedSink, tick } from './test-utils.js';

describe('Queue', () => {
  it('ports go-events TestQueue: 1000 events to a 1 ms sink, close flushes then closes', async () => {
    const sink = new RecordingSink<string>({ delay: 1 });
    const queue = new Queue(sink);
    for (const i of range(1000)) assert.equal(queue.write(`event-${i}`), undefined);
    await checkClose(queue, 'late', (e) => assert.ok(isSinkClosedError(e)));
    assert.equal(sink.events.length, 1000);
    assert.deepEqual(
      sink.events,
      range(1000).map((i) => `event-${i}`),
    );
    assert.equal(sink.closed, true);
  });

  it('write is synchronous and does not call the sink before returning', () => {
    const sink = new RecordingSink<number>();
    const queue = new Queue(sink);
    assert.equal(queue.write(1), undefined);
    assert.deepEqual(sink.events, []);
    assert.equal(queue.size, 1);
  });

  it('a failed write goes to onError and the queue goes on', async () => {
    const errors: [unknown, number][] = [];
    const sink = new RecordingSink<number>({ failFirst: 3 });
    const queue = new Queue(sink, { onError: (e, ev) => errors.push([e, ev]) });
    for (const i of range(10)) void queue.write(i);
    await queue.close();
    assert.deepEqual(sink.events, range(10).slice(3));
    assert.deepEqual(
      errors.map(([, ev]) => ev),
      [0, 1, 2],
    );
  });

  it('does not use Array.prototype.shift (ring buffer stays O(1) under a million events)', async () => {
    const original = Array.prototype.shift;
    let shifts = 0;
    Array.prototype.shift = function (this: unknown[]) {
      shifts++;
      return original.call(this) as unknown;
    };
    try {
      let count = 0;
      const queue = new Queue<number>({ write: () => void count++, close() {} });
      for (let i = 0; i < 100_000; i++) void queue.write(i);
      await queue.close();
      assert.equal(count, 100_000);
    } finally {
      Array.prototype.shift = original;
    }
    assert.equal(shifts, 0);
  });

  describe('bounded', () => {
    it("'reject' throws QueueFullError when full", async () => {
      const sink = new GatedSink<number>();
      const queue = new Queue(sink, { capacity: 2, overflow: 'reject' });
      void queue.write(0);
      await tick(); // 0 is now in flight
      void queue.write(1);
      void queue.write(2);
      assert.throws(
        () => queue.write(3),
        (e) => isQueueFullError(e) && e.capacity === 2,
      );
      sink.release(10);
      await tick();
      sink.release(10);
      await tick();
      sink.release(10);
      await queue.close();
      assert.deepEqual(sink.events, [0, 1, 2]);
    });

    it("'drop-newest' and 'drop-oldest' report each drop to onDrop", async () => {
      for (const overflow of ['drop-newest', 'drop-oldest'] as const) {
        const sink = new GatedSink<number>();
        const drops: [number, DropReason][] = [];
        const queue = new Queue(sink, {
          capacity: 3,
          overflow,
          onDrop: (e, reason) => drops.push([e, reason]),
        });
        void queue.write(0);
        await tick();
        for (const i of range(6, 1)) assert.equal(queue.write(i), undefined);
        assert.equal(queue.size, 3);
        const closing = queue.close();
        while (!sink.closed) {
          sink.release();
          await tick();
        }
        await closing;
        if (overflow === 'drop-newest') {
          assert.deepEqual(sink.events, [0, 1, 2, 3]);
          assert.deepEqual(drops, [
            [4, 'overflow'],
            [5, 'overflow'],
            [6, 'overflow'],
          ]);
        } else {
          assert.deepEqual(sink.events, [0, 4, 5, 6]);
          assert.deepEqual(drops, [
            [1, 'overflow'],
            [2, 'overflow'],
            [3, 'overflow'],
          ]);
        }
      }
    });

    it("'block' applies backpressure and keeps order", async () => {
      const sink = new GatedSink<number>();
      const queue = new Queue(sink, { capacity: 2 });
      const results = range(6).map((i) => queue.write(i));
      assert.equal(results[0], undefined);
      assert.equal(results[1], undefined);
      // 0 was not yet taken when 2 arrived, so 2.. wait for room.
      assert.ok(results[2] instanceof Promise);
      let resolved = 0;
      for (const r of results) if (r) void r.then(() => resolved++);
      await tick();
      assert.equal(resolved, 1); // taking 0 made room for 2
      while (resolved < 4) {
        sink.release();
        await tick();
      }
      const closing = queue.close();
      while (!sink.closed) {
        sink.release();
        await tick();
      }
      await closing;
      assert.deepEqual(sink.events, range(6));
    });

    it('close rejects writes still blocked for room', async () => {
      const sink = new GatedSink<number>();
      const queue = new Queue(sink, { capacity: 1 });
      void queue.write(0);
      const w1 = queue.write(1);
      assert.ok(w1 instanceof Promise);
      await tick(); // 0 in flight, 1 admitted
      await w1;
      const w2 = queue.write(2) as Promise<void>;
      const closing = queue.close();
      await assert.rejects(w2, (e) => isSinkClosedError(e));
      while (!sink.closed) {
        sink.release();
        await tick();
      }
      await closing;
      assert.deepEqual(sink.events, [0, 1]);
    });

    it('rejects bad options with errors naming them', () => {
      const sink = new RecordingSink<number>();
      assert.throws(
        () => new Queue(sink, { capacity: 0 }),
        /Expected `capacity` to be a positive integer, got `0` \(number\)/,
      );
      assert.throws(() => new Queue(sink, { capacity: -1 }), RangeError);
      assert.throws(() => new Queue(sink, { capacity: NaN }), /`capacity`.*NaN/);
      assert.throws(() => new Queue(sink, { overflow: 'spill' as never }), /`overflow`.*"spill"/);
      assert.throws(() => new Queue({} as never), /`dst`/);
      assert.throws(() => new Queue(sink, { onDrop: 1 as never }), /`onDrop`/);
    });
  });

  describe('close with a deadline', () => {
    it('on abort hands waiting events to onDrop, closes dst and resolves promptly', async () => {
      const stuck = new GatedSink<number>();
      const drops: [number, DropReason][] = [];
      const queue = new Queue(stuck, { onDrop: (e, r) => drops.push([e, r]) });
      for (const i of range(5)) void queue.write(i);
      await tick();
      const controller = new AbortController();
      const closing = queue.close({ signal: controller.signal });
      await sleep(5);
      assert.equal(stuck.closed, false);
      controller.abort();
      await closing;
      assert.equal(stuck.closed, true);
      assert.deepEqual(drops, [
        [1, 'closed'],
        [2, 'closed'],
        [3, 'closed'],
        [4, 'closed'],
      ]);
      assert.equal(queue.size, 0);
    });

    it('without abort it flushes everything', async () => {
      const sink = new RecordingSink<number>({ delay: 1 });
      const queue = new Queue(sink);
      for (const i of range(20)) void queue.write(i);
      await queue.close({ signal: AbortSignal.timeout(60_000) });
      assert.deepEqual(sink.events, range(20));
    });

    it('an already-aborted signal resolves even while a delivery is stuck', async () => {
      const stuck = new GatedSink<number>();
      const drops: number[] = [];
      const queue = new Queue(stuck, { onDrop: (e) => drops.push(e) });
      for (const i of range(3)) void queue.write(i);
      await tick(); // 0 is in flight and never settles
      await queue.close({ signal: AbortSignal.abort() });
      assert.deepEqual(drops, [1, 2]);
      assert.equal(stuck.closed, true);
    });

    it('an already-aborted signal drops everything waiting at once', async () => {
      const drops: number[] = [];
      const sink = new RecordingSink<number>();
      const queue = new Queue(sink, { onDrop: (e) => drops.push(e) });
      for (const i of range(3)) void queue.write(i);
      await queue.close({ signal: AbortSignal.abort() });
      assert.deepEqual(drops, [0, 1, 2]);
      assert.equal(sink.closed, true);
    });
  });
});

describe('Queue maxInFlight', () => {
  it('fills free slots as writes arrive, even while earlier writes are pending', async () => {
    const sink = new GatedSink<number>();
    const queue = new Queue(sink, { maxInFlight: 3 });
    void queue.write(0);
    await tick();
    assert.equal(sink.waiting, 1);
    void queue.write(1);
    await tick();
    void queue.write(2);
    await tick();
    assert.equal(sink.waiting, 3);
    void queue.write(3);
    await tick();
    assert.equal(sink.waiting, 3); // the fourth waits for a slot
    sink.release();
    await tick();
    assert.equal(sink.waiting, 3);
    const closing = queue.close();
    while (!sink.closed) {
      sink.release();
      await tick();
    }
    await closing;
    assert.deepEqual(sink.events, [0, 1, 2, 3]);
  });

  it('rejects a bad maxInFlight', () => {
    assert.throws(() => new Queue(new RecordingSink(), { maxInFlight: 0 }), /`maxInFlight`.*`0`/);
  });
});
