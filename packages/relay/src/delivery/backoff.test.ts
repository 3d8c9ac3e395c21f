import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay } from './backoff.js';

const config = { base: 100, factor: 100, max: 1000 };

test('backoffDelay is full jitter below min(base + factor·2^(attempt−1), max)', () => {
  assert.equal(
    backoffDelay(1, config, () => 0.5),
    100,
  ); // bound 200
  assert.equal(
    backoffDelay(2, config, () => 0.5),
    150,
  ); // bound 300
  assert.equal(
    backoffDelay(3, config, () => 0.5),
    250,
  ); // bound 500
  assert.equal(
    backoffDelay(10, config, () => 0.5),
    500,
  ); // capped at 1000
  assert.equal(
    backoffDelay(1, config, () => 0),
    0,
  );
});

test('backoffDelay is 0 before any failure and survives factor 0 with huge attempts', () => {
  assert.equal(
    backoffDelay(0, config, () => 0.9),
    0,
  );
  assert.equal(
    backoffDelay(5000, { base: 10, factor: 0, max: 100 }, () => 0.5),
    5,
  );
  assert.equal(
    backoffDelay(5000, config, () => 0.5),
    500,
  );
});
