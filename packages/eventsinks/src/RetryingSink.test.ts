import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSinkClosedError, SinkClosedError } from './errors/SinkClosedError.js';
import { Breaker } from './retry/Breaker.js';
import { ExponentialBackoff } from './retry/ExponentialBackoff.js';
import { maxAttempts } from './retry/maxAttempts.js';
import type { RetryContext, RetryStrategy } from './retry/RetryStrategy.js';
import { RetryingSink, type DeadLetter } from './RetryingSink.js';
import type { Sink } from './Sink.js';
import { RecordingSink, checkClose, range, settlesWithin, sleep } from './test-utils.js';

/** go-events' flakySink: fails at `rate`, then passes through. */
class FlakySink<E> implements Sink<E> {
  constructor(
    public rate: number,
    readonly inner: RecordingSink<E>,
    readonly async = false,
  ) {}
  write(event: E): void | Promise<void> {
    if (Math.random() < this.rate) {
      const error = new Error(`error writing event: ${String(event)}`);
      if (this.async) return Promise.reject(error);
      throw error;
    }
    return this.inner.write(event);
  }
  close(): void {
    this.inner.close();
  }
}

async function testRetryingSink(strategy: RetryStrategy<unknown>, async: boolean): Promise<void> {
  const nevents = 100;
  const ts = new RecordingSink<string>();
  const flaky = new FlakySink(1.0, ts, async);
  const s = new RetryingSink<string>(flaky, strategy);
  const writes: (void | Promise<void>)[] = [];
  for (let i = 1; i <= nevents; i++) {
    writes.push(s.write(`myevent-${i}`));
    // Always failing for the first writes, then only mostly failing.
    if (i === 10) setTimeout(() => (flaky.rate = 0.9), 20);
    if (i === 50) setTimeout(() => (flaky.rate = 0.5), 40);
  }
  await Promise.all(writes);
  await checkClose(s, 'late', (e) => assert.ok(isSinkClosedError(e)));
  assert.deepEqual(
    ts.events,
    range(nevents, 1).map((i) => `myevent-${i}`),
  );
}

describe('RetryingSink', () => {
  it('ports go-events TestRetryingSinkBreaker (sync and async flaky sinks)', async () => {
    await testRetryingSink(new Breaker(3, 2), false);
    await testRetryingSink(new Breaker(3, 2), true);
  });

  it('ports go-events TestRetryingSinkExponentialBackoff', async () => {
    await testRetryingSink(new ExponentialBackoff({ base: 1, factor: 1, max: 5 }), false);
    await testRetryingSink(new ExponentialBackoff({ base: 1, factor: 1, max: 5 }), true);
  });

  it('returns synchronously when the first attempt succeeds synchronously', () => {
    const sink = new RecordingSink<number>();
    const s = new RetryingSink(sink, new Breaker(3, 10));
    assert.equal(s.write(1), undefined);
    assert.deepEqual(sink.events, [1]);
  });

  it('calls proceed before every attempt and success/failure after', async () => {
    const calls: string[] = [];
    const strategy: RetryStrategy<number> = {
      proceed: (e) => (calls.push(`proceed ${e}`), 0),
      failure: (e) => (calls.push(`failure ${e}`), false),
      success: (e) => void calls.push(`success ${e}`),
    };
    const s = new RetryingSink(new RecordingSink<number>({ failFirst: 2 }), strategy);
    await s.write(7);
    assert.deepEqual(calls, [
      'proceed 7',
      'failure 7',
      'proceed 7',
      'failure 7',
      'proceed 7',
      'success 7',
    ]);
  });

  it('a strategy that drops tells onDrop and resolves the write', async () => {
    const drops: [number, unknown][] = [];
    const sink = new RecordingSink<number>({ failFirst: 1 });
    const s = new RetryingSink(
      sink,
      { proceed: () => 0, failure: () => true, success() {} },
      {
        onDrop: (e, reason) => drops.push([e, reason]),
      },
    );
    await s.write(1);
    await s.write(2);
    assert.deepEqual(sink.events, [2]);
    assert.equal(drops.length, 1);
    assert.equal(drops[0]?.[0], 1);
    assert.match(String(drops[0]?.[1]), /planned failure/);
  });

  it('maxAttempts + deadLetter record what was given up on', async () => {
    const dead: DeadLetter<number>[] = [];
    let clock = 1000;
    const sink: Sink<number> = {
      write: (e) => {
        clock += 10;
        if (e < 0) throw new Error(`negative ${e}`);
      },
      close() {},
    };
    const s = new RetryingSink(sink, maxAttempts(new Breaker(100, 0), 3), {
      deadLetter: { write: (d) => void dead.push(d), close() {} },
      now: () => clock,
    });
    await s.write(-1);
    await s.write(1);
    await s.write(-2);
    assert.equal(dead.length, 2);
    assert.equal(dead[0]?.event, -1);
    assert.equal(dead[0]?.attempts, 3);
    assert.equal(dead[0]?.firstFailedAt, 1010);
    assert.match(String(dead[0]?.error), /negative -1/);
    assert.equal(dead[1]?.event, -2);
  });

  it('maxAttempts gives two equal primitive events in flight at once their full attempts each', async () => {
    // One strategy shared by two sinks: the old per-value count let the two 7s share attempts.
    const strategy = maxAttempts<number>(new Breaker(1000, 0), 3);
    const dead: DeadLetter<number>[] = [];
    const tries = [0, 0];
    const failing = (i: 0 | 1): Sink<number> => ({
      write: async () => {
        tries[i] = (tries[i] ?? 0) + 1;
        await sleep(1);
        throw new Error('down');
      },
      close() {},
    });
    const deadLetter: Sink<DeadLetter<number>> = { write: (d) => void dead.push(d), close() {} };
    const a = new RetryingSink(failing(0), strategy, { deadLetter });
    const b = new RetryingSink(failing(1), strategy, { deadLetter });
    await Promise.all([a.write(7), b.write(7)]);
    assert.deepEqual(tries, [3, 3]);
    assert.deepEqual(
      dead.map((d) => [d.event, d.attempts]),
      [
        [7, 3],
        [7, 3],
      ],
    );
  });

  it('maxAttempts keeps nothing per event: an event dropped by close leaves no count behind', async () => {
    // Backs off 50 ms after a failure, so close() finds the event waiting.
    const strategy = maxAttempts<number>(
      { proceed: (_event, context) => (context ? 50 : 0), failure: () => false, success() {} },
      3,
    );
    let tries = 0;
    const failing: Sink<number> = {
      write: () => {
        tries++;
        throw new Error('down');
      },
      close() {},
    };
    const first = new RetryingSink(failing, strategy, { onDrop() {} });
    const pending = first.write(7);
    await sleep(5);
    await first.close({ signal: AbortSignal.abort() });
    await pending;
    assert.equal(tries, 1); // one attempt failed, close dropped the event while it backed off
    tries = 0;
    const dead: DeadLetter<number>[] = [];
    const second = new RetryingSink(failing, maxAttempts<number>(new Breaker(1000, 0), 3), {
      deadLetter: { write: (d) => void dead.push(d), close() {} },
    });
    // The same value again, through the first strategy's twin and through the first strategy.
    await second.write(7);
    const third = new RetryingSink(failing, strategy, {
      deadLetter: { write: (d) => void dead.push(d), close() {} },
    });
    const written = third.write(7);
    await written;
    assert.deepEqual(
      dead.map((d) => d.attempts),
      [3, 3],
    );
    assert.equal(tries, 6);
  });

  it('a strategy is told the attempt number, the first failure time and the error', async () => {
    let clock = 5000;
    const seen: string[] = [];
    const show = (c: RetryContext | undefined): string =>
      c === undefined ? '-' : `${c.attempt}@${c.firstFailedAt}:${String(c.error)}`;
    let calls = 0;
    const strategy: RetryStrategy<string> = {
      proceed: (event, context) => (seen.push(`proceed ${event} ${show(context)}`), 0),
      failure: (event, _error, context) => (seen.push(`failure ${event} ${show(context)}`), false),
      success: (event, context) => void seen.push(`success ${event} ${show(context)}`),
    };
    const sink: Sink<string> = {
      write: (event) => {
        clock += 100;
        calls++;
        if (event === 'x' && calls <= 3) throw new Error(`e${calls}`);
      },
      close() {},
    };
    const s = new RetryingSink(sink, strategy, { now: () => clock });
    await s.write('x');
    await s.write('y');
    assert.deepEqual(seen, [
      'proceed x -',
      'failure x 1@5100:Error: e1',
      'proceed x 1@5100:Error: e1',
      'failure x 2@5100:Error: e2',
      'proceed x 2@5100:Error: e2',
      'failure x 3@5100:Error: e3',
      'proceed x 3@5100:Error: e3',
      'success x 3@5100:Error: e3',
      'proceed y -',
      'success y -',
    ]);
  });

  it('a strategy written before the context existed keeps working', async () => {
    let failures = 0;
    const old = {
      proceed: (_event: number): number => 0,
      failure: (_event: number, _error: unknown): boolean => ++failures >= 2,
      success: (_event: number): void => {},
    };
    const dead: DeadLetter<number>[] = [];
    const s = new RetryingSink<number>(
      {
        write: () => {
          throw new Error('down');
        },
        close() {},
      },
      maxAttempts(old, 5),
      { deadLetter: { write: (d) => void dead.push(d), close() {} } },
    );
    await s.write(1);
    assert.equal(dead[0]?.attempts, 2);
  });

  it('maxAttempts refuses a failure() call that does not pass the context on', () => {
    const s = maxAttempts(new Breaker(1, 1), 3);
    assert.throws(() => s.failure(1, new Error('x')), /`context`/);
    assert.equal(s.failure(1, new Error('x'), { attempt: 3, firstFailedAt: 0, error: 'x' }), true);
    assert.equal(s.failure(1, new Error('x'), { attempt: 2, firstFailedAt: 0, error: 'x' }), false);
  });

  it('SinkClosedError from the wrapped sink is terminal', async () => {
    const inner = new RecordingSink<number>();
    inner.close();
    let failures = 0;
    const s = new RetryingSink(inner, {
      proceed: () => 0,
      failure: () => (failures++, false),
      success() {},
    });
    await assert.rejects(async () => s.write(1), SinkClosedError);
    assert.equal(failures, 0);
  });

  it('serializes concurrent writes so retries never reorder', async () => {
    const inner = new RecordingSink<number>({ async: true });
    const flaky = new FlakySink(0.5, inner, true);
    const s = new RetryingSink(flaky, new Breaker(2, 1));
    await Promise.all(range(200).map((i) => s.write(i)));
    assert.deepEqual(inner.events, range(200));
  });

  it('close during a long backoff rejects every pending write promptly and closes the sink', async () => {
    const inner = new RecordingSink<number>({ failFirst: 1_000_000 });
    const s = new RetryingSink(inner, new Breaker(1, 60_000));
    const first = Promise.resolve(s.write(1));
    const second = Promise.resolve(s.write(2));
    const firstRejected = assert.rejects(first, (e) => isSinkClosedError(e));
    const secondRejected = assert.rejects(second, (e) => isSinkClosedError(e));
    await sleep(5);
    const closing = s.close();
    assert.ok(await settlesWithin(Promise.all([firstRejected, secondRejected, closing]), 1000));
    assert.equal(inner.closed, true);
    assert.equal(s.size, 0);
  });

  it('close with a signal retries until the deadline, then drops what is left', async () => {
    const inner = new RecordingSink<number>({ failFirst: 1_000_000 });
    const drops: [number, unknown][] = [];
    const s = new RetryingSink(inner, new Breaker(1, 5), { onDrop: (e, r) => drops.push([e, r]) });
    const writes = [s.write(1), s.write(2)];
    const controller = new AbortController();
    const closing = s.close({ signal: controller.signal });
    assert.throws(() => s.write(3), SinkClosedError);
    await sleep(20);
    assert.deepEqual(drops, []);
    controller.abort();
    await closing;
    await Promise.all(writes); // dropped writes resolve: they are on record in onDrop
    assert.deepEqual(drops, [
      [1, 'closed'],
      [2, 'closed'],
    ]);
    assert.equal(inner.closed, true);
  });

  it('close with a signal lets pending writes finish when they can', async () => {
    const inner = new RecordingSink<number>({ failFirst: 3 });
    const s = new RetryingSink(inner, new Breaker(1, 2));
    const writes = [s.write(1), s.write(2)];
    await s.close({ signal: AbortSignal.timeout(10_000) });
    await Promise.all(writes);
    assert.deepEqual(inner.events, [1, 2]);
  });

  it('rejects bad arguments', () => {
    const sink = new RecordingSink<number>();
    assert.throws(() => new RetryingSink(sink, {} as never), /`strategy`/);
    assert.throws(() => new RetryingSink({} as never, new Breaker(1, 1)), /`sink`/);
    assert.throws(
      () => new RetryingSink(sink, new Breaker(1, 1), { deadLetter: 5 as never }),
      /`deadLetter`/,
    );
    assert.throws(() => maxAttempts(new Breaker(1, 1), 0), /`attempts`/);
  });
});
