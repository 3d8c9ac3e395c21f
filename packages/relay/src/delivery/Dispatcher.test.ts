import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import type { Envelope } from '../envelope.js';
import type { AttemptRecord, DestinationRecord, PendingDelivery } from '../store/Store.js';
import { Dispatcher, type Clock, type DispatcherOptions } from './Dispatcher.js';
import type { AttemptOutcome, Target } from './Target.js';

const DEST = 'hooks';

/** Lets promise callbacks and immediates (the attempt-log flush) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

class FakeClock implements Clock {
  t = 1_000_000;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  get timers(): number {
    return this.#timers.size;
  }
  /** Runs the timers due within `ms`, in time order, letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (first === undefined || entry[1].at < first[1].at)) first = entry;
      }
      if (first === undefined) break;
      // Timers due at the same time fire in the same turn, as real ones do.
      const at = first[1].at;
      this.t = Math.max(this.t, at);
      const due = [...this.#timers].filter(([, timer]) => timer.at === at);
      for (const [id] of due) this.#timers.delete(id);
      for (const [, timer] of due) timer.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

interface Row extends PendingDelivery {
  status: 'pending' | 'delivered' | 'dead';
}

type FakeStore = DispatcherOptions['store'] & {
  rows: Map<number, Row>;
  records: AttemptRecord[][];
  seals: { batchId: string; seqs: readonly number[] }[];
  runtime: DestinationRecord;
  updates: Partial<DestinationRecord>[];
  failRecord: number;
  add(count: number, key?: (i: number) => string | undefined): PendingDelivery[];
};

function fakeStore(): FakeStore {
  const rows = new Map<number, Row>();
  let seq = 0;
  const copy = (r: Row): PendingDelivery => ({
    seq: r.seq,
    id: r.id,
    receivedAt: r.receivedAt,
    source: r.source,
    event: r.event,
    key: r.key,
    attempts: r.attempts,
    nextAt: r.nextAt,
    batchId: r.batchId,
  });
  const store: FakeStore = {
    rows,
    records: [],
    seals: [],
    runtime: {},
    updates: [],
    failRecord: 0,
    add(count, key = () => undefined) {
      const added: PendingDelivery[] = [];
      for (let i = 0; i < count; i++) {
        seq++;
        const row: Row = {
          seq,
          id: `m${seq}`,
          receivedAt: 0,
          source: 'http',
          event: { n: seq },
          key: key(seq),
          attempts: 0,
          nextAt: 0,
          batchId: undefined,
          status: 'pending',
        };
        rows.set(seq, row);
        added.push(copy(row));
      }
      return added;
    },
    pending(destination, afterSeq, limit) {
      assert.equal(destination, DEST);
      return Promise.resolve(
        [...rows.values()]
          .filter((r) => r.status === 'pending' && r.seq > afterSeq)
          .sort((a, b) => a.seq - b.seq)
          .slice(0, limit)
          .map(copy),
      );
    },
    seal(_destination, batchId, seqs) {
      store.seals.push({ batchId, seqs: [...seqs] });
      for (const s of seqs) (rows.get(s) as Row).batchId = batchId;
      return Promise.resolve();
    },
    record(attempts) {
      if (store.failRecord > 0) {
        store.failRecord--;
        return Promise.reject(new Error('disk I/O error'));
      }
      store.records.push([...attempts]);
      for (const a of attempts) {
        for (const s of a.seqs) {
          const row = rows.get(s) as Row;
          row.attempts++;
          row.status = a.outcome;
          row.nextAt = a.nextAt ?? 0;
        }
      }
      return Promise.resolve();
    },
    destination() {
      return Promise.resolve({ ...store.runtime });
    },
    updateDestination(_name, change) {
      store.updates.push(change);
      Object.assign(store.runtime, change);
      return Promise.resolve();
    },
    overflow(_destination, count, busy, _reason) {
      const moved = [...rows.values()]
        .filter((r) => r.status === 'pending' && !busy.has(r.seq))
        .sort((a, b) => a.seq - b.seq)
        .slice(0, count);
      for (const r of moved) r.status = 'dead';
      return Promise.resolve(moved.map((r) => r.seq));
    },
  };
  return store;
}

interface Sent {
  envelopes: readonly Envelope[];
  batchId: string | undefined;
  at: number;
}

type FakeTarget = Target & {
  sent: Sent[];
  inFlight: number;
  maxInFlight: number;
  keysInFlight: Map<string, number>;
  keyOverlap: boolean;
  closed: boolean;
};

/** A target answering after `latency(envelopes)` ms of the fake clock with `answer(envelopes)`. */
function fakeTarget(
  clock: FakeClock,
  answer: (envelopes: readonly Envelope[], attempt: number) => AttemptOutcome = () => ({
    ok: true,
    retryable: true,
  }),
  latency: (envelopes: readonly Envelope[]) => number | undefined = () => 50,
): FakeTarget {
  const target: FakeTarget = {
    sent: [],
    inFlight: 0,
    maxInFlight: 0,
    keysInFlight: new Map(),
    keyOverlap: false,
    closed: false,
    send(envelopes, batchId) {
      target.sent.push({ envelopes, batchId, at: clock.now() });
      const attempt = target.sent.length;
      target.inFlight++;
      target.maxInFlight = Math.max(target.maxInFlight, target.inFlight);
      const keys = new Set(envelopes.map((e) => e.event['k'] as string | undefined));
      for (const k of keys) {
        if (k === undefined) continue;
        const n = (target.keysInFlight.get(k) ?? 0) + 1;
        if (n > 1) target.keyOverlap = true;
        target.keysInFlight.set(k, n);
      }
      const ms = latency(envelopes);
      return new Promise((resolve) => {
        if (ms === undefined) return; // hangs
        clock.setTimeout(() => {
          target.inFlight--;
          for (const k of keys) {
            if (k !== undefined) target.keysInFlight.set(k, (target.keysInFlight.get(k) ?? 1) - 1);
          }
          resolve(answer(envelopes, attempt));
        }, ms);
      });
    },
    close() {
      target.closed = true;
      return Promise.resolve();
    },
  };
  return target;
}

const silent = pino({ level: 'silent' });

function dispatcher(
  store: FakeStore,
  target: Target,
  clock: FakeClock,
  options: Partial<DispatcherOptions> = {},
): Dispatcher {
  return new Dispatcher({
    name: DEST,
    store,
    target,
    concurrency: 4,
    retry: { maxAttempts: 5, backoff: { base: 100, factor: 100, max: 1000 } },
    maxRetryAfter: 60_000,
    enabled: true,
    logger: silent,
    clock,
    random: () => 0.5,
    ...options,
  });
}

function withKeys(store: FakeStore, count: number, key: (i: number) => string | undefined): void {
  for (const d of store.add(count, key)) {
    const row = store.rows.get(d.seq) as Row;
    if (d.key !== undefined) row.event = { n: d.seq, k: d.key };
  }
}

const seqOf = (e: Envelope): number => e.event['n'] as number;

test('property: per key, first successes in seq order and never two in flight; concurrency held', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 6 }),
      fc.array(fc.option(fc.constantFrom('a', 'b', 'c', 'd'), { nil: undefined }), {
        minLength: 40,
        maxLength: 40,
      }),
      fc.array(fc.boolean(), { minLength: 200, maxLength: 200 }),
      fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 200, maxLength: 200 }),
      fc.option(fc.integer({ min: 2, max: 5 }), { nil: undefined }),
      async (count, concurrency, keys, fails, latencies, batchSize) => {
        const clock = new FakeClock();
        const store = fakeStore();
        withKeys(store, count, (seq) => keys[seq - 1]);
        const target = fakeTarget(
          clock,
          (_e, attempt) =>
            fails[attempt % fails.length] === true && attempt < 150
              ? { ok: false, retryable: true, error: 'boom', status: 503 }
              : { ok: true, retryable: true },
          () => latencies[target.sent.length % latencies.length],
        );
        const options: Partial<DispatcherOptions> = {
          concurrency,
          retry: { maxAttempts: 1000, backoff: { base: 10, factor: 10, max: 100 } },
        };
        if (batchSize !== undefined) options.batch = { maxSize: batchSize, maxDelay: 20 };
        const d = dispatcher(store, target, clock, options);
        await d.start(count);
        for (let i = 0; i < 200 && d.delivered < count; i++) await clock.advance(100);
        assert.equal(d.delivered, count);
        assert.equal(d.pending, 0);
        assert.ok(target.maxInFlight <= concurrency, `${target.maxInFlight} > ${concurrency}`);
        assert.equal(target.keyOverlap, false);
        // The first successful attempt of each event, per key, comes in seq order.
        const firsts = new Map<string, number[]>();
        const seen = new Set<number>();
        const outcomes = store.records.flat();
        for (const record of outcomes) {
          if (record.outcome !== 'delivered') continue;
          for (const seq of record.seqs) {
            if (seen.has(seq)) continue;
            seen.add(seq);
            const key = keys[seq - 1];
            if (key === undefined) continue;
            firsts.set(key, [...(firsts.get(key) ?? []), seq]);
          }
        }
        for (const [key, seqs] of firsts) {
          assert.deepEqual(
            seqs,
            [...seqs].sort((a, b) => a - b),
            `key ${key} out of order`,
          );
        }
        assert.equal(seen.size, count);
        await d.close();
      },
    ),
    { numRuns: 60 },
  );
});

test('concurrency is reached but never exceeded; unkeyed go oldest first', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(100);
  const target = fakeTarget(clock);
  const d = dispatcher(store, target, clock, { concurrency: 8 });
  await d.start(100);
  assert.equal(target.inFlight, 8);
  assert.equal(d.inFlight, 8);
  assert.deepEqual(
    [...d.busy].sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  assert.deepEqual(
    target.sent.map((s) => seqOf(s.envelopes[0] as Envelope)),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  await clock.advance(2000);
  assert.equal(target.maxInFlight, 8);
  assert.equal(d.delivered, 100);
  assert.equal(d.pending, 0);
  assert.equal(d.state, 'healthy');
  assert.ok(target.sent.every((s) => s.batchId === undefined && s.envelopes.length === 1));
  // One record call per turn: 8 completions at a time, so far fewer calls than attempts.
  assert.ok(store.records.length <= 20, `${store.records.length} record calls`);
  assert.equal(store.records.flat().length, 100);
  await d.close();
});

test('a keyed failure holds back only its own key', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  withKeys(store, 6, (seq) => (seq % 2 === 1 ? 'a' : 'b'));
  let failuresLeft = 3;
  const target = fakeTarget(clock, (envelopes) => {
    if ((envelopes[0] as Envelope).event['k'] === 'a' && failuresLeft > 0) {
      failuresLeft--;
      return { ok: false, retryable: true, error: 'nope' };
    }
    return { ok: true, retryable: true };
  });
  const d = dispatcher(store, target, clock, { concurrency: 4 });
  await d.start(6);
  assert.deepEqual(
    target.sent.map((s) => seqOf(s.envelopes[0] as Envelope)),
    [1, 2],
  );
  await clock.advance(200); // b delivered 2, 4, 6 meanwhile; a still retrying 1
  const bDone = store.records
    .flat()
    .filter((r) => r.outcome === 'delivered')
    .flatMap((r) => r.seqs);
  assert.deepEqual(bDone, [2, 4, 6]);
  assert.equal(d.state, 'failing');
  await clock.advance(5000);
  const order = store.records
    .flat()
    .filter((r) => r.outcome === 'delivered')
    .flatMap((r) => r.seqs)
    .filter((s) => s % 2 === 1);
  assert.deepEqual(order, [1, 3, 5]);
  assert.equal(d.state, 'healthy');
  assert.equal(d.failedAttempts, 3);
  const retries = store.records.flat().filter((r) => r.outcome === 'pending');
  assert.equal(retries.length, 3);
  // nextAt = now + 0.5 × min(100 + 100·2^(n−1), 1000)
  const first = retries[0] as AttemptRecord;
  assert.equal(first.nextAt, first.at + first.durationMs + 100);
  assert.equal(first.error, 'nope');
  await d.close();
});

test('retryAfter pauses the whole destination, capped by maxRetryAfter', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(10);
  let first = true;
  const target = fakeTarget(clock, () => {
    if (first) {
      first = false;
      return { ok: false, retryable: true, status: 429, retryAfter: 999_999 };
    }
    return { ok: true, retryable: true };
  });
  const d = dispatcher(store, target, clock, { concurrency: 1, maxRetryAfter: 5000 });
  await d.start(10);
  const t0 = clock.now();
  await clock.advance(4900);
  assert.equal(target.sent.length, 1, 'nothing else is sent during the pause');
  await clock.advance(160);
  assert.equal(target.sent.length, 2);
  assert.equal((target.sent[1] as Sent).at, t0 + 50 + 5000);
  // The 429'd event is the one that waited; it went first after the pause (oldest first).
  assert.equal(seqOf((target.sent[1] as Sent).envelopes[0] as Envelope), 1);
  await clock.advance(2000);
  assert.equal(d.delivered, 10);
  await d.close();
});

test('maxAttempts → dead; retryable false → dead at once', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(2);
  const dead: number[] = [];
  const target = fakeTarget(clock, (envelopes) =>
    seqOf(envelopes[0] as Envelope) === 1
      ? { ok: false, retryable: true, status: 500, error: 'HTTP 500' }
      : { ok: false, retryable: false, status: 400, error: 'HTTP 400' },
  );
  const d = dispatcher(store, target, clock, {
    retry: { maxAttempts: 3, backoff: { base: 10, factor: 10, max: 100 } },
    hooks: { dead: (count) => dead.push(count) },
  });
  await d.start(2);
  await clock.advance(5000);
  const sentSeqs = target.sent.map((s) => seqOf(s.envelopes[0] as Envelope));
  assert.equal(sentSeqs.filter((s) => s === 1).length, 3);
  assert.equal(sentSeqs.filter((s) => s === 2).length, 1);
  assert.equal((store.rows.get(1) as Row).status, 'dead');
  assert.equal((store.rows.get(2) as Row).status, 'dead');
  assert.equal(d.deadLettered, 2);
  assert.equal(d.pending, 0);
  assert.deepEqual(dead, [1, 1]);
  assert.equal(d.failedAttempts, 4);
  await d.close();
});

test('rate limit: no more than perSecond (+ a small burst) started in any second', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(60);
  const target = fakeTarget(clock, undefined, () => 5);
  const d = dispatcher(store, target, clock, { concurrency: 16, rateLimit: { perSecond: 20 } });
  await d.start(60);
  await clock.advance(4000);
  const starts = target.sent.map((s) => s.at);
  assert.ok(starts.length >= 60 && starts.length <= 82, `${starts.length} in 4 s`);
  for (const start of starts) {
    const n = starts.filter((s) => s >= start && s < start + 1000).length;
    assert.ok(n <= 21, `${n} started in the second from ${start}`);
  }
  // One timer for the next token, not polling: at most a couple of timers pending at once.
  assert.ok(clock.timers <= 3, `${clock.timers} timers`);
  await d.close();
});

test('disableAfter disables, events stay pending, enable resumes', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(3);
  let healthy = false;
  const states: string[] = [];
  const target = fakeTarget(clock, () =>
    healthy ? { ok: true, retryable: true } : { ok: false, retryable: true, error: 'down' },
  );
  const d = dispatcher(store, target, clock, {
    concurrency: 1,
    disableAfter: 1000,
    retry: { maxAttempts: 1000, backoff: { base: 100, factor: 100, max: 400 } },
    hooks: { state: (s) => states.push(s) },
  });
  await d.start(3);
  await clock.advance(3000);
  assert.equal(d.state, 'disabled');
  assert.deepEqual(states, ['failing', 'disabled']);
  assert.equal(store.runtime.state, 'disabled');
  assert.equal(store.runtime.reason, 'disableAfter');
  assert.ok(store.runtime.failingSince !== undefined && store.runtime.failingSince > 0);
  const sent = target.sent.length;
  await clock.advance(10_000);
  assert.equal(target.sent.length, sent, 'nothing starts while disabled');
  assert.equal(d.pending, 3);
  assert.ok([...store.rows.values()].every((r) => r.status === 'pending'));
  assert.equal(d.deadLettered, 0);

  healthy = true;
  await d.enable();
  assert.equal(store.runtime.state, 'enabled');
  await clock.advance(2000);
  assert.equal(d.delivered, 3);
  assert.equal(d.state, 'healthy');
  assert.equal(d.lastError, 'down');
  assert.equal(store.runtime.failingSince, 0, 'cleared on recovery (0: not failing)');
  assert.ok(store.runtime.lastSuccessAt !== undefined);
  await d.close();
  assert.equal(store.runtime.lastSuccessAt, d.lastSuccessAt, 'the last success is saved at close');
});

test('configured enabled: false is disabled unless the store says an operator enabled it', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(1);
  const target = fakeTarget(clock);
  const off = dispatcher(store, target, clock, { enabled: false });
  await off.start(1);
  await clock.advance(500);
  assert.equal(off.state, 'disabled');
  assert.equal(target.sent.length, 0);
  await off.close();

  store.runtime = { state: 'enabled' };
  const on = dispatcher(store, target, clock, { enabled: false });
  await on.start(1);
  await clock.advance(500);
  assert.equal(on.delivered, 1);
  await on.close();
});

test('disable() stops new attempts; in-flight ones finish and are recorded', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(10);
  const target = fakeTarget(clock);
  const d = dispatcher(store, target, clock, { concurrency: 2 });
  await d.start(10);
  await d.disable('admin');
  assert.equal(store.runtime.reason, 'admin');
  await clock.advance(1000);
  assert.equal(target.sent.length, 2);
  assert.equal(d.delivered, 2);
  assert.equal(store.records.flat().length, 2);
  await d.close();
});

test('batches: sealed once before the first attempt, retried whole, re-formed after a restart', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  withKeys(store, 7, (seq) => (seq <= 4 ? 'a' : undefined));
  let fail = true;
  const target = fakeTarget(clock, () =>
    fail ? { ok: false, retryable: true, error: 'down' } : { ok: true, retryable: true },
  );
  const d1 = dispatcher(store, target, clock, {
    concurrency: 4,
    batch: { maxSize: 3, maxDelay: 100 },
    retry: { maxAttempts: 100, backoff: { base: 10_000, factor: 0, max: 10_000 } },
  });
  await d1.start(7);
  await clock.advance(200);
  // 1..3 (full at once), then 4..7 wait: 4 is key a, held by the first batch.
  assert.equal(store.seals.length, 2);
  assert.deepEqual(store.seals[0]?.seqs, [1, 2, 3]);
  assert.deepEqual(store.seals[1]?.seqs, [5, 6, 7]);
  assert.ok(target.sent.every((s) => s.batchId?.startsWith('batch_') === true));
  const sentBefore = target.sent.length;
  assert.equal(target.keyOverlap, false);
  await d1.close();

  // Restart: a new dispatcher on the same store re-forms both batches, same ids and members.
  fail = false;
  const d2 = dispatcher(store, target, clock, {
    concurrency: 4,
    batch: { maxSize: 3, maxDelay: 100 },
  });
  await d2.start(7);
  await clock.advance(20_000);
  assert.equal(d2.delivered, 7);
  assert.equal(store.seals.length, 3, 'only the batch holding 4 is new');
  assert.deepEqual(store.seals[2]?.seqs, [4]);
  const after = target.sent.slice(sentBefore);
  const byId = new Map(after.map((s) => [s.batchId, s.envelopes.map(seqOf)]));
  assert.deepEqual(byId.get(store.seals[0]?.batchId), [1, 2, 3]);
  assert.deepEqual(byId.get(store.seals[1]?.batchId), [5, 6, 7]);
  // 4 (key a) only after the batch with 1..3 was delivered.
  const i4 = after.findIndex((s) => s.envelopes.some((e) => seqOf(e) === 4));
  const i1 = after.findIndex((s) => s.batchId === store.seals[0]?.batchId);
  assert.ok(i1 >= 0 && i4 > i1);
  await d2.close();
});

test('batches: sent when full or when the oldest waited maxDelay', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(2);
  const target = fakeTarget(clock);
  const d = dispatcher(store, target, clock, { batch: { maxSize: 5, maxDelay: 300 } });
  await d.start(2);
  await clock.advance(250);
  assert.equal(target.sent.length, 0);
  d.offer(store.add(3));
  await clock.advance(1);
  assert.equal(target.sent.length, 1, 'full');
  assert.deepEqual((target.sent[0] as Sent).envelopes.map(seqOf), [1, 2, 3, 4, 5]);
  d.offer(store.add(1));
  await clock.advance(299);
  assert.equal(target.sent.length, 1);
  await clock.advance(2);
  assert.equal(target.sent.length, 2, 'maxDelay');
  await clock.advance(100);
  assert.equal(d.delivered, 6);
  await d.close();
});

test('window and paging: at most `window` in memory, offers are not loaded twice', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(50);
  const target = fakeTarget(clock, undefined, () => 10);
  let reads = 0;
  const pending = store.pending.bind(store);
  store.pending = (dest, after, limit) => {
    reads++;
    assert.ok(limit <= 10);
    return pending(dest, after, limit);
  };
  const d = dispatcher(store, target, clock, { concurrency: 2, window: 10 });
  await d.start(50);
  d.offer(store.add(5)); // not caught up: paged in later
  await clock.advance(1000);
  d.offer(store.add(5)); // caught up by now: kept in memory
  await clock.advance(1000);
  assert.equal(d.delivered, 60);
  assert.equal(target.sent.length, 60, 'each sent once');
  assert.equal(new Set(target.sent.map((s) => seqOf(s.envelopes[0] as Envelope))).size, 60);
  assert.ok(reads >= 6, `${reads} reads`);
  assert.equal(d.pending, 0);
  await d.close();
});

test('requeue: a resent delivery below the cursor goes straight into memory', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(3);
  const target = fakeTarget(clock);
  const d = dispatcher(store, target, clock);
  await d.start(3);
  await clock.advance(500);
  assert.equal(d.delivered, 3);
  const row = store.rows.get(2) as Row;
  row.status = 'pending';
  d.requeue({ ...row, nextAt: 0 });
  assert.equal(d.pending, 1);
  await clock.advance(500);
  assert.equal(d.delivered, 4);
  assert.equal(target.sent.filter((s) => seqOf(s.envelopes[0] as Envelope) === 2).length, 2);
  await d.close();
});

test('overflow moves the oldest not-busy deliveries to dead and drops them from memory', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(10);
  const target = fakeTarget(clock);
  const d = dispatcher(store, target, clock, { concurrency: 2 });
  await d.start(10);
  assert.deepEqual([...d.busy], [1, 2]);
  assert.equal(await d.overflow(3, 'queue full'), 3);
  assert.deepEqual(
    [3, 4, 5].map((s) => store.rows.get(s)?.status),
    ['dead', 'dead', 'dead'],
  );
  await clock.advance(2000);
  assert.equal(d.delivered, 7);
  assert.equal(d.pending, 0);
  assert.ok(!target.sent.some((s) => [3, 4, 5].includes(seqOf(s.envelopes[0] as Envelope))));
  await d.close();
});

test('a failed record flush keeps its records and tries again', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(4);
  store.failRecord = 1;
  const target = fakeTarget(clock);
  const d = dispatcher(store, target, clock);
  await d.start(4);
  await clock.advance(100);
  assert.equal(store.records.length, 0);
  await clock.advance(1000);
  assert.equal(store.records.flat().length, 4);
  assert.ok([...store.rows.values()].every((r) => r.status === 'delivered'));
  await d.close();
});

test('close resolves soon after an abort while the target hangs; unknown outcomes unrecorded', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(3);
  const target = fakeTarget(clock, undefined, () => undefined);
  target.close = () => new Promise(() => {}); // hangs too
  const d = dispatcher(store, target, clock, { concurrency: 2 });
  await d.start(3);
  assert.equal(d.inFlight, 2);
  const controller = new AbortController();
  const closed = d.close({ signal: controller.signal });
  let done = false;
  void closed.then(() => (done = true));
  await settle();
  assert.equal(done, false, 'waits for in-flight attempts');
  const t0 = performance.now();
  controller.abort();
  await closed;
  // Only microtasks run after the abort: the bound catches a hang, not a slow machine.
  assert.ok(performance.now() - t0 < 5_000, `${performance.now() - t0} ms`);
  assert.equal(store.records.length, 0);
  assert.ok([...store.rows.values()].every((r) => r.status === 'pending'));
  assert.equal(clock.timers, 0, 'no dispatcher timer is left');
});

test('close waits for in-flight attempts, then closes the target and flushes', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(5);
  const target = fakeTarget(clock);
  const d = dispatcher(store, target, clock, { concurrency: 2 });
  await d.start(5);
  const closed = d.close();
  await clock.advance(60);
  await closed;
  assert.equal(target.closed, true);
  assert.equal(d.delivered, 2);
  assert.equal(store.records.flat().length, 2);
  assert.equal(target.sent.length, 2, 'nothing new after close');
});

test('after a restart the stored attempts and nextAt count: not before nextAt, dead at maxAttempts', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  store.add(2);
  Object.assign(store.rows.get(1) as Row, { attempts: 4, nextAt: clock.now() + 1000 });
  Object.assign(store.rows.get(2) as Row, { attempts: 2, nextAt: 0 });
  const target = fakeTarget(clock, () => ({ ok: false, retryable: true, error: 'down' }));
  const d = dispatcher(store, target, clock); // maxAttempts 5
  await d.start(2);
  assert.deepEqual(
    target.sent.map((s) => seqOf(s.envelopes[0] as Envelope)),
    [2],
  );
  await clock.advance(999);
  assert.ok(!target.sent.some((s) => seqOf(s.envelopes[0] as Envelope) === 1), 'waits for nextAt');
  await clock.advance(100);
  assert.equal(target.sent.filter((s) => seqOf(s.envelopes[0] as Envelope) === 1).length, 1);
  await clock.advance(100);
  assert.equal((store.rows.get(1) as Row).status, 'dead', 'its 5th attempt was the last');
  // 2 had 2 attempts: its 3rd, 4th and 5th were made here, then it was given up on.
  assert.equal(target.sent.filter((s) => seqOf(s.envelopes[0] as Envelope) === 2).length, 3);
  assert.equal((store.rows.get(2) as Row).status, 'dead');
  const retry = store.records.flat().find((r) => r.seqs[0] === 2);
  // attempt 3 failed: 0.5 × min(100 + 100·2², 1000) = 250
  assert.equal(retry?.nextAt, (retry?.at ?? 0) + 50 + 250);
  await d.close();
});

test('overflow counts as dead for the hooks; pending follows offers and requeues', async () => {
  const clock = new FakeClock();
  const store = fakeStore();
  const dead: [number, string | undefined][] = [];
  const target = fakeTarget(clock, undefined, () => undefined); // hangs
  const d = dispatcher(store, target, clock, {
    concurrency: 1,
    hooks: { dead: (n, outcome) => dead.push([n, outcome.error]) },
  });
  await d.start(0);
  d.offer(store.add(4));
  assert.equal(d.pending, 4);
  assert.equal(d.inFlight, 1);
  assert.equal(await d.overflow(2, 'full'), 2);
  assert.deepEqual(dead, [[2, 'full']]);
  assert.equal(d.pending, 2);
  assert.equal(d.deadLettered, 2);
  const controller = new AbortController();
  controller.abort();
  await d.close({ signal: controller.signal });
});
