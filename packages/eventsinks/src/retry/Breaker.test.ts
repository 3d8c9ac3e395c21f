import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Breaker } from './Breaker.js';

describe('Breaker', () => {
  it('proceeds at once below the threshold, then backs off from the last failure', () => {
    let now = 10_000;
    const b = new Breaker(3, 1000, { now: () => now });
    assert.equal(b.proceed(), 0);
    assert.equal(b.failure(undefined, new Error('x')), false);
    assert.equal(b.failure(undefined, new Error('x')), false);
    assert.equal(b.proceed(), 0);
    assert.equal(b.failure(undefined, new Error('x')), false);
    assert.equal(b.proceed(), 1000);
    now += 400;
    assert.equal(b.proceed(), 600);
    now += 700;
    assert.equal(b.proceed(), 0);
    b.failure(undefined, new Error('again'));
    assert.equal(b.proceed(), 1000);
    b.success();
    assert.equal(b.proceed(), 0);
    assert.equal(b.failures, 0);
  });

  it('rejects bad arguments naming them', () => {
    assert.throws(() => new Breaker(-1, 10), /`threshold`.*`-1`/);
    assert.throws(() => new Breaker(1.5, 10), RangeError);
    assert.throws(() => new Breaker(1, NaN), /`backoff`.*NaN/);
    assert.throws(() => new Breaker(1, -5), RangeError);
  });
});

describe('Breaker with fake timers', () => {
  it('reads Date.now at call time, so a clock mocked after construction applies', (t) => {
    const b = new Breaker(1, 1000);
    t.mock.timers.enable(['Date'] as never);
    b.failure();
    assert.equal(b.proceed(), 1000);
    t.mock.timers.tick(250);
    assert.equal(b.proceed(), 750);
  });
});
