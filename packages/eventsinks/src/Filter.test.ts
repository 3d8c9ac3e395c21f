import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSinkClosedError } from './errors/SinkClosedError.js';
import { Filter } from './Filter.js';
import type { Sink } from './Sink.js';
import { RecordingSink, checkClose, range } from './test-utils.js';

describe('Filter', () => {
  it('ports go-events TestFilter: passes exactly the even half', async () => {
    const sink = new RecordingSink<number>();
    const filter = new Filter(sink, (e: number) => e % 2 === 0);
    for (const i of range(100)) assert.equal(filter.write(i), undefined);
    assert.deepEqual(
      sink.events,
      range(50).map((i) => i * 2),
    );
    await checkClose(filter, 1, (e) => assert.ok(isSinkClosedError(e)));
    assert.equal(sink.closed, true);
    assert.equal(sink.closeCalls, 1);
  });

  it('accepts a { match } object', () => {
    const sink = new RecordingSink<string>();
    const filter = new Filter(sink, { match: (e: string) => e.startsWith('a') });
    for (const e of ['apple', 'banana', 'avocado']) void filter.write(e);
    assert.deepEqual(sink.events, ['apple', 'avocado']);
  });

  it('narrows with a type guard', () => {
    type Ev = { kind: 'push'; repo: string } | { kind: 'pull' };
    const pushes = new RecordingSink<{ kind: 'push'; repo: string }>();
    const filter: Sink<Ev> = new Filter(
      pushes,
      (e: Ev): e is { kind: 'push'; repo: string } => e.kind === 'push',
    );
    void filter.write({ kind: 'pull' });
    void filter.write({ kind: 'push', repo: 'a' });
    assert.deepEqual(pushes.events, [{ kind: 'push', repo: 'a' }]);
  });

  it('passes async results through', async () => {
    const sink = new RecordingSink<number>({ async: true });
    const filter = new Filter(sink, () => true);
    const r = filter.write(1);
    assert.ok(r instanceof Promise);
    await r;
    assert.deepEqual(sink.events, [1]);
  });

  it('rejects a bad matcher', () => {
    assert.throws(
      () => new Filter(new RecordingSink(), 3 as never),
      /Expected `matcher`.*`3` \(number\)/,
    );
  });
});

describe('Filter close with a deadline', () => {
  it('passes the signal on to a draining sink below', async () => {
    let received: unknown;
    const dst = {
      write() {},
      close(options?: { signal?: AbortSignal }) {
        received = options?.signal;
      },
    };
    const filter = new Filter(dst, () => true);
    const signal = AbortSignal.timeout(1000);
    await filter.close({ signal });
    assert.equal(received, signal);
  });
});
