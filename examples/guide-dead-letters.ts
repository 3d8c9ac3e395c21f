// Guide: dead letters and metrics (docs/guide/dead-letters-and-metrics.md).
// Run: node --import tsx examples/guide-dead-letters.ts
import assert from 'node:assert/strict';
import {
  Breaker,
  MeteredSink,
  Queue,
  RetryingSink,
  SinkMetrics,
  maxAttempts,
  type DeadLetter,
  type Sink,
} from 'eventsinks';

interface Hook {
  id: number;
  url: string;
}

// The destination: events for the "broken" endpoint always fail; every other event fails once
// (a transient error), then succeeds.
const delivered: number[] = [];
const seen = new Set<number>();
const endpoint: Sink<Hook> = {
  async write(hook) {
    if (hook.url.includes('broken')) throw new Error(`connect ECONNREFUSED ${hook.url}`);
    if (!seen.has(hook.id)) {
      seen.add(hook.id);
      throw new Error('503 Service Unavailable');
    }
    delivered.push(hook.id);
  },
  close() {},
};

// The dead-letter sink receives { event, error, attempts, firstFailedAt } for every event the
// strategy gives up on. Here it is an array; in production, a file, a table or another queue.
const deadLetters: DeadLetter<Hook>[] = [];
const deadLetterSink: Sink<DeadLetter<Hook>> = {
  write: (letter) => {
    deadLetters.push(letter);
  },
  close() {},
};

// One SinkMetrics for the whole pipeline: MeteredSink counts writes into the queue (events,
// successes, failures, pending); the Queue and RetryingSink below add dropped and retries.
let clock = 1_700_000_000_000;
const now = (): number => clock++;
const metrics = new SinkMetrics();
// A second MeteredSink right above the endpoint counts attempts rather than events: where a
// MeteredSink sits decides what its counters mean.
const attempts = new MeteredSink(endpoint, { now });
const retrying = new RetryingSink(attempts, maxAttempts(new Breaker(5, 10), 3), {
  deadLetter: deadLetterSink,
  metrics,
  now,
});
const pipeline = new MeteredSink(new Queue(retrying, { metrics }), { metrics, now });

for (let id = 1; id <= 5; id++) {
  await pipeline.write({
    id,
    url: id === 3 ? 'https://broken.example/hook' : 'https://ok.example/hook',
  });
}
await pipeline.close(); // the Queue flushes (retrying as needed), then everything closes

assert.deepEqual(delivered, [1, 2, 4, 5]);
assert.equal(deadLetters.length, 1);
const [letter] = deadLetters;
assert.equal(letter?.event.id, 3);
assert.equal(letter?.attempts, 3);
assert.match(String(letter?.error), /ECONNREFUSED/);
assert.equal(typeof letter?.firstFailedAt, 'number');
console.log(
  `dead letter: event ${letter?.event.id} after ${letter?.attempts} attempts: ${String(letter?.error)}`,
);

// The counters. The Queue accepted all 5 writes at once (successes = accepted by the queue);
// below it, 4 events needed one retry each, event 3 two retries before it was dropped.
const snapshot = metrics.snapshot();
assert.equal(snapshot.events, 5);
assert.equal(snapshot.successes, 5);
assert.equal(snapshot.failures, 0);
assert.equal(snapshot.pending, 0);
assert.equal(snapshot.retries, 4 + 2);
assert.equal(snapshot.dropped, 1);
console.log('snapshot:', JSON.stringify({ ...snapshot, lastError: undefined }));

// Just above the endpoint: 11 attempts, 4 accepted, 7 failed (4 transient, 3 for event 3).
const perAttempt = attempts.metrics.snapshot();
assert.deepEqual([perAttempt.events, perAttempt.successes, perAttempt.failures], [11, 4, 7]);
console.log(
  `attempts: ${perAttempt.events}, accepted ${perAttempt.successes}, failed ${perAttempt.failures}`,
);

// Prometheus text exposition format, ready to serve on /metrics.
const text = metrics.toPrometheus('eventsinks_webhook', { endpoint: 'ok.example' });
assert.match(text, /^eventsinks_webhook_dropped_total\{endpoint="ok.example"\} 1$/m);
assert.match(text, /^# TYPE eventsinks_webhook_pending gauge$/m);
console.log(text.trimEnd());
