import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket } from './TokenBucket.js';

test('TokenBucket starts with its burst, then gives a token every 1000/perSecond ms', () => {
  let now = 0;
  const bucket = new TokenBucket({ perSecond: 100, now: () => now });
  assert.equal(bucket.burst, 5);
  for (let i = 0; i < 5; i++) assert.equal(bucket.take(), 0);
  assert.equal(bucket.take(), 10);
  now += 9;
  assert.ok(bucket.take() > 0);
  now += 1;
  assert.equal(bucket.take(), 0);
  assert.ok(bucket.take() > 0);
});

test('TokenBucket holds the rate over any second: at most perSecond + burst starts', () => {
  let now = 0;
  const bucket = new TokenBucket({ perSecond: 20, now: () => now });
  const starts: number[] = [];
  while (now < 5000) {
    const wait = bucket.take();
    if (wait === 0) starts.push(now);
    else now += wait;
  }
  for (const start of starts) {
    const inWindow = starts.filter((s) => s >= start && s < start + 1000).length;
    assert.ok(inWindow <= 21, `${inWindow} starts in the second from ${start}`);
  }
  assert.ok(starts.length >= 99 && starts.length <= 101, `${starts.length} starts in 5 s`);
});

test('TokenBucket.wait takes nothing; a bad perSecond is named', () => {
  const bucket = new TokenBucket({ perSecond: 1, now: () => 0 });
  assert.equal(bucket.wait(), 0);
  assert.equal(bucket.wait(), 0);
  assert.equal(bucket.take(), 0);
  assert.equal(bucket.wait(), 1000);
  assert.throws(() => new TokenBucket({ perSecond: 0 }), /perSecond.*got 0/);
});
