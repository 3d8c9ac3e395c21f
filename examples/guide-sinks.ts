// Guide: sinks and the write contract (docs/guide/sinks.md).
// Run: node --import tsx examples/guide-sinks.ts
import assert from 'node:assert/strict';
import { Filter, MapSink, SinkClosedError, isSinkClosedError, type Sink } from 'eventsinks';

interface OrderEvent {
  id: number;
  kind: 'order.created' | 'order.cancelled';
}

// 1. A synchronous sink: write returns undefined once the event is accepted, throws if not.
class MemorySink<E> implements Sink<E> {
  readonly events: E[] = [];
  #closed = false;
  write(event: E): void {
    if (this.#closed) throw new SinkClosedError('MemorySink is closed');
    this.events.push(event);
  }
  close(): void {
    this.#closed = true;
  }
}

// 2. An asynchronous sink: the event is accepted when the returned promise resolves.
class SlowSink implements Sink<OrderEvent> {
  readonly events: OrderEvent[] = [];
  async write(event: OrderEvent): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (event.id === 13) throw new Error('unlucky event');
    this.events.push(event);
  }
  close(): void {}
}

const memory = new MemorySink<OrderEvent>();

// The fast path: a synchronous sink returns undefined, not a promise. Callers `await` either
// way, so the same calling code works for both kinds of sink.
const result = memory.write({ id: 1, kind: 'order.created' });
assert.equal(result, undefined);
await memory.write({ id: 2, kind: 'order.created' });
console.log('memory sink accepted', memory.events.length, 'events synchronously');

// Accepted = returned or resolved. A rejected write was not accepted.
const slow = new SlowSink();
await slow.write({ id: 12, kind: 'order.created' });
await assert.rejects(Promise.resolve(slow.write({ id: 13, kind: 'order.created' })), /unlucky/);
assert.deepEqual(
  slow.events.map((e) => e.id),
  [12],
);
console.log('slow sink accepted event 12 and rejected event 13');

// Composites are sinks too, and keep the fast path: Filter and MapSink over a synchronous sink
// return synchronously.
const envelopes = new MemorySink<{ events: OrderEvent[] }>();
const cancellations = new Filter(
  new MapSink(envelopes, (event: OrderEvent) => ({ events: [event] })),
  (event: OrderEvent) => event.kind === 'order.cancelled',
);
assert.equal(cancellations.write({ id: 3, kind: 'order.created' }), undefined);
assert.equal(cancellations.write({ id: 4, kind: 'order.cancelled' }), undefined);
assert.deepEqual(envelopes.events, [{ events: [{ id: 4, kind: 'order.cancelled' }] }]);
console.log('filter + map passed', envelopes.events.length, 'envelope on');

// Closing is terminal: every later write fails with SinkClosedError. close() is idempotent
// and closes the sink below.
await cancellations.close();
await cancellations.close();
assert.throws(() => cancellations.write({ id: 5, kind: 'order.cancelled' }), isSinkClosedError);
let caught: unknown;
try {
  await cancellations.write({ id: 6, kind: 'order.cancelled' });
} catch (error) {
  caught = error;
}
assert.ok(isSinkClosedError(caught));
console.log('after close:', caught.name, caught.code);
assert.throws(() => envelopes.write({ events: [] }), isSinkClosedError);
