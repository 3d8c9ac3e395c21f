import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Channel } from './Channel.js';
import { isSinkClosedError } from './errors/SinkClosedError.js';
import { range } from './test-utils.js';

describe('Channel', () => {
  it('ports go-events TestChannel: 100 concurrent writes, then closed writes fail', async () => {
    const channel = new Channel<string>(0);
    const writes = range(100, 1).map((i) => channel.write(`event-${i}`));
    const received: string[] = [];
    const consumer = (async () => {
      for await (const event of channel) received.push(event);
    })();
    await Promise.all(writes);
    channel.close();
    assert.equal(channel.closed, true);
    let failures = 0;
    for (const i of range(100)) {
      try {
        await channel.write(`late-${i}`);
      } catch (e) {
        if (isSinkClosedError(e)) failures++;
      }
    }
    assert.equal(failures, 100);
    await consumer;
    await channel.done;
    assert.deepEqual(
      received,
      range(100, 1).map((i) => `event-${i}`),
    );
  });

  it('unbuffered write resolves only when taken', async () => {
    const channel = new Channel<number>();
    let taken = false;
    const w = Promise.resolve(channel.write(1)).then(() => (taken = true));
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(taken, false);
    assert.deepEqual(await channel.next(), { done: false, value: 1 });
    await w;
    assert.equal(taken, true);
  });

  it('buffered writes return synchronously until full, then wait', async () => {
    const channel = new Channel<number>(2);
    assert.equal(channel.write(1), undefined);
    assert.equal(channel.write(2), undefined);
    const third = channel.write(3);
    assert.ok(third instanceof Promise);
    assert.equal(channel.size, 2);
    assert.deepEqual(await channel.next(), { done: false, value: 1 });
    await third;
    assert.equal(channel.size, 2);
  });

  it('delivers events buffered before close, then ends; waiting writers are rejected', async () => {
    const channel = new Channel<number>(2);
    void channel.write(1);
    void channel.write(2);
    const waiting = channel.write(3) as Promise<void>;
    channel.close();
    await assert.rejects(waiting, (e) => isSinkClosedError(e));
    const got: number[] = [];
    for await (const e of channel) got.push(e);
    assert.deepEqual(got, [1, 2]);
  });

  it('each event goes to exactly one of several consumers', async () => {
    const channel = new Channel<number>(4);
    const a: number[] = [];
    const b: number[] = [];
    const ca = (async () => {
      for await (const e of channel) a.push(e);
    })();
    const cb = (async () => {
      for await (const e of channel) b.push(e);
    })();
    for (const i of range(200)) await channel.write(i);
    channel.close();
    await Promise.all([ca, cb]);
    assert.deepEqual(
      [...a, ...b].sort((x, y) => x - y),
      range(200),
    );
    assert.ok(a.length > 0 && b.length > 0);
  });

  it('breaking out of for-await does not close the channel', async () => {
    const channel = new Channel<number>(10);
    for (const i of range(3)) void channel.write(i);
    for await (const e of channel) {
      assert.equal(e, 0);
      break;
    }
    assert.equal(channel.closed, false);
    assert.deepEqual(await channel.next(), { done: false, value: 1 });
  });

  it('rejects a bad buffer size with a RangeError naming it', () => {
    assert.throws(
      () => new Channel(-1),
      /Expected `buffer` to be an integer ≥ 0, got `-1` \(number\)/,
    );
    assert.throws(() => new Channel(1.5), RangeError);
    assert.throws(() => new Channel('3' as never), TypeError);
  });
});
