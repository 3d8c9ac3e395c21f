// Guide: Broadcaster and Channel (docs/guide/broadcaster.md).
// Run: node --import tsx examples/guide-broadcaster.ts
import assert from 'node:assert/strict';
import { Broadcaster, Channel, Queue, SinkClosedError, type Sink } from 'eventsinks';

/** An async sink with a random latency per write, recording what it accepted. */
function jitterySink(name: string): Sink<number> & { name: string; seen: number[] } {
  return {
    name,
    seen: [],
    async write(event) {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
      this.seen.push(event);
    },
    close() {},
  };
}

const errors: string[] = [];
const broadcaster = new Broadcaster<number>([], {
  // Every failure of a sink other than SinkClosedError lands here (default: console.error).
  onError: (error, event) => errors.push(`event ${String(event)}: ${String(error)}`),
});

const a = jitterySink('a');
const b = jitterySink('b');
await broadcaster.add(a);
await broadcaster.add(b);
await broadcaster.add(a); // already present: not added twice
assert.equal(broadcaster.size, 2);

// Writes are not awaited one by one: the Broadcaster still delivers in write order to every
// sink, one sink after the other, even though each write takes a random time.
const writes: (void | Promise<void>)[] = [];
for (let i = 0; i < 20; i++) writes.push(broadcaster.write(i));

// add/remove take effect in call order too: c sees only the events written after this add.
const c = jitterySink('c');
writes.push(broadcaster.add(c));
for (let i = 20; i < 25; i++) writes.push(broadcaster.write(i));
await Promise.all(writes);

const upTo = (n: number, from = 0): number[] =>
  Array.from({ length: n - from }, (_, i) => i + from);
assert.deepEqual(a.seen, upTo(25));
assert.deepEqual(b.seen, upTo(25));
assert.deepEqual(c.seen, upTo(25, 20));
console.log('a, b got 25 events in order; c (added later) got', c.seen.join(','));

// A failing sink never stops the others: its error goes to onError; a sink that reports
// SinkClosedError is removed.
const failing: Sink<number> = {
  write: () => {
    throw new Error('disk full');
  },
  close() {},
};
const gone: Sink<number> = {
  write: () => {
    throw new SinkClosedError('gone');
  },
  close() {},
};
await broadcaster.add(failing);
await broadcaster.add(gone);
await broadcaster.write(25);
assert.equal(a.seen.at(-1), 25);
assert.equal(c.seen.at(-1), 25);
assert.deepEqual(errors, ['event 25: Error: disk full']);
assert.equal(broadcaster.size, 4); // `gone` was removed
console.log('failing sink reported to onError; closed sink removed; size', broadcaster.size);

// A Channel is a sink you iterate. Put a Queue in front so a slow consumer never holds up the
// Broadcaster (go-events' advice: queue in front of every listener).
const channel = new Channel<number>();
await broadcaster.remove(failing);
await broadcaster.add(new Queue(channel));
const consumed: number[] = [];
const consumer = (async () => {
  for await (const event of channel) consumed.push(event);
})();
for (let i = 26; i < 30; i++) await broadcaster.write(i);

// close() waits for what is in flight, then closes every sink: the Queue flushes into the
// Channel, closes it, and the for-await loop ends.
await broadcaster.close();
await consumer;
await channel.done;
assert.deepEqual(consumed, [26, 27, 28, 29]);
assert.throws(() => broadcaster.write(30), SinkClosedError);
console.log('channel consumer got', consumed.join(','), 'then iteration ended');
