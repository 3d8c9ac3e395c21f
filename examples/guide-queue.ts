// Guide: Queue and backpressure (docs/guide/queue.md).
// Run: node --import tsx examples/guide-queue.ts
import assert from 'node:assert/strict';
import { Queue, isQueueFullError, type DropReason, type Sink } from 'eventsinks';

/** A sink that takes `ms` per event and records what it accepted, and whether it was closed. */
function slowSink(
  ms: number,
): Sink<number> & { seen: number[]; closed: boolean; inFlight: number; maxInFlight: number } {
  return {
    seen: [],
    closed: false,
    inFlight: 0,
    maxInFlight: 0,
    async write(event) {
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      await new Promise((resolve) => setTimeout(resolve, ms));
      this.inFlight--;
      this.seen.push(event);
    },
    close() {
      this.closed = true;
    },
  };
}

// 1. Unbounded (the default): write returns synchronously, delivery happens later, in order.
{
  const sink = slowSink(1);
  const queue = new Queue(sink);
  for (let i = 0; i < 10; i++) assert.equal(queue.write(i), undefined);
  assert.deepEqual(sink.seen, []); // nothing delivered yet: the writer never waits
  await queue.close(); // flushes every waiting event, then closes the sink
  assert.deepEqual(sink.seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.ok(sink.closed);
  console.log('unbounded: 10 writes returned at once; close flushed all 10, then closed dst');
}

// 2. Bounded, overflow 'block' (the default policy): backpressure. A write to a full queue
// returns a promise that resolves once the event is in the queue.
{
  const sink = slowSink(2);
  const queue = new Queue(sink, { capacity: 2 });
  let blocked = 0;
  for (let i = 0; i < 8; i++) {
    const result = queue.write(i);
    if (result !== undefined) {
      blocked++;
      await result; // the writer slows down to the sink's pace
    }
    assert.ok(queue.size <= 2);
  }
  await queue.close();
  assert.deepEqual(sink.seen, [0, 1, 2, 3, 4, 5, 6, 7]);
  console.log(`block: ${blocked} of 8 writes waited for room; none lost, order kept`);
}

// 3. The other policies shed load instead, and tell onDrop (default: console.error).
for (const overflow of ['drop-oldest', 'drop-newest', 'reject'] as const) {
  const sink = slowSink(1);
  const dropped: [number, DropReason][] = [];
  const queue = new Queue(sink, {
    capacity: 2,
    overflow,
    onDrop: (event, reason) => dropped.push([event, reason]),
  });
  const rejected: number[] = [];
  for (let i = 0; i < 5; i++) {
    try {
      // Only 'block' ever returns a promise; these policies answer synchronously.
      assert.equal(queue.write(i), undefined);
    } catch (error) {
      if (!isQueueFullError(error)) throw error;
      rejected.push(i); // not accepted: the caller still owns the event
    }
  }
  await queue.close();
  console.log(
    `${overflow}: delivered [${sink.seen.join(',')}]`,
    `dropped [${dropped.map(([e]) => e).join(',')}]`,
    `rejected [${rejected.join(',')}]`,
  );
  // Every write is accounted for: delivered, dropped (and reported) or rejected.
  assert.equal(sink.seen.length + dropped.length + rejected.length, 5);
}

// 4. maxInFlight: keep several writes outstanding (issued in order) for a sink that can work
// on them concurrently, such as a BatchingSink or a pipelining broker client.
{
  const sink = slowSink(5);
  const queue = new Queue(sink, { maxInFlight: 4 });
  // An unbounded queue never returns a promise from write: `void` says so.
  for (let i = 0; i < 12; i++) void queue.write(i);
  await queue.close();
  assert.equal(sink.maxInFlight, 4);
  assert.equal(sink.seen.length, 12);
  console.log('maxInFlight 4: at most', sink.maxInFlight, 'writes outstanding at once');
}

// 5. Close with a deadline: drain until the signal aborts, then hand what is left to onDrop
// with reason 'closed', close dst, and resolve.
{
  const sink = slowSink(10);
  const dropped: number[] = [];
  const queue = new Queue(sink, {
    onDrop: (event, reason) => {
      assert.equal(reason, 'closed');
      dropped.push(event);
    },
  });
  for (let i = 0; i < 100; i++) void queue.write(i);
  const started = Date.now();
  await queue.close({ signal: AbortSignal.timeout(50) });
  const elapsed = Date.now() - started;
  assert.ok(sink.closed);
  // Nothing is lost without a trace: each event was delivered or reported dropped. (The write
  // in flight when the deadline passed may still finish after close resolves.)
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(sink.seen.length + dropped.length, 100);
  assert.ok(dropped.length > 0);
  console.log(
    `deadline: closed after ~${elapsed} ms with ${sink.seen.length} delivered, ${dropped.length} handed to onDrop`,
  );
}
