// Guide: retries and strategies (docs/guide/retries.md).
// Run: node --import tsx examples/guide-retries.ts
import assert from 'node:assert/strict';
import {
  Breaker,
  ExponentialBackoff,
  RetryingSink,
  TimeoutSink,
  isSinkTimeoutError,
  maxAttempts,
  type RetryStrategy,
  type Sink,
} from 'eventsinks';

/** A sink that fails its first `failures` attempts, then accepts; records every attempt. */
function flakySink(failures: number): Sink<string> & { attempts: string[]; accepted: string[] } {
  let left = failures;
  return {
    attempts: [],
    accepted: [],
    async write(event) {
      this.attempts.push(event);
      if (left > 0) {
        left--;
        throw new Error(`503 for ${event}`);
      }
      this.accepted.push(event);
    },
    close() {},
  };
}

// 1. The strategies on their own, with an injected clock and random source, so the numbers
// are exact. Breaker: after `threshold` consecutive failures, wait until lastFailure + backoff.
{
  let now = 0;
  const breaker = new Breaker(2, 1000, { now: () => now });
  breaker.failure('e', new Error('x'));
  assert.equal(breaker.proceed('e'), 0); // 1 failure < threshold 2: go at once
  breaker.failure('e', new Error('x'));
  assert.equal(breaker.proceed('e'), 1000); // tripped: wait out the backoff
  now = 400;
  assert.equal(breaker.proceed('e'), 600);
  now = 5000;
  assert.equal(breaker.proceed('e'), 0); // never negative, unlike go-events
  breaker.success('e');
  assert.equal(breaker.failures, 0);
  console.log('Breaker(2, 1000): 0, 1000, 600, 0 ms; a success resets it');

  // ExponentialBackoff: full jitter in [0, min(base + factor * 2^(f-1), max)).
  const backoff = new ExponentialBackoff(
    { base: 100, factor: 100, max: 1000 },
    { random: () => 0.5 },
  );
  const delays: number[] = [];
  for (let f = 1; f <= 5; f++) {
    backoff.failure('e', new Error('x'));
    delays.push(backoff.proceed('e'));
  }
  assert.deepEqual(delays, [100, 150, 250, 450, 500]); // half of 200, 300, 500, 900, 1000
  console.log('ExponentialBackoff bounds 200..1000 ms, at random 0.5:', delays.join(', '));
}

// 2. RetryingSink retries each write until it succeeds. Writes are serialized in call order,
// so a retry never lets a later event overtake an earlier one.
{
  const sink = flakySink(3);
  const retrying = new RetryingSink(sink, new ExponentialBackoff({ base: 1, factor: 1, max: 5 }));
  await Promise.all(['a', 'b', 'c'].map((event) => retrying.write(event)));
  assert.deepEqual(sink.attempts, ['a', 'a', 'a', 'a', 'b', 'c']);
  assert.deepEqual(sink.accepted, ['a', 'b', 'c']);
  await retrying.close(); // closes the wrapped sink too
  console.log('RetryingSink: a failed 3 times, then a, b, c delivered in order');
}

// 3. Give up: maxAttempts drops an event after n failed attempts; onDrop is told and the write
// resolves (the event is gone: see the dead-letter guide to keep it).
{
  const sink = flakySink(Infinity);
  const dropped: string[] = [];
  const retrying = new RetryingSink(sink, maxAttempts(new Breaker(10, 5), 3), {
    onDrop: (event, reason) => dropped.push(`${event} (${String(reason)})`),
  });
  await retrying.write('doomed');
  assert.equal(sink.attempts.length, 3);
  assert.deepEqual(dropped, ['doomed (Error: 503 for doomed)']);
  await retrying.close();
  console.log('maxAttempts(…, 3): 3 attempts, then dropped:', dropped[0]);
}

// 4. A strategy is three methods; write your own. This one retries at once, and drops on a
// 4xx-style error that retrying cannot fix.
{
  const permanent = (error: unknown): boolean =>
    error instanceof Error && /^4\d\d/.test(error.message);
  const strategy: RetryStrategy<string> = {
    proceed: () => 0,
    failure: (_event, error) => permanent(error),
    success: () => {},
  };
  let calls = 0;
  const sink: Sink<string> = {
    write: () => {
      calls++;
      throw new Error(calls < 3 ? '503 unavailable' : '404 not found');
    },
    close() {},
  };
  const dropped: string[] = [];
  await new RetryingSink(sink, strategy, { onDrop: (event) => dropped.push(event) }).write('x');
  assert.equal(calls, 3);
  assert.deepEqual(dropped, ['x']);
  console.log('custom strategy: retried two 503s, dropped on the 404');
}

// 5. TimeoutSink: a write not accepted in time fails with the retryable SinkTimeoutError, so a
// RetryingSink above tries again. The timed-out write may still land: at-least-once.
{
  let calls = 0;
  const hanging: Sink<string> & { accepted: string[] } = {
    accepted: [],
    write(event) {
      calls++;
      // The first call hangs for 200 ms; later calls answer in 1 ms.
      const ms = calls === 1 ? 200 : 1;
      return new Promise<void>((resolve) =>
        setTimeout(() => {
          this.accepted.push(event);
          resolve();
        }, ms),
      );
    },
    close() {},
  };
  const timeouts: unknown[] = [];
  const strategy: RetryStrategy<string> = {
    proceed: () => 0,
    failure: (_event, error) => {
      timeouts.push(error);
      return false;
    },
    success: () => {},
  };
  const retrying = new RetryingSink(new TimeoutSink(hanging, 20), strategy);
  await retrying.write('ping');
  assert.equal(calls, 2);
  assert.ok(isSinkTimeoutError(timeouts[0]));
  await new Promise((resolve) => setTimeout(resolve, 250));
  assert.deepEqual(hanging.accepted, ['ping', 'ping']); // the hung first attempt landed too
  await retrying.close();
  console.log(
    'TimeoutSink(20 ms): first attempt timed out, retry succeeded; the event arrived twice',
  );
}
