import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Broadcaster } from './Broadcaster.js';
import { SinkClosedError, isSinkClosedError } from './errors/SinkClosedError.js';
import type { Sink } from './Sink.js';
import { RecordingSink, checkClose, range, sleep } from './test-utils.js';

describe('Broadcaster', () => {
  it('ports go-events TestBroadcaster: 10 sinks added twice, 1000 events, remove, add, close', async () => {
    const sinks = range(10).map(() => new RecordingSink<string>());
    const b = new Broadcaster<string>();
    for (const s of sinks) {
      await b.add(s);
      await b.add(s); // no-op
    }
    assert.equal(b.size, 10);
    const writes = range(1000).map((i) => b.write(`event-${i}`));
    await Promise.all(writes);
    for (const s of sinks) await b.remove(s);
    assert.equal(b.size, 0);
    await b.write('onemore');
    for (const s of sinks) await b.add(s);
    await checkClose(b, 'after', (e) => assert.ok(isSinkClosedError(e)));
    for (const s of sinks) {
      assert.equal(s.events.length, 1000);
      assert.deepEqual(
        s.events,
        range(1000).map((i) => `event-${i}`),
      );
      assert.equal(s.closed, true);
      assert.equal(s.closeCalls, 1);
    }
  });

  it('returns synchronously (undefined) when every sink is synchronous', () => {
    const a = new RecordingSink<number>();
    const c = new RecordingSink<number>();
    const b = new Broadcaster([a, c]);
    assert.equal(b.write(1), undefined);
    assert.equal(b.add(new RecordingSink<number>()), undefined);
    assert.deepEqual(a.events, [1]);
    assert.deepEqual(c.events, [1]);
  });

  it('keeps per-sink order with async sinks of random latency', async () => {
    const sinks = range(5).map(() => new RecordingSink<number>({ delay: () => Math.random() * 3 }));
    const b = new Broadcaster(sinks);
    const writes: (void | Promise<void>)[] = [];
    for (const i of range(100)) writes.push(b.write(i));
    await Promise.all(writes);
    for (const s of sinks) assert.deepEqual(s.events, range(100));
  });

  it('an event written before add never reaches the added sink, even behind async sinks', async () => {
    const slow = new RecordingSink<number>({ delay: 2 });
    const late = new RecordingSink<number>();
    const b = new Broadcaster<number>([slow]);
    const w1 = b.write(1);
    const w2 = b.write(2);
    const added = b.add(late);
    const w3 = b.write(3);
    await Promise.all([w1, w2, added, w3]);
    assert.deepEqual(slow.events, [1, 2, 3]);
    assert.deepEqual(late.events, [3]);
    const removed = b.remove(slow);
    await b.write(4);
    await removed;
    assert.deepEqual(slow.events, [1, 2, 3]);
    assert.deepEqual(late.events, [3, 4]);
  });

  it('one throwing sink does not stop the others; its errors go to onError', async () => {
    const errors: [unknown, unknown][] = [];
    const bad: Sink<number> = {
      write: (e) => {
        throw new Error(`bad ${e}`);
      },
      close() {},
    };
    const rejecting: Sink<number> = {
      write: (e) => Promise.reject(new Error(`rejecting ${e}`)),
      close() {},
    };
    const good = new RecordingSink<number>();
    const b = new Broadcaster([bad, rejecting, good], {
      onError: (error, event) => errors.push([error, event]),
    });
    for (const i of range(10)) await b.write(i);
    assert.deepEqual(good.events, range(10));
    assert.equal(errors.length, 20);
    assert.match(String(errors[0]?.[0]), /bad 0/);
    assert.equal(b.size, 3);
  });

  it('removes a sink that reports SinkClosedError', async () => {
    const closed = new RecordingSink<number>();
    closed.close();
    const good = new RecordingSink<number>();
    const errors: unknown[] = [];
    const b = new Broadcaster([closed, good], { onError: (e) => errors.push(e) });
    await b.write(1);
    assert.equal(b.size, 1);
    assert.deepEqual(good.events, [1]);
    assert.deepEqual(errors, []);
  });

  it('default onError prints the error instead of swallowing it', async (t) => {
    const printed: unknown[][] = [];
    t.mock.method(console, 'error', (...args: unknown[]) => printed.push(args));
    const b = new Broadcaster<number>([
      {
        write() {
          throw new Error('visible');
        },
        close() {},
      },
    ]);
    await b.write(1);
    assert.equal(printed.length, 1);
    assert.match(String(printed[0]?.[1]), /visible/);
  });

  it('close waits for writes in flight, reports close errors, and is idempotent', async () => {
    const slow = new RecordingSink<number>({ delay: 5 });
    const errors: unknown[] = [];
    const failingClose: Sink<number> = {
      write() {},
      close: () => Promise.reject(new Error('close failed')),
    };
    const b = new Broadcaster<number>([slow, failingClose], { onError: (e) => errors.push(e) });
    const w = b.write(1);
    const c1 = b.close();
    const c2 = b.close();
    await Promise.all([w, c1, c2]);
    assert.deepEqual(slow.events, [1]);
    assert.equal(slow.closed, true);
    assert.equal(errors.length, 1);
    assert.throws(() => b.write(2), SinkClosedError);
    assert.throws(() => b.add(new RecordingSink()), SinkClosedError);
    assert.throws(() => b.remove(slow), SinkClosedError);
  });

  it('close with an aborted signal does not wait for a stuck sink', async () => {
    const stuck: Sink<number> = { write: () => new Promise(() => {}), close() {} };
    const b = new Broadcaster<number>([stuck]);
    void b.write(1);
    const controller = new AbortController();
    const closing = b.close({ signal: controller.signal });
    await sleep(5);
    controller.abort();
    await closing;
    assert.equal(b.closed, true);
  });

  it('rejects bad input with a TypeError naming it', () => {
    assert.throws(() => new Broadcaster([{} as Sink<number>]), /`sink`/);
    assert.throws(() => new Broadcaster(5 as never), TypeError);
    assert.throws(
      () => new Broadcaster([], { onError: 'x' as never }),
      /Expected `onError` to be a function, got `"x"` \(string\)/,
    );
    const b = new Broadcaster<number>();
    assert.throws(() => b.add(null as never), TypeError);
  });

  it('supports await using', async () => {
    const s = new RecordingSink<number>();
    {
      await using b = new Broadcaster([s]);
      await b.write(1);
    }
    assert.equal(s.closed, true);
  });
});
