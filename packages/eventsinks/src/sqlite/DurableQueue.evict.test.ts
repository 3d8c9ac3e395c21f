// DurableQueue.evict (a bounded queue shedding its oldest waiting events) and
// QueueFile.appendAll, used by the relay's `whenFull: dead-letter`.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isSinkClosedError } from '../errors/SinkClosedError.js';
import { GatedSink, range, sleep } from '../test-utils.js';
import { DurableQueue, QueueFile, isEncodeError } from './index.js';

const root = mkdtempSync(join(tmpdir(), 'eventsinks-evict-'));
after(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
const temp = (): string => join(root, `queue-${++files}.db`);

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Releases deliveries one by one until `count` events were delivered. */
async function deliver(sink: GatedSink<number>, count: number): Promise<void> {
  while (sink.events.length < count) {
    if (sink.waiting > 0) sink.release();
    else await sleep(1);
  }
}

function stored(path: string): number[] {
  const file = new QueueFile<number>({ path });
  try {
    return file.list({ limit: 100_000 }).map((e) => e.event);
  } finally {
    file.close();
  }
}

describe('DurableQueue.evict', () => {
  it('takes the oldest waiting events, never the one being delivered; the rest is delivered in order', async () => {
    const sink = new GatedSink<number>();
    const path = temp();
    const queue = new DurableQueue<number>(sink, { path });
    await Promise.all(range(5, 1).map((n) => queue.write(n)));
    await until(() => sink.waiting === 1, 'the first delivery');
    const kept: number[][] = [];
    assert.equal(
      queue.evict(2, (events) => kept.push(events)),
      2,
    );
    assert.deepEqual(kept, [[2, 3]]);
    assert.equal(queue.size, 3);
    await deliver(sink, 3);
    assert.deepEqual(sink.events, [1, 4, 5]);
    await queue.close();
    assert.deepEqual(stored(path), []);
  });

  it('when keep throws, nothing is removed and the error propagates', async () => {
    const sink = new GatedSink<number>();
    const queue = new DurableQueue<number>(sink, { path: temp() });
    await Promise.all(range(4, 1).map((n) => queue.write(n)));
    await until(() => sink.waiting === 1, 'the first delivery');
    assert.throws(
      () =>
        queue.evict(2, () => {
          throw new Error('dead letter full');
        }),
      /dead letter full/,
    );
    assert.equal(queue.size, 4);
    await deliver(sink, 4);
    assert.deepEqual(sink.events, [1, 2, 3, 4]);
    await queue.close();
  });

  it('reaches past what is in memory into the file; removed events are gone from the file', async () => {
    const sink = new GatedSink<number>();
    const path = temp();
    const queue = new DurableQueue<number>(sink, { path });
    const n = 6_000; // more than the queue keeps in memory
    await Promise.all(range(n, 1).map((i) => queue.write(i)));
    await until(() => sink.waiting === 1, 'the first delivery');
    let kept: number[] = [];
    assert.equal(
      queue.evict(5_000, (events) => (kept = events)),
      5_000,
    );
    assert.deepEqual(kept, range(5_000, 2));
    assert.equal(queue.size, n - 5_000);
    // Stop before delivering the rest: the file holds exactly what was not evicted.
    await queue.close({ signal: AbortSignal.abort() });
    assert.deepEqual(stored(path), [1, ...range(n - 5_001, 5_002)]);
  });

  it('evicts no more than is waiting, and refuses after close', async () => {
    const sink = new GatedSink<number>();
    const queue = new DurableQueue<number>(sink, { path: temp() });
    await Promise.all([queue.write(1), queue.write(2)]);
    await until(() => sink.waiting === 1, 'the first delivery');
    assert.equal(
      queue.evict(10, () => {}),
      1,
    );
    assert.equal(
      queue.evict(10, () => assert.fail('nothing is waiting')),
      0,
    );
    sink.release();
    await queue.close();
    assert.throws(
      () => queue.evict(1, () => {}),
      (e: unknown) => isSinkClosedError(e),
    );
  });
});

describe('QueueFile.appendAll', () => {
  it('stores all in one transaction, or nothing when one cannot be encoded', () => {
    const file = new QueueFile<unknown>({ path: temp() });
    assert.equal(file.appendAll([{ a: 1 }, { a: 2 }]).length, 2);
    assert.throws(
      () => file.appendAll([{ a: 3 }, { big: 1n }]),
      (e: unknown) => isEncodeError(e),
    );
    assert.deepEqual(
      file.list().map((e) => e.event),
      [{ a: 1 }, { a: 2 }],
    );
    file.close();
  });
});
