import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueueFullError, isQueueFullError } from './QueueFullError.js';
import { SinkClosedError, isSinkClosedError } from './SinkClosedError.js';

describe('errors', () => {
  it('SinkClosedError has name, code, cause and a brand guard', () => {
    const cause = new Error('root');
    const e = new SinkClosedError('gone', { cause });
    assert.equal(e.name, 'SinkClosedError');
    assert.equal(e.code, 'ERR_SINK_CLOSED');
    assert.equal(e.cause, cause);
    assert.ok(e instanceof Error);
    assert.ok(isSinkClosedError(e));
    assert.equal(isSinkClosedError(new Error('x')), false);
    assert.equal(isSinkClosedError({ code: 'ERR_SINK_CLOSED' }), false);
    assert.equal(isSinkClosedError(null), false);
  });

  it('guards recognise errors from another copy of the package', () => {
    // A second copy has its own class but registers the same global brand symbol.
    const foreign = new Error('from another install');
    Object.defineProperty(foreign, Symbol.for('eventsinks.error.code'), {
      value: 'ERR_SINK_CLOSED',
    });
    assert.ok(isSinkClosedError(foreign));
    assert.equal(isQueueFullError(foreign), false);
  });

  it('QueueFullError carries the capacity', () => {
    const e = new QueueFullError(5);
    assert.equal(e.name, 'QueueFullError');
    assert.equal(e.code, 'ERR_QUEUE_FULL');
    assert.equal(e.capacity, 5);
    assert.ok(isQueueFullError(e));
    assert.equal(isSinkClosedError(e), false);
  });
});
