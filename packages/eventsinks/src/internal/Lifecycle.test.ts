import { spawn } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Lifecycle } from './Lifecycle.js';
import { abandonOptions } from './abandon.js';

function abortListeners(signal: AbortSignal): number {
  return getEventListeners(signal, 'abort').length;
}

describe('Lifecycle', () => {
  it('goes open → closing → closed, runs the close once and resolves later calls with it', async () => {
    const life = new Lifecycle();
    assert.equal(life.state, 'open');
    assert.equal(life.closed, false);
    let runs = 0;
    let finish!: () => void;
    const first = life.close(undefined, () => {
      runs++;
      return new Promise<void>((resolve) => (finish = resolve));
    });
    assert.equal(life.state, 'closing');
    assert.equal(life.closed, true);
    const second = life.close({}, () => {
      runs++;
    });
    finish();
    await Promise.all([first, second]);
    assert.equal(life.state, 'closed');
    assert.equal(runs, 1);
  });

  it('rejects the first close with the error of run, never a later one', async () => {
    const life = new Lifecycle();
    const first = life.close(undefined, () => {
      throw new Error('boom');
    });
    const second = life.close(undefined, () => undefined);
    await assert.rejects(first, /boom/);
    await second;
  });

  it('throws a TypeError naming `signal` when it is not an AbortSignal', () => {
    const life = new Lifecycle();
    assert.throws(
      () => life.close({ signal: 'soon' as unknown as AbortSignal }, () => undefined),
      /Expected `signal` to be an AbortSignal/,
    );
    assert.equal(life.state, 'open');
  });

  it('aborts the drain on any close signal, once, and removes every listener when closed', async () => {
    let aborts = 0;
    const life = new Lifecycle(() => aborts++);
    const first = new AbortController();
    const later = new AbortController();
    const closed = life.close({ signal: first.signal }, async () => {
      await life.untilIdle();
    });
    void life.close({ signal: later.signal }, () => undefined);
    assert.equal(abortListeners(first.signal), 1);
    assert.equal(abortListeners(later.signal), 1);
    later.abort();
    await closed;
    assert.equal(aborts, 1);
    assert.equal(life.aborted, true);
    first.abort();
    assert.equal(aborts, 1);
    assert.equal(abortListeners(first.signal), 0);
    assert.equal(abortListeners(later.signal), 0);
  });

  it('aborts at once on an already-aborted signal, after the synchronous part of run', async () => {
    const order: string[] = [];
    const life = new Lifecycle(() => order.push('abort'));
    await life.close({ signal: AbortSignal.abort() }, async () => {
      order.push('run');
      await life.untilIdle();
      order.push('idle');
    });
    assert.deepEqual(order, ['run', 'abort', 'idle']);
  });

  it('drains until the work settles, and leaves a never-aborted signal clean', async () => {
    const controller = new AbortController();
    const life = new Lifecycle();
    let settle!: () => void;
    const work = new Promise<void>((resolve) => (settle = resolve));
    const closed = life.close({ signal: controller.signal }, () => life.until(work));
    // The same signal twice is listened to once.
    void life.close({ signal: controller.signal }, () => undefined);
    assert.equal(abortListeners(controller.signal), 1);
    settle();
    await closed;
    assert.equal(abortListeners(controller.signal), 0);
    assert.equal(life.aborted, false);
  });

  it('remembers an abandoning close', async () => {
    const life = new Lifecycle();
    assert.equal(life.abandoned, false);
    await life.close(abandonOptions(), () => undefined);
    assert.equal(life.abandoned, true);
  });

  it('end() closes at once, true the first time only', async () => {
    const life = new Lifecycle();
    assert.equal(life.end(), true);
    assert.equal(life.end(), false);
    assert.equal(life.state, 'closed');
    await life.close(undefined, () => assert.fail('a second close must not run'));
  });
});

// Every closable class of the core, src/sqlite and src/http, closed (twice: the second close
// lands while the first is draining, the case that used to leak) with one long-lived signal
// that never aborts. A child with --expose-gc checks the signal holds none of them.
const PROGRAM = String.raw`
import { getEventListeners } from 'node:events';
import { join } from 'node:path';
const core = await import(process.env.LC_CORE);
const sqlite = await import(process.env.LC_SQLITE);
const http = await import(process.env.LC_HTTP);
const dir = process.env.LC_DIR;

const slow = () => ({
  write: () => new Promise((resolve) => setTimeout(resolve, 1)),
  close: () => new Promise((resolve) => setTimeout(resolve, 1)),
});
const okFetch = () => new Promise((resolve) => setTimeout(() => resolve(new Response('ok')), 1));
const never = () => ({ proceed: () => 0, failure: () => false, success() {} });
let files = 0;
const factories = {
  Queue: () => { const q = new core.Queue(slow()); q.write(1); q.write(2); return q; },
  RetryingSink: () => { const r = new core.RetryingSink(slow(), never()); void r.write(1); return r; },
  BatchingSink: () => { const b = new core.BatchingSink(slow(), { maxSize: 10, maxDelay: 1000 }); void b.write(1); return b; },
  Broadcaster: () => { const b = new core.Broadcaster([slow(), slow()]); void b.write(1); return b; },
  Filter: () => new core.Filter(slow(), () => true),
  MapSink: () => new core.MapSink(slow(), (e) => e),
  MeteredSink: () => new core.MeteredSink(slow()),
  TimeoutSink: () => new core.TimeoutSink(slow(), 1000),
  UnbatchingSink: () => new core.UnbatchingSink(slow()),
  Channel: () => new core.Channel(1),
  DurableQueue: () => { const q = new sqlite.DurableQueue(slow(), { path: join(dir, (++files) + '.db') }); void q.write(1); return q; },
  Endpoint: () => { const e = new http.Endpoint('http://127.0.0.1:9/', { fetch: okFetch }); e.write(1); return e; },
  WebhookSink: () => { const w = new http.WebhookSink('http://127.0.0.1:9/', { fetch: okFetch }); void w.write(1).catch(() => {}); return w; },
  HttpSink: () => new http.HttpSink('http://127.0.0.1:9/', { fetch: okFetch }),
};

const controller = new AbortController();
const signal = controller.signal;
const PER_CLASS = 20;
const collected = {};
const registry = new FinalizationRegistry((name) => { collected[name]++; });
const listenersWhileClosing = {};
// In a function of its own, so no local of the caller's frame keeps the last instance.
async function closeMany(name, make) {
  collected[name] = 0;
  const closes = [];
  for (let i = 0; i < PER_CLASS; i++) {
    const sink = make();
    registry.register(sink, name);
    closes.push(sink.close({ signal }), sink.close({ signal }));
  }
  listenersWhileClosing[name] = getEventListeners(signal, 'abort').length;
  await Promise.all(closes);
}
for (const [name, make] of Object.entries(factories)) await closeMany(name, make);
const listeners = getEventListeners(signal, 'abort').length;
for (let i = 0; i < 10 && Object.values(collected).some((n) => n < PER_CLASS); i++) {
  await new Promise((resolve) => setTimeout(resolve, 10));
  globalThis.gc();
}
process.stdout.write(JSON.stringify({ perClass: PER_CLASS, collected, listeners, listenersWhileClosing, aborted: signal.aborted }));
`;

describe('a long-lived close signal', () => {
  it('holds no closed object of any closable class, and keeps no abort listener', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'eventsinks-lifecycle-'));
    try {
      const child = spawn(
        process.execPath,
        ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', PROGRAM],
        {
          cwd: new URL('../..', import.meta.url),
          stdio: ['ignore', 'pipe', 'pipe'],
          env: {
            ...process.env,
            LC_CORE: new URL('../index.ts', import.meta.url).href,
            LC_SQLITE: new URL('../sqlite/index.ts', import.meta.url).href,
            LC_HTTP: new URL('../http/index.ts', import.meta.url).href,
            LC_DIR: dir,
          },
        },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.equal(code, 0, err);
      const result = JSON.parse(out) as {
        perClass: number;
        collected: Record<string, number>;
        listeners: number;
        listenersWhileClosing: Record<string, number>;
        aborted: boolean;
      };
      assert.equal(result.aborted, false);
      assert.equal(result.listeners, 0, 'abort listeners left on the signal');
      // The drains did wait on the signal (the test would prove nothing otherwise).
      assert.ok(result.listenersWhileClosing['Queue']! > 0);
      for (const [name, count] of Object.entries(result.collected)) {
        assert.equal(count, result.perClass, `${name}: closed instances still reachable`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
