// The Dispatcher's claiming mode against a fake shared store with leases (the PostgresStore
// contract in memory): several dispatchers ("relays") on one store, each delivering only what
// it claimed. The SQLite path is covered by Dispatcher.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import type { Envelope } from '../envelope.js';
import type { AttemptRecord, PendingDelivery } from '../store/Store.js';
import { Dispatcher, type Clock, type DispatcherOptions } from './Dispatcher.js';
import type { AttemptOutcome, Target } from './Target.js';

const DEST = 'hooks';
const LEASE = 3000;

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
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      let first: { at: number; fn: () => void } | undefined;
      let firstId = 0;
      for (const [id, timer] of this.#timers) {
        if (timer.at <= end && (first === undefined || timer.at < first.at)) {
          first = timer;
          firstId = id;
        }
      }
      if (first === undefined) break;
      this.t = Math.max(this.t, first.at);
      this.#timers.delete(firstId);
      first.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

interface Row extends PendingDelivery {
  status: 'pending' | 'delivered' | 'dead';
  owner: string | undefined;
  leaseUntil: number;
}

/** One store shared by every dispatcher; `view(owner)` is what one relay's store instance is. */
class SharedStore {
  readonly rows = new Map<number, Row>();
  readonly listeners = new Set<(destination: string) => void>();
  claims = 0;
  /** Every release call: [owner, seqs]. */
  readonly releases: [string, number[]][] = [];
  #seq = 0;
  constructor(readonly clock: FakeClock) {}

  add(count: number, key: (i: number) => string | undefined): void {
    for (let i = 0; i < count; i++) {
      const seq = ++this.#seq;
      const k = key(i);
      this.rows.set(seq, {
        seq,
        id: `m${seq}`,
        receivedAt: 0,
        source: 'http',
        event: { n: seq, ...(k === undefined ? {} : { k }) },
        key: k,
        attempts: 0,
        nextAt: 0,
        batchId: undefined,
        status: 'pending',
        owner: undefined,
        leaseUntil: 0,
      });
    }
    for (const l of this.listeners) l(DEST);
  }

  view(owner: string): DispatcherOptions['store'] {
    const now = (): number => this.clock.now();
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
    return {
      pending: () => Promise.reject(new Error('claiming mode must not page pending()')),
      seal: () => Promise.resolve(),
      destination: () => Promise.resolve({}),
      updateDestination: () => Promise.resolve(),
      overflow: () => Promise.resolve([]),
      record: (records: readonly AttemptRecord[]) => {
        for (const r of records) {
          for (const seq of r.seqs) {
            const row = this.rows.get(seq);
            if (row === undefined) continue;
            const held = row.owner === owner && row.leaseUntil > now();
            // A late failure does not touch a delivery another owner holds (PostgresStore).
            if (r.outcome !== 'delivered' && !held && row.owner !== undefined) continue;
            row.status = r.outcome;
            row.attempts++;
            row.nextAt = r.nextAt ?? 0;
            row.owner = undefined;
            row.leaseUntil = 0;
          }
        }
        return Promise.resolve();
      },
      claim: (_destination: string, limit: number) => {
        this.claims++;
        const t = now();
        const heads = new Map<string, Row>();
        for (const row of [...this.rows.values()].sort((a, b) => a.seq - b.seq)) {
          if (row.status !== 'pending' || row.key === undefined) continue;
          if (!heads.has(row.key)) heads.set(row.key, row);
        }
        const out: PendingDelivery[] = [];
        for (const row of [...this.rows.values()].sort((a, b) => a.seq - b.seq)) {
          if (out.length >= limit) break;
          if (row.status !== 'pending' || row.nextAt > t) continue;
          if (row.owner !== undefined && row.leaseUntil > t) continue;
          if (row.key !== undefined && heads.get(row.key) !== row) continue;
          row.owner = owner;
          row.leaseUntil = t + LEASE;
          out.push(copy(row));
        }
        return Promise.resolve(out);
      },
      renew: (_destination: string, seqs: readonly number[]) => {
        const t = now();
        const held: number[] = [];
        for (const seq of seqs) {
          const row = this.rows.get(seq);
          if (row?.status === 'pending' && row.owner === owner && row.leaseUntil > t) {
            row.leaseUntil = t + LEASE;
            held.push(seq);
          }
        }
        return Promise.resolve(held);
      },
      release: (_destination: string, seqs: readonly number[]) => {
        this.releases.push([owner, [...seqs]]);
        for (const seq of seqs) {
          const row = this.rows.get(seq);
          if (row?.status === 'pending' && row.owner === owner) {
            row.owner = undefined;
            row.leaseUntil = 0;
          }
        }
        for (const l of this.listeners) l(DEST);
        return Promise.resolve();
      },
      counts: () => {
        const rows = [...this.rows.values()];
        const n = (status: Row['status']): number => rows.filter((r) => r.status === status).length;
        return Promise.resolve({
          pending: n('pending'),
          delivered: n('delivered'),
          dead: n('dead'),
        });
      },
      subscribe: (listener: (destination: string) => void) => {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
      },
    };
  }
}

/** Every send, and the keys in flight across every dispatcher (to catch two of a key at once). */
class Receiver {
  readonly sent: { n: number; by: string }[] = [];
  readonly inFlightKeys = new Map<string, number>();
  overlap = false;
  constructor(readonly clock: FakeClock) {}

  target(
    by: string,
    answer: (n: number) => AttemptOutcome | 'hang' = () => ({ ok: true, retryable: true }),
  ): Target {
    return {
      send: (envelopes: readonly Envelope[]) => {
        const keys = envelopes.map((e) => e.event['k'] as string | undefined);
        for (const e of envelopes) this.sent.push({ n: e.event['n'] as number, by });
        for (const k of keys) {
          if (k === undefined) continue;
          const c = (this.inFlightKeys.get(k) ?? 0) + 1;
          if (c > 1) this.overlap = true;
          this.inFlightKeys.set(k, c);
        }
        const outcome = answer(envelopes[0]?.event['n'] as number);
        return new Promise((resolve) => {
          if (outcome === 'hang') return; // a relay that died mid-request
          this.clock.setTimeout(() => {
            for (const k of keys)
              if (k !== undefined) this.inFlightKeys.set(k, (this.inFlightKeys.get(k) ?? 1) - 1);
            resolve(outcome);
          }, 20);
        });
      },
      close: () => Promise.resolve(),
    };
  }
}

const silent = pino({ level: 'silent' });

function relay(
  store: SharedStore,
  owner: string,
  target: Target,
  options: Partial<DispatcherOptions> = {},
): Dispatcher {
  return new Dispatcher({
    name: DEST,
    store: store.view(owner),
    target,
    concurrency: 4,
    retry: { maxAttempts: 5, backoff: { base: 100, factor: 100, max: 1000 } },
    maxRetryAfter: 60_000,
    enabled: true,
    logger: silent,
    clock: store.clock,
    random: () => 0.5,
    claiming: { leaseTimeout: LEASE, pollInterval: 1000 },
    ...options,
  });
}

/** The first delivery of each seq, per key, in the order the receiver saw them. */
function firstsByKey(store: SharedStore, sent: readonly { n: number }[]): Map<string, number[]> {
  const seen = new Set<number>();
  const byKey = new Map<string, number[]>();
  for (const { n } of sent) {
    if (seen.has(n)) continue;
    seen.add(n);
    const key = store.rows.get(n)?.key ?? '';
    byKey.set(key, [...(byKey.get(key) ?? []), n]);
  }
  return byKey;
}

test('claiming: three dispatchers on one store deliver everything once, keys in order, never a key twice in flight', async () => {
  const clock = new FakeClock();
  const store = new SharedStore(clock);
  const receiver = new Receiver(clock);
  store.add(300, (i) => (i % 7 === 0 ? undefined : `k${i % 10}`));
  const relays = ['a', 'b', 'c'].map((o) => relay(store, o, receiver.target(o)));
  await Promise.all(relays.map((r) => r.start(0)));
  store.add(100, (i) => `k${i % 10}`); // while delivering: a subscribe wake-up
  await clock.advance(20_000);

  assert.equal(receiver.overlap, false, 'a key had two deliveries in flight');
  const delivered = [...store.rows.values()].filter((r) => r.status === 'delivered').length;
  assert.equal(delivered, 400);
  assert.equal(receiver.sent.length, 400, 'no takeover happened, so no duplicate either');
  for (const [key, seqs] of firstsByKey(store, receiver.sent)) {
    if (key === '') continue;
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      `key ${key} out of order`,
    );
  }
  const by = new Set(receiver.sent.map((s) => s.by));
  assert.equal(by.size, 3, 'every relay delivered a share');
  for (const r of relays) await r.close();
});

test('claiming: pending is the store-wide count, re-read at each poll', async () => {
  const clock = new FakeClock();
  const store = new SharedStore(clock);
  const receiver = new Receiver(clock);
  // Disabled: claims nothing, yet other relays' ingest shows in its pending (maxPending).
  const d = relay(store, 'a', receiver.target('a'), { enabled: false });
  await d.start(0);
  store.add(50, () => undefined);
  await clock.advance(1100);
  assert.equal(d.pending, 50);
  assert.equal(receiver.sent.length, 0);
  await d.close();
});

test('claiming: an idle dispatcher polls slowly, not in a busy loop', async () => {
  const clock = new FakeClock();
  const store = new SharedStore(clock);
  const receiver = new Receiver(clock);
  const d = relay(store, 'a', receiver.target('a'));
  await d.start(0);
  const before = store.claims;
  await clock.advance(10_000);
  const polls = store.claims - before;
  assert.ok(polls >= 9 && polls <= 11, `expected ~10 claims in 10 s idle, got ${polls}`);
  // A poll finds work that no notification announced (e.g. another relay's retry coming due).
  store.listeners.clear();
  store.add(1, () => undefined);
  await clock.advance(1100);
  assert.deepEqual(
    receiver.sent.map((s) => s.n),
    [1],
  );
  await d.close();
});

test('claiming: a dead relay’s leases are taken over after leaseTimeout; a kept lease is renewed', async () => {
  const clock = new FakeClock();
  const store = new SharedStore(clock);
  const receiver = new Receiver(clock);
  store.add(20, (i) => `k${i % 4}`);
  // "a" claims first and never answers (SIGKILLed mid-request); it also holds the claimed rest.
  const dead = relay(
    store,
    'a',
    receiver.target('a', () => 'hang'),
  );
  await dead.start(0);
  const heldByA = [...store.rows.values()].filter((r) => r.owner === 'a').length;
  assert.ok(heldByA > 0);
  // Its dispatcher is gone: no renewals any more (its timers die with the process).
  await dead.close({ signal: AbortSignal.abort() });

  const live = relay(store, 'b', receiver.target('b'));
  await live.start(0);
  await clock.advance(LEASE - 500);
  assert.equal(
    receiver.sent.filter((s) => s.by === 'b').length,
    0,
    'b must not take over what a still holds',
  );
  await clock.advance(LEASE + 2000);
  const pending = [...store.rows.values()].filter((r) => r.status !== 'delivered');
  assert.deepEqual(pending, []);
  for (const [key, seqs] of firstsByKey(store, receiver.sent)) {
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      `key ${key} out of order`,
    );
  }

  // A slow request outlives the lease while its dispatcher renews it: nobody else takes it.
  const slowStore = new SharedStore(clock);
  const slow = new Receiver(clock);
  slowStore.add(1, () => 'k');
  let release: (() => void) | undefined;
  const slowTarget: Target = {
    send: (envelopes) => {
      slow.sent.push({ n: envelopes[0]?.event['n'] as number, by: 'a' });
      return new Promise((resolve) => {
        release = () => resolve({ ok: true, retryable: true });
      });
    },
    close: () => Promise.resolve(),
  };
  // b polls more often than a, and a's polls miss the moment its lease would expire: without
  // renewals b would win it (a re-claiming its own expired lease would hide a missing renew).
  const a = relay(slowStore, 'a', slowTarget, {
    claiming: { leaseTimeout: LEASE, pollInterval: 1100 },
  });
  const b = relay(slowStore, 'b', slow.target('b'), {
    claiming: { leaseTimeout: LEASE, pollInterval: 300 },
  });
  await a.start(0);
  await b.start(0);
  await clock.advance(LEASE * 3);
  assert.deepEqual(
    slow.sent.map((s) => s.by),
    ['a'],
    'renewed lease was taken over',
  );
  release?.();
  await clock.advance(100);
  assert.equal(slowStore.rows.get(1)?.status, 'delivered');
  await a.close();
  await b.close();
  await live.close();
});

test('claiming: a retry goes back to the store and is claimed again when due', async () => {
  const clock = new FakeClock();
  const store = new SharedStore(clock);
  const receiver = new Receiver(clock);
  store.add(3, () => 'k');
  let failures = 2;
  const d = relay(
    store,
    'a',
    receiver.target('a', (n) =>
      n === 1 && failures-- > 0
        ? { ok: false, retryable: true, status: 500 }
        : { ok: true, retryable: true },
    ),
  );
  await d.start(0);
  await clock.advance(5000);
  assert.deepEqual(
    receiver.sent.map((s) => s.n),
    [1, 1, 1, 2, 3],
    'the key waits for its head to succeed',
  );
  assert.equal(store.rows.get(1)?.attempts, 3);
  assert.ok([...store.rows.values()].every((r) => r.status === 'delivered'));
  await d.close();
});

test('claiming: close gives back what was claimed but not sent, at once, so another relay sends it', async () => {
  const clock = new FakeClock();
  const store = new SharedStore(clock);
  const receiver = new Receiver(clock);
  store.add(6, () => undefined);
  // Concurrency 2 holds 3: two in flight, one claimed ahead.
  const a = relay(store, 'a', receiver.target('a'), { concurrency: 2 });
  await a.start(0);
  await settle();
  assert.deepEqual(
    receiver.sent.map((x) => x.n),
    [1, 2],
  );
  assert.equal(store.rows.get(3)?.owner, 'a');
  const closing = a.close();
  await settle();
  // Given back before the requests in flight end, long before its lease would expire.
  assert.deepEqual(store.releases, [['a', [3]]]);
  assert.equal(store.rows.get(3)?.owner, undefined);
  assert.equal(store.rows.get(1)?.owner, 'a', 'in flight: still held');
  const b = relay(store, 'b', receiver.target('b'), { concurrency: 2 });
  await b.start(0);
  assert.equal(store.rows.get(3)?.owner, 'b', 'taken at once, not after leaseTimeout');
  await clock.advance(200);
  await closing;
  assert.ok([...store.rows.values()].every((r) => r.status === 'delivered'));
  assert.deepEqual(
    receiver.sent.map((x) => `${x.n}${x.by}`).sort(),
    ['1a', '2a', '3b', '4b', '5b', '6b'],
    'each sent once, 3 by b',
  );
  await b.close();
  assert.deepEqual(store.releases.length, 1, 'b had nothing claimed left to give back');
});

test('claiming: a wake-up during a claim claims again right after it, not at the next poll', async () => {
  const clock = new FakeClock();
  const store = new SharedStore(clock);
  const receiver = new Receiver(clock);
  const view = store.view('a');
  let gate: (() => void) | undefined;
  let first = true;
  const slow: DispatcherOptions['store'] = {
    ...view,
    // The first claim reads the table, then takes long to answer (a slow database).
    claim: async (destination, limit) => {
      const rows = await view.claim!(destination, limit);
      if (first) {
        first = false;
        await new Promise<void>((resolve) => {
          gate = resolve;
        });
      }
      return rows;
    },
  };
  const d = new Dispatcher({
    name: DEST,
    store: slow,
    target: receiver.target('a'),
    concurrency: 4,
    retry: { maxAttempts: 5, backoff: { base: 100, factor: 100, max: 1000 } },
    maxRetryAfter: 60_000,
    enabled: true,
    logger: silent,
    clock,
    claiming: { leaseTimeout: LEASE, pollInterval: 60_000 },
  });
  const starting = d.start(0);
  await settle();
  assert.ok(gate !== undefined, 'the first claim is running');
  // Stored while the claim runs, after it read the table (it finds nothing): only the
  // wake-up tells of them.
  store.add(3, () => undefined);
  gate();
  await starting;
  await clock.advance(100);
  assert.deepEqual(
    receiver.sent.map((s) => s.n),
    [1, 2, 3],
    'claimed again after the first claim, long before the 60 s poll',
  );
  await d.close();
});

test('claiming: a freed slot starts the next delivery from what was claimed ahead', async () => {
  const clock = new FakeClock();
  const store = new SharedStore(clock);
  const receiver = new Receiver(clock);
  store.add(40, () => undefined);
  const d = relay(store, 'a', receiver.target('a'), { concurrency: 4 });
  await d.start(0);
  await settle();
  // 4 in flight and 2 ahead (1.5 × concurrency).
  assert.equal(receiver.sent.length, 4);
  assert.equal([...store.rows.values()].filter((r) => r.owner === 'a').length, 6);
  const claims = store.claims;
  // Every 20 ms round frees 4 slots: 40 deliveries in 10 rounds, claims refilling as they go.
  await clock.advance(200);
  assert.equal([...store.rows.values()].filter((r) => r.status === 'delivered').length, 40);
  assert.ok(store.claims > claims, 'freed slots claimed more');
  await d.close();
});

test('claiming: start does not wait while wake-ups keep coming, and sends what it claimed', async () => {
  const clock = new FakeClock();
  const store = new SharedStore(clock);
  const receiver = new Receiver(clock);
  // One key: one claimable head at a time. Every claim hears of new ingest (other relays'
  // producers never stop), as a relay restarted under load does.
  store.add(5, () => 'k');
  const view = store.view('a');
  const busy: DispatcherOptions['store'] = {
    ...view,
    claim: async (destination, limit) => {
      const rows = await view.claim!(destination, limit);
      // Bounded, so that a dispatcher that loops on wake-ups ends the test instead of hanging.
      if (store.claims < 1000) for (const l of store.listeners) l(DEST);
      return rows;
    },
  };
  const d = new Dispatcher({
    name: DEST,
    store: busy,
    target: receiver.target('a'),
    concurrency: 4,
    retry: { maxAttempts: 5, backoff: { base: 100, factor: 100, max: 1000 } },
    maxRetryAfter: 60_000,
    enabled: true,
    logger: silent,
    clock,
    claiming: { leaseTimeout: LEASE, pollInterval: 1000 },
  });
  await d.start(0);
  assert.ok(store.claims < 10, `start waited through ${store.claims} claims`);
  await settle();
  assert.deepEqual(
    receiver.sent.map((s) => s.n),
    [1],
    'the head is sent while the claims go on',
  );
  await clock.advance(500);
  assert.deepEqual(
    receiver.sent.map((s) => s.n),
    [1, 2, 3, 4, 5],
  );
  await d.close();
});
