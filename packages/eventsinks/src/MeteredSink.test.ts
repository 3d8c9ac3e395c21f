import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSinkClosedError } from './errors/SinkClosedError.js';
import { MeteredSink } from './MeteredSink.js';
import { Queue } from './Queue.js';
import { maxAttempts } from './retry/maxAttempts.js';
import { Breaker } from './retry/Breaker.js';
import { RetryingSink } from './RetryingSink.js';
import { SinkMetrics } from './SinkMetrics.js';
import { RecordingSink, checkClose, range } from './test-utils.js';

describe('MeteredSink and SinkMetrics', () => {
  it('counts events, successes, failures and pending', async () => {
    let clock = 5000;
    const inner = new RecordingSink<number>({ failFirst: 2 });
    const metered = new MeteredSink(inner, { now: () => clock++ });
    for (const i of range(5)) {
      try {
        await metered.write(i);
      } catch {
        // counted below
      }
    }
    const snap = metered.metrics.snapshot();
    assert.equal(snap.events, 5);
    assert.equal(snap.successes, 3);
    assert.equal(snap.failures, 2);
    assert.equal(snap.pending, 0);
    assert.match(String(snap.lastError), /planned failure for 1/);
    assert.equal(snap.lastErrorAt, 5001);
    assert.equal(snap.lastSuccessAt, 5004);
    await checkClose(metered, 9, (e) => assert.ok(isSinkClosedError(e)));
    assert.equal(inner.closed, true);
  });

  it('counts pending while async writes are in flight', async () => {
    const metered = new MeteredSink(new RecordingSink<number>({ delay: 5 }));
    const writes = range(3).map((i) => metered.write(i));
    assert.equal(metered.metrics.pending, 3);
    await Promise.all(writes);
    assert.equal(metered.metrics.pending, 0);
    assert.equal(metered.metrics.successes, 3);
  });

  it('one SinkMetrics describes a pipeline: retries and drops from below', async () => {
    const metrics = new SinkMetrics();
    const inner = new RecordingSink<number>({ failFirst: 4 });
    const retrying = new RetryingSink(inner, maxAttempts(new Breaker(100, 0), 3), {
      metrics,
      onDrop: () => {},
    });
    const metered = new MeteredSink(retrying, { metrics });
    await metered.write(1); // fails 3 times: dropped after 2 retries
    await metered.write(2); // fails once, then succeeds: 1 retry
    assert.equal(metrics.events, 2);
    assert.equal(metrics.successes, 2);
    assert.equal(metrics.dropped, 1);
    assert.equal(metrics.retries, 3);
    assert.deepEqual(inner.events, [2]);

    const queueMetrics = new SinkMetrics();
    const queue = new Queue(new RecordingSink<number>(), {
      capacity: 1,
      overflow: 'drop-newest',
      metrics: queueMetrics,
      onDrop: () => {},
    });
    for (const i of range(3)) void queue.write(i);
    assert.equal(queueMetrics.dropped, 2);
    await queue.close();
  });

  it('counts dead letters once their write succeeded, and renders them', async () => {
    const metrics = new SinkMetrics();
    let deadFails = true;
    const retrying = new RetryingSink(
      new RecordingSink<number>({ failFirst: 10 }),
      maxAttempts(new Breaker(100, 0), 1),
      {
        metrics,
        deadLetter: {
          write: () => {
            if (deadFails) throw new Error('dead letter down');
          },
          close() {},
        },
        onError: () => {},
      },
    );
    await retrying.write(1); // given up on; the dead letter refuses it
    deadFails = false;
    await retrying.write(2); // given up on; kept
    assert.equal(metrics.dropped, 2);
    assert.equal(metrics.deadLettered, 1);
    assert.equal(metrics.snapshot().deadLettered, 1);
    assert.match(
      metrics.toPrometheus('x'),
      /^# TYPE x_dead_lettered_total counter\nx_dead_lettered_total 1$/m,
    );
  });

  it('renders the Prometheus text format', () => {
    const metrics = new SinkMetrics();
    metrics.events = 3;
    metrics.successes = 2;
    metrics.failures = 1;
    metrics.lastSuccessAt = 1_700_000_000_000;
    const text = metrics.toPrometheus('eventsinks_webhook', { endpoint: 'a"b' });
    assert.match(text, /^# HELP eventsinks_webhook_pending /m);
    assert.match(text, /^# TYPE eventsinks_webhook_events_total counter$/m);
    assert.match(text, /^eventsinks_webhook_events_total\{endpoint="a\\"b"\} 3$/m);
    assert.match(text, /^eventsinks_webhook_successes_total\{endpoint="a\\"b"\} 2$/m);
    assert.match(
      text,
      /^eventsinks_webhook_last_success_timestamp_seconds\{endpoint="a\\"b"\} 1700000000$/m,
    );
    assert.doesNotMatch(text, /last_failure/);
    assert.ok(text.endsWith('\n'));
    assert.throws(() => metrics.toPrometheus('bad name'), /`name`.*"bad name"/);
    assert.throws(() => metrics.toPrometheus('ok', { 'bad-label': 'x' }), TypeError);
  });
});
