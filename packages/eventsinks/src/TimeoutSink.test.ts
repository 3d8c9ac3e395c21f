import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Broadcaster } from './Broadcaster.js';
import { isSinkClosedError } from './errors/SinkClosedError.js';
import { isSinkTimeoutError } from './errors/SinkTimeoutError.js';
import { Breaker } from './retry/Breaker.js';
import { RetryingSink } from './RetryingSink.js';
import type { Sink } from './Sink.js';
import { RecordingSink, checkClose } from './test-utils.js';
import { TimeoutSink } from './TimeoutSink.js';

const never: Sink<number> = { write: () => new Promise(() => {}), close() {} };

describe('TimeoutSink', () => {
  it('fails a write not accepted in time with SinkTimeoutError', async (t) => {
    t.mock.timers.enable(['setTimeout']);
    const sink = new TimeoutSink(never, 100);
    const write = sink.write(1) as Promise<void>;
    const checked = assert.rejects(write, (e) => isSinkTimeoutError(e) && e.timeout === 100);
    t.mock.timers.tick(100);
    await checked;
    assert.equal(sink.closed, false);
  });

  it('passes through writes in time and synchronous writes', async () => {
    const inner = new RecordingSink<number>({ async: true });
    const sink = new TimeoutSink(inner, 10_000);
    await sink.write(1);
    const sync = new TimeoutSink(new RecordingSink<number>(), 1);
    assert.equal(sync.write(1), undefined);
    assert.deepEqual(inner.events, [1]);
    await checkClose(sink, 2, (e) => assert.ok(isSinkClosedError(e)));
    assert.equal(inner.closed, true);
  });

  it('a timeout is retried by a RetryingSink above', async () => {
    let calls = 0;
    const inner = new RecordingSink<number>();
    const flaky: Sink<number> = {
      write: (e) => (calls++ === 0 ? new Promise(() => {}) : inner.write(e)),
      close() {},
    };
    const sink = new RetryingSink(new TimeoutSink(flaky, 20), new Breaker(5, 1));
    await sink.write(7);
    assert.deepEqual(inner.events, [7]);
    assert.equal(calls, 2);
  });

  it('closeOnTimeout tears the sink down and a Broadcaster removes it', async () => {
    let closed = false;
    const stuck: Sink<number> = {
      write: () => new Promise(() => {}),
      close: () => void (closed = true),
    };
    const good = new RecordingSink<number>();
    const sink = new TimeoutSink(stuck, 20, { closeOnTimeout: true });
    const b = new Broadcaster<number>([sink, good], { onError: () => assert.fail('not an error') });
    await b.write(1);
    assert.equal(b.size, 1);
    assert.equal(sink.closed, true);
    assert.equal(closed, true);
    await b.write(2);
    assert.deepEqual(good.events, [1, 2]);
    await assert.rejects(
      async () => sink.write(3),
      (e) => isSinkClosedError(e),
    );
  });

  it('rejects bad arguments naming them', () => {
    assert.throws(
      () => new TimeoutSink(never, NaN),
      /Expected `timeout` to be a number, got `NaN`/,
    );
    assert.throws(() => new TimeoutSink(never, 0), RangeError);
    assert.throws(() => new TimeoutSink(never, Infinity), RangeError);
    assert.throws(
      () => new TimeoutSink(never, 5, { closeOnTimeout: 'yes' as never }),
      /`closeOnTimeout`/,
    );
  });
});
