import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isSinkClosedError } from '../errors/SinkClosedError.js';
import { maxAttempts } from '../retry/maxAttempts.js';
import { Breaker } from '../retry/Breaker.js';
import { RetryingSink, type DeadLetter } from '../RetryingSink.js';
import { RecordingSink, range } from '../test-utils.js';
import {
  DurableQueue,
  QueueFile,
  isDecodeError,
  isEncodeError,
  isQueueLockedError,
} from './index.js';

const root = mkdtempSync(join(tmpdir(), 'eventsinks-queuefile-'));
after(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
const temp = (): string => join(root, `file-${++files}.db`);

describe('QueueFile', () => {
  it('appends, lists in pages, removes by id; ids increase and are never reused', () => {
    const path = temp();
    const file = new QueueFile<string>({ path });
    assert.equal(file.size, 0);
    const ids = range(5).map((i) => file.append(`e${i}`));
    assert.deepEqual(ids, [1, 2, 3, 4, 5]);
    assert.equal(file.size, 5);
    assert.deepEqual(file.list({ limit: 2 }), [
      { id: 1, event: 'e0' },
      { id: 2, event: 'e1' },
    ]);
    assert.deepEqual(
      file.list({ after: 2, limit: 2 }).map((e) => e.id),
      [3, 4],
    );
    assert.equal(file.remove([5, 2, 42]), 2);
    assert.equal(file.remove(1), 1);
    assert.equal(file.append('e5'), 6); // 5 was removed; its id is not reused
    assert.deepEqual(
      file.list().map((e) => e.event),
      ['e2', 'e3', 'e5'],
    );
    file.close();
    file.close(); // idempotent
    assert.equal(file.closed, true);
    assert.throws(
      () => file.list(),
      (e) => isSinkClosedError(e),
    );
    assert.throws(
      () => file.append('x'),
      (e) => isSinkClosedError(e),
    );
  });

  it('what it holds, a DurableQueue on the same file delivers (dlq replay)', async () => {
    const path = temp();
    {
      using file = new QueueFile<number>({ path });
      for (const i of range(10)) file.write(i);
    }
    const sink = new RecordingSink<number>();
    await new DurableQueue(sink, { path }).close();
    assert.deepEqual(sink.events, range(10));
    using file = new QueueFile<number>({ path });
    assert.equal(file.size, 0);
  });

  it('and what a closed DurableQueue left, it lists (dlq list)', async () => {
    const path = temp();
    const queue = new DurableQueue<number>(
      { write: () => new Promise(() => {}), close() {} },
      { path },
    );
    await Promise.all(range(3).map((i) => queue.write(i)));
    await queue.close({ signal: AbortSignal.abort() });
    using file = new QueueFile<number>({ path });
    assert.deepEqual(
      file.list().map((e) => e.event),
      [0, 1, 2],
    );
  });

  it('is a durable dead-letter sink for a RetryingSink', async () => {
    const path = temp();
    const dead = new QueueFile<DeadLetter<number>>({ path });
    const failing = new RecordingSink<number>({ failFirst: 2 });
    const retrying = new RetryingSink(failing, maxAttempts(new Breaker(1000, 0), 1), {
      deadLetter: dead,
    });
    await retrying.write(1);
    await retrying.write(2);
    await retrying.write(3);
    const letters = dead.list();
    assert.deepEqual(
      letters.map((l) => [l.event.event, l.event.attempts]),
      [
        [1, 1],
        [2, 1],
      ],
    );
    assert.deepEqual(failing.events, [3]);
    // The error survives JSON: plain JSON.stringify would have stored {}.
    assert.deepEqual(letters[0]!.event.error, { name: 'Error', message: 'planned failure for 1' });
    await retrying.close();
    dead.close();
  });

  it('holds the same lock as a DurableQueue', async () => {
    const path = temp();
    const file = new QueueFile({ path });
    assert.throws(
      () => new DurableQueue(new RecordingSink(), { path }),
      (e) => isQueueLockedError(e),
    );
    file.close();
    await new DurableQueue(new RecordingSink(), { path }).close();
  });

  it('reports what it cannot encode or decode, and bad arguments', () => {
    const path = temp();
    const file = new QueueFile<unknown>({ path });
    assert.throws(
      () => file.append({ n: 1n }),
      (e) => isEncodeError(e) && e instanceof TypeError,
    );
    assert.equal(file.size, 0);
    file.append('{');
    file.close();
    const strict = new QueueFile<unknown>({
      path,
      codec: {
        encode: JSON.stringify,
        decode: () => {
          throw new Error('nope');
        },
      },
    });
    assert.throws(
      () => strict.list(),
      (e) => isDecodeError(e) && e.id === 1 && e.data === '"{"',
    );
    assert.throws(() => strict.list({ limit: 0 }), /Expected `limit` to be a positive integer/);
    assert.throws(() => strict.list({ after: -1 }), /Expected `after` to be an integer ≥ 0/);
    assert.throws(() => strict.remove([1.5]), /Expected `ids` to be a positive integer/);
    assert.throws(() => strict.remove('1' as never), /Expected `ids` to be an id or an array/);
    assert.equal(strict.remove(1), 1);
    strict.close();
    assert.throws(
      () => new QueueFile({ path: '' }),
      /^TypeError: Expected `path` to be a file path, got `""` \(string\)$/,
    );
  });
});
