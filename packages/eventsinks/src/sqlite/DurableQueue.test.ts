import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { isSinkClosedError } from '../errors/SinkClosedError.js';
import { ExponentialBackoff } from '../retry/ExponentialBackoff.js';
import { BatchingSink } from '../BatchingSink.js';
import { maxAttempts } from '../retry/maxAttempts.js';
import { RetryingSink, type DeadLetter } from '../RetryingSink.js';
import type { Sink } from '../Sink.js';
import { RecordingSink, checkClose, range, sleep, GatedSink, tick } from '../test-utils.js';
import {
  DecodeError,
  DurableQueue,
  EncodeError,
  QueueFile,
  QueueLockedError,
  QueueOpenError,
  isDecodeError,
  isEncodeError,
  isQueueLockedError,
  isQueueOpenError,
  type Codec,
} from './index.js';

const root = mkdtempSync(join(tmpdir(), 'eventsinks-sqlite-'));
after(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
/** A fresh path under the test's temp directory. */
const temp = (): string => join(root, `queue-${++files}.db`);

/** Waits (generously) until `condition` holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** What the file holds, read with a plain connection once the queue has released it. */
function stored(path: string): number[] {
  const file = new QueueFile<number>({ path });
  try {
    return file.list({ limit: 1_000_000 }).map((entry) => entry.event);
  } finally {
    file.close();
  }
}

describe('DurableQueue', () => {
  it('ports go-events TestQueue: 300 events to a 1 ms sink, close flushes then closes', async () => {
    const path = temp();
    const sink = new RecordingSink<string>({ delay: 1 });
    const queue = new DurableQueue(sink, { path });
    await Promise.all(range(300).map((i) => queue.write(`event-${i}`)));
    await checkClose(queue, 'late', (e) => assert.ok(isSinkClosedError(e)));
    assert.deepEqual(
      sink.events,
      range(300).map((i) => `event-${i}`),
    );
    assert.equal(sink.closed, true);
    assert.equal(queue.size, 0);
    assert.deepEqual(stored(path), []);
  });

  it('a write resolves once stored; writes of one tick share one commit and one promise', async () => {
    const path = temp();
    const sink = new GatedSink<number>();
    const queue = new DurableQueue(sink, { path });
    const writes = range(100).map((i) => queue.write(i));
    assert.ok(writes[0] instanceof Promise);
    for (const w of writes) assert.equal(w, writes[0]); // one group
    assert.equal(queue.size, 0); // not committed yet
    await writes[0];
    assert.equal(queue.size, 100);
    // A write in a later tick starts a new group.
    const later = queue.write(100);
    assert.notEqual(later, writes[0]);
    await later;
    assert.equal(queue.size, 101);
    await queue.close({ signal: AbortSignal.abort() });
    assert.deepEqual(stored(path), range(101));
  });

  it('delivers in write order, one at a time, and removes each event only after dst took it', async () => {
    const path = temp();
    const sink = new GatedSink<number>();
    const queue = new DurableQueue(sink, { path });
    for (const i of range(5)) void queue.write(i);
    await until(() => sink.waiting === 1, 'the first delivery');
    assert.equal(queue.size, 5); // the one in flight counts until dst accepts it
    sink.release();
    await until(() => sink.waiting === 1 && sink.events.length === 1, 'the second delivery');
    assert.equal(queue.size, 4);
    const closing = queue.close();
    while (!sink.closed) {
      sink.release();
      await tick();
    }
    await closing;
    assert.deepEqual(sink.events, range(5));
    assert.deepEqual(stored(path), []);
  });

  it('a failed write goes to onError, the event is removed and the queue goes on', async () => {
    const path = temp();
    const errors: [unknown, number | undefined][] = [];
    const sink = new RecordingSink<number>({ failFirst: 3 });
    const queue = new DurableQueue(sink, { path, onError: (e, ev) => errors.push([e, ev]) });
    await Promise.all(range(10).map((i) => queue.write(i)));
    await queue.close();
    assert.deepEqual(sink.events, range(10).slice(3));
    assert.deepEqual(
      errors.map(([, ev]) => ev),
      [0, 1, 2],
    );
    assert.match(String(errors[0]?.[0]), /planned failure for 0/);
    assert.deepEqual(stored(path), []);
  });

  it('with a RetryingSink below, failed writes are retried and stay on disk until delivered', async () => {
    const path = temp();
    const sink = new RecordingSink<number>({ failRate: 0.3, async: true });
    const retrying = new RetryingSink(sink, new ExponentialBackoff({ base: 0, factor: 1, max: 2 }));
    const queue = new DurableQueue(retrying, { path, onError: () => assert.fail('no error') });
    await Promise.all(range(200).map((i) => queue.write(i)));
    await queue.close();
    assert.deepEqual(sink.events, range(200));
  });

  it('a SinkClosedError from dst stops delivery and keeps every undelivered event on disk', async () => {
    const path = temp();
    const errors: unknown[] = [];
    const sink = new RecordingSink<number>();
    const queue = new DurableQueue(sink, { path, onError: (e) => errors.push(e) });
    await Promise.all(range(3).map((i) => queue.write(i)));
    await until(() => sink.events.length === 3, 'three deliveries');
    sink.closed = true; // from now on it throws SinkClosedError
    await Promise.all(range(3, 3).map((i) => queue.write(i)));
    await queue.write(6); // still stored, though not delivered
    await until(() => errors.length === 1, 'the SinkClosedError');
    assert.ok(isSinkClosedError(errors[0]));
    assert.equal(queue.size, 4);
    await queue.close();
    assert.deepEqual(stored(path), [3, 4, 5, 6]);
    // The next run delivers them.
    const next = new RecordingSink<number>();
    await new DurableQueue(next, { path }).close();
    assert.deepEqual(next.events, [3, 4, 5, 6]);
  });

  it('on open delivers what an earlier run left, first and in order, then new writes', async () => {
    const path = temp();
    const stuck = new GatedSink<number>();
    const first = new DurableQueue(stuck, { path });
    await Promise.all(range(10).map((i) => first.write(i)));
    await until(() => stuck.waiting === 1, 'a delivery in flight');
    stuck.release(); // 0 is delivered; 1 is in flight when the deadline passes
    await until(() => stuck.waiting === 1 && stuck.events.length === 1, 'the second delivery');
    await first.close({ signal: AbortSignal.abort() });
    assert.equal(stuck.closed, true);
    assert.deepEqual(stored(path), range(9, 1));

    const sink = new RecordingSink<number>();
    const second = new DurableQueue(sink, { path });
    assert.equal(second.size, 9);
    await Promise.all(range(5, 10).map((i) => second.write(i)));
    await second.close();
    // 1 was in flight at the deadline: delivered again (at-least-once), never lost.
    assert.deepEqual(sink.events, range(14, 1));
  });

  it('close({ signal }) leaves undelivered events on disk, not reported as dropped', async () => {
    const path = temp();
    const drops: unknown[] = [];
    const stuck = new GatedSink<number>();
    const queue = new DurableQueue(stuck, { path, onDrop: (e) => drops.push(e) });
    await Promise.all(range(5).map((i) => queue.write(i)));
    const controller = new AbortController();
    const closing = queue.close({ signal: controller.signal });
    await sleep(5);
    assert.equal(stuck.closed, false);
    controller.abort();
    await closing;
    assert.equal(stuck.closed, true);
    assert.deepEqual(drops, []);
    assert.equal(queue.size, 5);
    assert.deepEqual(stored(path), range(5));
    stuck.release(5); // the delivery that was in flight finishing late changes nothing
    await tick();
    assert.deepEqual(stored(path), range(5));
  });

  it('past the deadline, a BatchingSink and RetryingSink below abandon: no retry, no dead letter, all on disk', async () => {
    const path = temp();
    let attempts = 0;
    const failing: Sink<number[]> = {
      write: async () => {
        attempts++;
        await sleep(1);
        throw new Error('endpoint is down');
      },
      close() {},
    };
    const dead: DeadLetter<number[]>[] = [];
    const drops: unknown[] = [];
    // Five attempts 100 ms apart, then a dead letter: all of it would come after the deadline.
    const retrying = new RetryingSink(
      failing,
      maxAttempts(
        new ExponentialBackoff({ base: 100, factor: 0, max: 100 }, { random: () => 0.99 }),
        5,
      ),
      {
        deadLetter: { write: (d) => void dead.push(d), close() {} },
        onDrop: (e) => drops.push(e),
      },
    );
    const batching = new BatchingSink(retrying, { maxSize: 4, maxDelay: 1 });
    const queue = new DurableQueue(batching, {
      path,
      maxInFlight: 8,
      onDrop: (e) => drops.push(e),
    });
    await Promise.all(range(6).map((i) => queue.write(i)));
    await until(() => attempts >= 1, 'a failed attempt');
    await queue.close({ signal: AbortSignal.abort() });
    assert.equal(batching.closed, true);
    assert.equal(retrying.closed, true);
    const attemptsAtClose = attempts;
    await sleep(600); // longer than every remaining retry would take
    assert.equal(attempts, attemptsAtClose, 'no attempt after the close');
    assert.deepEqual(dead, []);
    assert.deepEqual(drops, []);
    assert.deepEqual(stored(path), range(6));
  });

  it('seal() fixes a group of in-flight events; after a restart sealedKey() names it again', async () => {
    const path = temp();
    type Ev = { n: number };
    const held: Ev[] = [];
    const holding: Sink<Ev> = {
      write: (event) => {
        held.push(event);
        return new Promise<void>(() => {}); // never acknowledged: a crash comes first
      },
      close() {},
    };
    const first = new DurableQueue(holding, { path, maxInFlight: 5 });
    await Promise.all(range(6).map((n) => first.write({ n })));
    await until(() => held.length === 5, 'five events in flight');
    assert.equal(first.sealedKey(held[0]!), undefined);
    first.seal(held.slice(0, 3), 'batch-a');
    first.seal(held.slice(3, 5), 'batch-b');
    assert.throws(() => first.seal([{ n: 9 }], 'x'), TypeError);
    assert.throws(() => first.seal([], 'x'), TypeError);
    await first.close({ signal: AbortSignal.abort() });

    // The next run: the same events come back with the keys of their groups.
    const keys: [number, string | undefined][] = [];
    let second: DurableQueue<Ev> | undefined = undefined;
    const recording: Sink<Ev> = {
      write: (event) => void keys.push([event.n, second!.sealedKey(event)]),
      close() {},
    };
    second = new DurableQueue(recording, { path });
    await second.close();
    assert.deepEqual(keys, [
      [0, 'batch-a'],
      [1, 'batch-a'],
      [2, 'batch-a'],
      [3, 'batch-b'],
      [4, 'batch-b'],
      [5, undefined],
    ]);
    // Delivered: the groups left the file with their events.
    const db = new Database(path);
    try {
      assert.equal(
        db.prepare('SELECT count(*) AS n FROM eventsinks_seal').get()?.['n' as never],
        0,
      );
    } finally {
      db.close();
    }
  });

  it('writes made before close() are committed and delivered', async () => {
    const path = temp();
    const sink = new RecordingSink<number>();
    const queue = new DurableQueue(sink, { path });
    const write = queue.write(1);
    await queue.close();
    await write;
    assert.deepEqual(sink.events, [1]);
    assert.throws(
      () => queue.write(2),
      (e) => isSinkClosedError(e),
    );
  });

  it('maxInFlight: issues writes in order, removes an event only once every earlier one settled', async () => {
    const path = temp();
    const settle = new Map<number, () => void>();
    const issued: number[] = [];
    const sink: Sink<number> = {
      write: (event) =>
        new Promise<void>((resolve) => {
          issued.push(event);
          settle.set(event, resolve);
        }),
      close() {},
    };
    const queue = new DurableQueue(sink, { path, maxInFlight: 3 });
    await Promise.all(range(6).map((i) => queue.write(i)));
    await until(() => issued.length === 3, 'three writes in flight');
    assert.deepEqual(issued, [0, 1, 2]);
    settle.get(2)!(); // settles out of order: 2 is done, 0 and 1 are not
    await until(() => issued.length === 4, 'a fourth write issued');
    assert.deepEqual(issued, [0, 1, 2, 3]);
    assert.equal(queue.size, 6); // the watermark has not passed 0
    settle.get(0)!();
    await until(() => queue.size === 5, 'the watermark to pass 0');
    // Deadline now: 1 and 3 are in flight, 2 is done but behind 1. What stays on disk starts
    // at the first unsettled event, so nothing unacknowledged is removed.
    await queue.close({ signal: AbortSignal.abort() });
    assert.deepEqual(stored(path), [1, 2, 3, 4, 5]);
    assert.throws(
      () => new DurableQueue(sink, { path: temp(), maxInFlight: 0 }),
      /^RangeError: Expected `maxInFlight` to be a positive integer, got `0` \(number\)$/,
    );
  });

  it('pages to disk: a backlog larger than memory is read back in order', async () => {
    const path = temp();
    const sink = new GatedSink<number>();
    const queue = new DurableQueue(sink, { path });
    const n = 10_000;
    for (let i = 0; i < n; i += 500) await Promise.all(range(500, i).map((j) => queue.write(j)));
    assert.equal(queue.size, n);
    const closing = queue.close();
    while (!sink.closed) {
      sink.release(64);
      await tick();
    }
    await closing;
    assert.deepEqual(sink.events, range(n));
  });

  it('a custom codec stores bytes; decode gets what encode returned', async () => {
    const path = temp();
    const codec: Codec<Uint8Array> = {
      encode: (event) => event,
      decode: (data) => (typeof data === 'string' ? new TextEncoder().encode(data) : data),
    };
    const sink = new RecordingSink<Uint8Array>();
    const queue = new DurableQueue(sink, { path, codec });
    await queue.write(new Uint8Array([1, 2, 3]));
    await queue.close();
    assert.deepEqual([...sink.events[0]!], [1, 2, 3]);
  });

  it('[Symbol.asyncDispose] closes', async () => {
    const path = temp();
    const sink = new RecordingSink<number>();
    {
      await using queue = new DurableQueue(sink, { path });
      await queue.write(1);
    }
    assert.equal(sink.closed, true);
    assert.deepEqual(sink.events, [1]);
  });

  it('a process exits promptly after close (no timer or handle left)', async () => {
    const path = temp();
    const program = `
      import { DurableQueue } from './src/sqlite/index.ts';
      const queue = new DurableQueue({ write() {}, close() {} }, { path: ${JSON.stringify(path)} });
      for (let i = 0; i < 100; i++) void queue.write(i);
      await queue.close();
      console.log('closed');
    `;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', program],
      {
        cwd: new URL('../..', import.meta.url),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('exit', (c) => {
        clearTimeout(killer);
        resolve(c);
      });
    });
    assert.equal(code, 0, output);
    assert.match(output, /closed/);
  });

  describe('events the codec cannot encode', () => {
    for (const [what, event, message] of [
      [
        'a cycle',
        cyclic(),
        /^cannot store the event: the codec could not encode it: Converting circular structure to JSON/,
      ],
      [
        'a BigInt',
        { n: 1n },
        /^cannot store the event: the codec could not encode it: Do not know how to serialize a BigInt$/,
      ],
      [
        'undefined',
        undefined,
        /^cannot store the event: the codec could not encode it: it returned `undefined` \(undefined\), not a string or a Uint8Array$/,
      ],
    ] as const) {
      it(`${what}: the write throws an EncodeError (a TypeError) and stores nothing`, async () => {
        const path = temp();
        const sink = new RecordingSink<unknown>();
        const queue = new DurableQueue<unknown>(sink, { path });
        const ok = queue.write('before');
        assert.throws(
          () => queue.write(event),
          (e) => {
            assert.ok(e instanceof TypeError);
            assert.ok(e instanceof EncodeError);
            assert.ok(isEncodeError(e));
            assert.equal(e.name, 'EncodeError');
            assert.equal(e.code, 'ERR_EVENT_ENCODE');
            assert.match(e.message, message);
            return true;
          },
        );
        await ok; // the rest of the group is unaffected
        await queue.write('after');
        await queue.close({ signal: AbortSignal.abort() });
        // Delivered or still on disk (a delivered one may be both until its delete commits).
        const all = new Set([...sink.events, ...stored(path)]);
        assert.deepEqual([...all], ['before', 'after']);
      });
    }
  });

  it('a stored event the codec cannot decode goes to onError as a DecodeError, and the queue goes on', async () => {
    const path = temp();
    const file = new QueueFile<unknown>({ path });
    file.append(1);
    file.append('not a number');
    file.append(3);
    file.close();
    const strict: Codec<number> = {
      encode: (event) => JSON.stringify(event),
      decode: (data) => {
        const value: unknown = JSON.parse(String(data));
        if (typeof value !== 'number') throw new Error('not a number');
        return value;
      },
    };
    const errors: [unknown, unknown][] = [];
    const sink = new RecordingSink<number>();
    await new DurableQueue(sink, {
      path,
      codec: strict,
      onError: (e, ev) => errors.push([e, ev]),
    }).close();
    assert.deepEqual(sink.events, [1, 3]);
    assert.equal(errors.length, 1);
    const [error, event] = errors[0]!;
    assert.equal(event, undefined);
    assert.ok(error instanceof DecodeError && isDecodeError(error));
    assert.equal(error.code, 'ERR_EVENT_DECODE');
    assert.equal(error.id, 2);
    assert.equal(error.data, '"not a number"');
    assert.equal(error.message, 'cannot decode stored event 2 with the codec: not a number');
  });

  describe('bad options', () => {
    const sink = new RecordingSink<number>();
    it('names the option and the value received', () => {
      assert.throws(
        () => new DurableQueue(sink, {} as never),
        /^TypeError: Expected `path` to be a file path, got `undefined` \(undefined\)$/,
      );
      assert.throws(
        () => new DurableQueue(sink, { path: '' }),
        /^TypeError: Expected `path` to be a file path, got `""` \(string\)$/,
      );
      assert.throws(
        () => new DurableQueue(sink, { path: ':memory:' }),
        /^TypeError: Expected `path` to be a file path, got `":memory:"` \(string\)$/,
      );
      assert.throws(
        () => new DurableQueue(sink, { path: temp(), durability: 'disk' as never }),
        /^TypeError: Expected `durability` to be one of 'process', 'power', got `"disk"` \(string\)$/,
      );
      assert.throws(
        () => new DurableQueue(sink, { path: temp(), codec: { encode: JSON.stringify } as never }),
        /^TypeError: Expected `codec` to be a Codec \(an object with encode\(\) and decode\(\)\)/,
      );
      assert.throws(
        () => new DurableQueue(sink, { path: temp(), onError: 1 as never }),
        /^TypeError: Expected `onError` to be a function, got `1` \(number\)$/,
      );
      assert.throws(() => new DurableQueue({} as never, { path: temp() }), /`dst`/);
      assert.throws(
        () => new DurableQueue(sink, undefined as never),
        /^TypeError: Expected `options` to be an object with a `path`$/,
      );
    });
  });

  describe('files that cannot be opened', () => {
    const sink = new RecordingSink<number>();
    const opens = (path: string, message: string): void => {
      assert.throws(
        () => new DurableQueue(sink, { path }),
        (e) => {
          assert.ok(e instanceof QueueOpenError && isQueueOpenError(e));
          assert.equal(e.name, 'QueueOpenError');
          assert.equal(e.code, 'ERR_QUEUE_OPEN');
          assert.equal(e.path, path);
          assert.equal(e.message, `cannot open queue file ${JSON.stringify(path)}: ${message}`);
          return true;
        },
      );
    };

    it('a missing directory', () => {
      const dir = join(root, 'missing');
      opens(join(dir, 'q.db'), `its directory ${JSON.stringify(dir)} does not exist`);
    });

    it('a directory', () => {
      const dir = join(root, 'a-directory');
      mkdirSync(dir);
      opens(dir, 'it is a directory, not a file');
    });

    it('a file that is not a SQLite database', () => {
      const path = join(root, 'notes.txt');
      writeFileSync(path, 'these are not the bytes of a database\n'.repeat(100));
      opens(path, 'it is not a SQLite database');
    });

    it('a SQLite database of something else', () => {
      const path = join(root, 'other.db');
      const db = new Database(path);
      db.exec('CREATE TABLE users (id INTEGER PRIMARY KEY)');
      db.close();
      opens(path, 'it is a SQLite database but not an eventsinks queue (it has "users")');
    });

    it('an unreadable file (skipped as root, who reads everything)', (t) => {
      if (process.getuid?.() === 0) {
        t.skip('root can read a mode-000 file');
        return;
      }
      const path = temp();
      writeFileSync(path, '');
      chmodSync(path, 0);
      assert.throws(
        () => new DurableQueue(sink, { path }),
        (e) => isQueueOpenError(e),
      );
    });

    it('a file another queue in this process holds', async () => {
      const path = temp();
      const queue = new DurableQueue(sink, { path });
      for (const open of [() => new DurableQueue(sink, { path }), () => new QueueFile({ path })]) {
        assert.throws(open, (e) => {
          assert.ok(e instanceof QueueLockedError && isQueueLockedError(e));
          assert.equal(e.code, 'ERR_QUEUE_LOCKED');
          assert.equal(e.path, path);
          assert.equal(
            e.message,
            `cannot open queue file ${JSON.stringify(path)}: it is locked by another open queue (in this process or another one)`,
          );
          return true;
        });
      }
      await queue.close();
      await new DurableQueue(sink, { path }).close(); // released by close()
    });

    it('a file another process holds: a clear error, and the file is intact', async () => {
      const path = temp();
      const seed = new DurableQueue(new GatedSink<number>(), { path });
      await Promise.all(range(3).map((i) => seed.write(i)));
      await seed.close({ signal: AbortSignal.abort() });
      const program = `
        import { DurableQueue } from './src/sqlite/index.ts';
        const queue = new DurableQueue({ write: () => new Promise(() => {}), close() {} }, { path: ${JSON.stringify(path)} });
        await queue.write(3);
        console.log('holding');
        setInterval(() => {}, 1000);
      `;
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', program],
        { cwd: new URL('../..', import.meta.url), stdio: ['ignore', 'pipe', 'pipe'] },
      );
      try {
        let output = '';
        child.stdout.on('data', (d: Buffer) => (output += d.toString()));
        child.stderr.on('data', (d: Buffer) => (output += d.toString()));
        await until(() => output.includes('holding') || child.exitCode !== null, 'the child');
        assert.match(output, /holding/);
        assert.throws(
          () => new DurableQueue(sink, { path }),
          (e) => isQueueLockedError(e),
        );
      } finally {
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('exit', resolve));
      }
      assert.deepEqual(stored(path), range(4));
    });
  });
});

function cyclic(): object {
  const event: { self?: object } = {};
  event.self = event;
  return event;
}

describe('DurableQueue maxInFlight', () => {
  it('keeps up to maxInFlight deliveries outstanding and removes events only in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eventsinks-dq-inflight-'));
    const path = join(dir, 'q.db');
    const gates: { event: number; release: () => void }[] = [];
    const delivered: number[] = [];
    const dst = {
      write: (event: number) =>
        new Promise<void>((resolve) =>
          gates.push({
            event,
            release: () => {
              delivered.push(event);
              resolve();
            },
          }),
        ),
      close() {},
    };
    const queue = new DurableQueue<number>(dst, { path, maxInFlight: 3 });
    await Promise.all([1, 2, 3, 4, 5].map((e) => queue.write(e)));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      gates.map((g) => g.event),
      [1, 2, 3],
    );
    // The third settles first: nothing may leave the file before 1 and 2 do.
    gates[2]!.release();
    await new Promise((r) => setImmediate(r));
    assert.equal(queue.size, 5);
    assert.equal(gates.length, 4);
    gates[0]!.release();
    gates[1]!.release();
    await new Promise((r) => setImmediate(r));
    assert.equal(queue.size, 2);
    assert.equal(gates.length, 5);
    for (const g of gates.slice(3)) g.release();
    await queue.close();
    assert.deepEqual([...delivered].sort(), [1, 2, 3, 4, 5]);
    assert.throws(
      () => new DurableQueue(dst, { path: join(dir, 'x.db'), maxInFlight: 0 }),
      /`maxInFlight`/,
    );
  });
});
