import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSinkClosedError } from './errors/SinkClosedError.js';
import type { Sink } from './Sink.js';
import { RecordingSink, checkClose } from './test-utils.js';
import { UnbatchingSink } from './UnbatchingSink.js';

describe('UnbatchingSink', () => {
  it('writes every element in order, synchronously when dst is', async () => {
    const dst = new RecordingSink<number>();
    const sink = new UnbatchingSink(dst);
    assert.equal(sink.write([1, 2, 3]), undefined);
    assert.deepEqual(dst.events, [1, 2, 3]);
    await checkClose(sink, [4], (e) => assert.ok(isSinkClosedError(e)));
    assert.equal(dst.closed, true);
  });

  it('issues all writes in the same tick, so a grouping sink sees them together', async () => {
    const groups: number[][] = [];
    let current: number[] | undefined;
    const grouping: Sink<number> = {
      write(e) {
        if (!current) {
          current = [];
          const group = current;
          return Promise.resolve().then(() => {
            groups.push(group);
            current = undefined;
          });
        }
        current.push(e);
        return Promise.resolve();
      },
      close() {},
    };
    await new UnbatchingSink(grouping).write([1, 2, 3, 4]);
    assert.equal(groups.length, 1);
  });

  it('rejects with the first error after every write settled', async () => {
    const dst = new RecordingSink<number>({ failFirst: 1, async: true });
    const sink = new UnbatchingSink(dst);
    await assert.rejects(async () => sink.write([1, 2, 3]), /planned failure for 1/);
    assert.deepEqual(dst.events, [2, 3]);
    assert.throws(() => sink.write(5 as never), TypeError);
  });
});
