// The statements of docs/semantics.md that no other test proves. Each test is cited by name
// there; rename one and the page must follow.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  BatchingSink,
  Breaker,
  Broadcaster,
  Channel,
  Filter,
  MapSink,
  MeteredSink,
  Queue,
  RetryingSink,
  TimeoutSink,
  isSinkClosedError,
  type RetryStrategy,
  type Sink,
} from '../src/index.js';
import { sleep } from '../src/test-utils.js';

/** A sink that records each event and can be told to close. */
function recorder<E>(): Sink<E> & { events: E[]; closed: boolean } {
  return {
    events: [],
    closed: false,
    write(event) {
      this.events.push(event);
    },
    close() {
      this.closed = true;
    },
  };
}

/** Retry at once, forever. */
const eager: RetryStrategy<unknown> = { proceed: () => 0, failure: () => false, success() {} };

/** Settles to the error a write threw or rejected with, or undefined if it succeeded. */
async function outcome(write: () => void | Promise<void>): Promise<unknown> {
  try {
    await write();
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('semantics', () => {
  it('docs/semantics.md cites only tests that exist', () => {
    // The page lives in the repository's docs/ and names files from the repository root.
    const root = new URL('../../../', import.meta.url);
    // Markdown may wrap a quoted name across lines: compare with whitespace collapsed.
    const page = readFileSync(new URL('docs/semantics.md', root), 'utf8').replace(/\s+/g, ' ');
    const citation =
      /`((?:packages\/[\w-]+\/)?(?:src|test)\/[\w/.-]+\.test\.ts)` ((?:"[^"]+"(?:, )?)+)/g;
    let cited = 0;
    for (const [, file, names] of page.matchAll(citation)) {
      const source = readFileSync(new URL(file!, root), 'utf8');
      for (const [, name] of names!.matchAll(/"([^"]+)"/g)) {
        // Property tests end in an interpolated run count, written "(… runs)" on the page.
        const property = name!.endsWith('(… runs)');
        const stem = property ? name!.slice(0, -'(… runs)'.length) : name!;
        const quoted = ["'", '"', '`'].some((quote) =>
          source.includes(property ? `${quote}${stem}(` : `${quote}${stem}${quote}`),
        );
        assert.ok(quoted, `${file} has no test named "${name}"`);
        cited++;
      }
    }
    assert.ok(cited > 40, `only ${cited} citations found: is the pattern still right?`);
  });

  it('every composite: close is idempotent, later writes fail with SinkClosedError, await using works', async () => {
    const composites: [string, () => Sink<number> & AsyncDisposable][] = [
      ['Broadcaster', () => new Broadcaster([recorder<number>()])],
      ['Channel', () => new Channel<number>(1)],
      ['Queue', () => new Queue(recorder<number>())],
      ['RetryingSink', () => new RetryingSink(recorder<number>(), eager)],
      ['Filter', () => new Filter(recorder<number>(), () => true)],
      ['TimeoutSink', () => new TimeoutSink(recorder<number>(), 1000)],
      ['BatchingSink', () => new BatchingSink(recorder<number[]>(), { maxSize: 2, maxDelay: 5 })],
      ['MapSink', () => new MapSink(recorder<string>(), String)],
      ['MeteredSink', () => new MeteredSink(recorder<number>())],
    ];
    for (const [name, make] of composites) {
      const sink = make();
      await sink.close();
      await sink.close();
      assert.ok(
        isSinkClosedError(await outcome(() => sink.write(1))),
        `${name}: write after close`,
      );
      const disposable = make();
      await disposable[Symbol.asyncDispose]();
      assert.ok(
        isSinkClosedError(await outcome(() => disposable.write(1))),
        `${name}: write after asyncDispose`,
      );
    }
  });

  it('Queue with maxInFlight issues writes in order; completion order is up to the destination', async () => {
    const issued: number[] = [];
    const completed: number[] = [];
    const release = new Map<number, () => void>();
    // Each write waits until the test releases it: no clock involved.
    const dst: Sink<number> = {
      write(event) {
        issued.push(event);
        return new Promise<void>((resolve) =>
          release.set(event, () => {
            completed.push(event);
            resolve();
          }),
        );
      },
      close() {},
    };
    const queue = new Queue(dst, { maxInFlight: 3 });
    for (let i = 0; i < 3; i++) void queue.write(i);
    await new Promise((resolve) => setImmediate(resolve));
    // All three are outstanding before any completes, issued in write order.
    assert.deepEqual(issued, [0, 1, 2]);
    const closing = queue.close();
    // The destination finishes them in the opposite order; the queue does not hold any back.
    for (const event of [2, 1, 0]) {
      release.get(event)!();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await closing;
    assert.deepEqual(completed, [2, 1, 0]);
  });

  it('Channel hands a single consumer events in write order, buffered and waiting writers alike', async () => {
    const channel = new Channel<number>(3);
    const writes = Array.from({ length: 10 }, (_, i) => channel.write(i));
    const received: number[] = [];
    const consumer = (async () => {
      for await (const event of channel) received.push(event);
    })();
    await Promise.all(writes);
    channel.close();
    await consumer;
    assert.deepEqual(received, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('Queue is at-most-once: a failed delivery is reported to onError and never retried', async () => {
    let attempts = 0;
    const errors: number[] = [];
    const dst: Sink<number> = {
      write() {
        attempts++;
        throw new Error('down');
      },
      close() {},
    };
    const queue = new Queue(dst, { onError: (_error, event) => errors.push(event) });
    for (let i = 0; i < 5; i++) void queue.write(i);
    await queue.close();
    assert.equal(attempts, 5);
    assert.deepEqual(errors, [0, 1, 2, 3, 4]);
  });

  it('RetryingSink is at-least-once for the receiver: an attempt that failed after taking effect is repeated', async () => {
    const received: string[] = [];
    let first = true;
    // The receiver stores the event, then the acknowledgement is lost (as when a connection
    // drops after the server processed a request).
    const dst: Sink<string> = {
      write(event) {
        received.push(event);
        if (first) {
          first = false;
          throw new Error('ECONNRESET after the request was sent');
        }
      },
      close() {},
    };
    await new RetryingSink(dst, eager).write('evt-1');
    assert.deepEqual(received, ['evt-1', 'evt-1']);
  });

  it('TimeoutSink under a RetryingSink: a timed-out write that completes later arrives twice', async () => {
    const received: string[] = [];
    let calls = 0;
    const dst: Sink<string> = {
      async write(event) {
        // The first call answers after 100 ms, long after the 10 ms limit; later calls at once.
        if (calls++ === 0) await sleep(100);
        received.push(event);
      },
      close() {},
    };
    await new RetryingSink(new TimeoutSink(dst, 10), eager).write('evt-1');
    assert.deepEqual(received, ['evt-1']);
    await sleep(150);
    assert.deepEqual(received, ['evt-1', 'evt-1']);
  });

  it('close({ signal }) on a Broadcaster bounds the whole pipeline below it', async () => {
    const down: Sink<number> & { closed: boolean } = {
      closed: false,
      write: () => {
        throw new Error('down');
      },
      close() {
        this.closed = true;
      },
    };
    const queueDrops: number[] = [];
    const retryDrops: [number, unknown][] = [];
    const retrying = new RetryingSink(down, new Breaker(1, 60_000), {
      onDrop: (event, reason) => retryDrops.push([event, reason]),
    });
    const queue = new Queue(retrying, {
      onDrop: (event, reason) => {
        assert.equal(reason, 'closed');
        queueDrops.push(event);
      },
    });
    const broadcaster = new Broadcaster<number>([queue]);
    for (let i = 0; i < 5; i++) await broadcaster.write(i);
    await sleep(10); // event 0 is now in a 60 s backoff inside the RetryingSink
    const started = Date.now();
    await broadcaster.close({ signal: AbortSignal.timeout(50) });
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 5000, `close took ${elapsed} ms`);
    assert.deepEqual(queueDrops, [1, 2, 3, 4]);
    assert.deepEqual(retryDrops, [[0, 'closed']]);
    assert.equal(down.closed, true);
  });

  it('BatchingSink.close({ signal }) stops waiting for a stuck batch when the signal aborts', async () => {
    const stuck: Sink<number[]> & { closed: boolean } = {
      closed: false,
      write: () => new Promise<void>(() => {}),
      close() {
        this.closed = true;
      },
    };
    const batching = new BatchingSink(stuck, { maxSize: 10, maxDelay: Infinity });
    void batching.write(1).catch(() => {});
    const controller = new AbortController();
    const closing = batching.close({ signal: controller.signal });
    await sleep(10);
    assert.equal(stuck.closed, false);
    controller.abort();
    await closing;
    assert.equal(stuck.closed, true);
  });

  it('a crash loses what in-memory components accepted but had not delivered', async () => {
    // The child accepts 100 events into a Queue in front of a slow sink, then dies abruptly.
    const program = `
      import { Queue } from './src/index.ts';
      const queue = new Queue({
        write: (event) => new Promise((resolve) => setTimeout(() => {
          console.log('delivered', event);
          resolve();
        }, 5)),
        close() {},
      });
      for (let i = 0; i < 100; i++) queue.write(i);
      console.log('accepted', 100);
      setTimeout(() => process.kill(process.pid, 'SIGKILL'), 30);
    `;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', program],
      { cwd: new URL('..', import.meta.url), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => {
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('close', (_code, sig) => {
        clearTimeout(killer);
        resolve(sig);
      });
    });
    assert.equal(signal, 'SIGKILL', output);
    assert.match(output, /^accepted 100$/m);
    const delivered = output.match(/^delivered \d+$/gm)?.length ?? 0;
    assert.ok(delivered < 100, `all ${delivered} delivered before the crash?\n${output}`);
  });
});
