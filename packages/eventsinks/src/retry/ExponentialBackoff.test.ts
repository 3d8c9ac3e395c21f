import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_EXPONENTIAL_BACKOFF, ExponentialBackoff } from './ExponentialBackoff.js';

describe('ExponentialBackoff', () => {
  it('ports go-events TestExponentialBackoff: bounds after 1..10 failures, reset on success', () => {
    const strategy = new ExponentialBackoff(DEFAULT_EXPONENTIAL_BACKOFF);
    assert.equal(strategy.proceed(undefined), 0);
    const { base, factor, max } = DEFAULT_EXPONENTIAL_BACKOFF;
    for (let i = 1; i <= 10; i++) {
      assert.equal(strategy.failure(undefined, undefined), false);
      const bound = Math.min(base + factor * 2 ** (i - 1), max);
      let sum = 0;
      for (let j = 0; j < 1000; j++) {
        const backoff = strategy.proceed(undefined);
        assert.ok(backoff >= 0 && backoff < bound, `after ${i} failures: ${backoff} ≥ ${bound}`);
        sum += backoff;
      }
      // Full jitter: the mean of a uniform draw on [0, bound) is bound/2.
      const mean = sum / 1000;
      assert.ok(mean > bound * 0.4 && mean < bound * 0.6, `mean ${mean} for bound ${bound}`);
    }
    strategy.success(undefined);
    assert.equal(strategy.proceed(undefined), 0);
  });

  it('fills defaults and uses an injected random source', () => {
    const s = new ExponentialBackoff({ base: 10 }, { random: () => 0.5 });
    assert.deepEqual(s.config, { base: 10, factor: 1000, max: 20000 });
    s.failure();
    assert.equal(s.proceed(), 505);
    s.failure();
    assert.equal(s.proceed(), 1005);
    for (let i = 0; i < 2000; i++) s.failure();
    assert.equal(s.proceed(), 10000);
  });

  it('a zero factor never yields NaN', () => {
    const s = new ExponentialBackoff({ base: 5, factor: 0 }, { random: () => 0.999 });
    for (let i = 0; i < 5000; i++) s.failure();
    assert.ok(Number.isFinite(s.proceed()));
  });

  it('rejects bad config naming the key', () => {
    assert.throws(() => new ExponentialBackoff({ base: -1 }), /`base`.*`-1`/);
    assert.throws(() => new ExponentialBackoff({ max: NaN }), /`max`/);
    assert.throws(() => new ExponentialBackoff({ factor: Infinity }), RangeError);
    assert.throws(() => new ExponentialBackoff(null as never), TypeError);
  });
});
