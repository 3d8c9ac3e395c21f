import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSinkClosedError } from './errors/SinkClosedError.js';
import { MapSink } from './MapSink.js';
import { RecordingSink, checkClose } from './test-utils.js';

describe('MapSink', () => {
  it('wraps each event in an envelope, synchronously when dst is', async () => {
    const dst = new RecordingSink<{ events: string[] }>();
    const sink = new MapSink(dst, (e: string) => ({ events: [e] }));
    assert.equal(sink.write('a'), undefined);
    assert.deepEqual(dst.events, [{ events: ['a'] }]);
    await checkClose(sink, 'b', (e) => assert.ok(isSinkClosedError(e)));
    assert.equal(dst.closed, true);
  });

  it('a throwing transform fails the write and passes nothing on', () => {
    const dst = new RecordingSink<number>();
    const sink = new MapSink(dst, (e: number) => {
      if (e < 0) throw new RangeError('negative');
      return e * 2;
    });
    assert.throws(() => sink.write(-1), RangeError);
    void sink.write(2);
    assert.deepEqual(dst.events, [4]);
    assert.throws(() => new MapSink(dst, 'x' as never), /`fn`/);
  });
});
