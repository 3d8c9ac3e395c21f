import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Heap } from './Heap.js';

test('Heap pops in order whatever the push order', () => {
  let seed = 7;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const heap = new Heap<number>((a, b) => a < b);
  const values = Array.from({ length: 500 }, () => Math.floor(random() * 100));
  for (const v of values) heap.push(v);
  assert.equal(heap.size, 500);
  const out: number[] = [];
  for (let v = heap.pop(); v !== undefined; v = heap.pop()) out.push(v);
  assert.deepEqual(
    out,
    values.sort((a, b) => a - b),
  );
  assert.equal(heap.peek(), undefined);
});
