// Runs against the real local PostgreSQL (TEST_POSTGRES_URL, default
// postgres://postgres@127.0.0.1:5432/test), each store in a fresh schema with a random name,
// dropped at the end. Without a server: skipped with a warning, except under CI, where it fails.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { storeConformance } from './conformance.js';
import {
  POSTGRES_SCHEMA_VERSION,
  PostgresStore,
  type PostgresStoreOptions,
} from './PostgresStore.js';
import type { NewMessage, PendingDelivery } from './Store.js';

const URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function reachable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const unreachable = await reachable();
if (unreachable !== undefined) {
  if (process.env.CI) throw new Error(`PostgreSQL at ${URL} is unreachable: ${unreachable}`);
  console.warn(
    `PostgresStore tests SKIPPED: PostgreSQL at ${URL} is unreachable (${unreachable}); ` +
      'start it or set TEST_POSTGRES_URL',
  );
}

const schemas = new Set<string>();
function freshSchema(): string {
  const name = `t_${randomBytes(6).toString('hex')}`;
  schemas.add(name);
  return name;
}

const stores: PostgresStore[] = [];
function store(options: Partial<PostgresStoreOptions> & { schema: string }): PostgresStore {
  const s = new PostgresStore({ url: URL, retention: 60_000, ...options });
  stores.push(s);
  return s;
}

after(async () => {
  for (const s of stores) await s.close();
  if (unreachable !== undefined) return;
  const client = new pg.Client({ connectionString: URL });
  await client.connect();
  for (const name of schemas) await client.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
  await client.end();
});

let counter = 0;
function message(destination: string, key?: string): NewMessage {
  counter++;
  return {
    id: `pg-${process.pid}-${counter}`,
    receivedAt: Date.now(),
    source: 'http',
    event: { n: counter },
    deliveries: [key === undefined ? { destination } : { destination, key }],
  };
}

function delivered(destination: string, seqs: readonly number[], at = 1) {
  return { destination, seqs, at, durationMs: 1, status: 200, outcome: 'delivered' as const };
}

/** A TCP proxy to PostgreSQL that can be cut (every connection reset, new ones too). */
class CuttableProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  down = false;

  constructor() {
    const [host, port] = [new globalThis.URL(URL).hostname, new globalThis.URL(URL).port];
    this.#server = createServer((socket) => {
      if (this.down) {
        socket.destroy();
        return;
      }
      const upstream = connect(Number(port || 5432), host);
      for (const s of [socket, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => undefined);
      }
      socket.pipe(upstream).pipe(socket);
      socket.on('close', () => upstream.destroy());
      upstream.on('close', () => socket.destroy());
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    assert.ok(address !== null && typeof address === 'object');
    const url = new globalThis.URL(URL);
    url.hostname = '127.0.0.1';
    url.port = String(address.port);
    return url.toString();
  }

  cut(): void {
    this.down = true;
    for (const s of this.#sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const options = { skip: unreachable !== undefined };

if (unreachable !== undefined) {
  it(
    'PostgresStore against PostgreSQL',
    { skip: `PostgreSQL unreachable: ${unreachable}` },
    () => {},
  );
} else {
  storeConformance('PostgresStore', (o) => Promise.resolve(store({ ...o, schema: freshSchema() })));
}

describe('PostgresStore (PostgreSQL only)', options, () => {
  it('applies the migrations once when 5 relays open an empty schema at once', async () => {
    const schema = freshSchema();
    const five = Array.from({ length: 5 }, () => store({ schema }));
    await Promise.all(five.map((s) => s.open()));
    assert.deepEqual(
      five.flatMap((s) => s.applied),
      Array.from({ length: POSTGRES_SCHEMA_VERSION }, (_, i) => i + 1),
      'each version applied by exactly one of them',
    );
    const client = new pg.Client({ connectionString: URL });
    await client.connect();
    try {
      const { rows } = await client.query(`SELECT version FROM "${schema}".migrations`);
      assert.equal(rows.length, POSTGRES_SCHEMA_VERSION);
      // And a store opened later finds nothing to do.
      const late = store({ schema });
      await late.open();
      assert.deepEqual(late.applied, []);
      // A schema newer than this code: refused, naming both versions.
      await client.query(`INSERT INTO "${schema}".migrations (version) VALUES (999)`);
      const old = store({ schema });
      await assert.rejects(old.open(), (error: Error) => {
        assert.match(error.message, new RegExp(`"${schema}" is at version 999, newer`));
        assert.match(error.message, new RegExp(`knows \\(${POSTGRES_SCHEMA_VERSION}\\)`));
        return true;
      });
    } finally {
      await client.end();
    }
  });

  it('refuses a schema name that is not a plain identifier', () => {
    assert.throws(
      () => new PostgresStore({ url: URL, retention: 0, schema: 'x"; DROP' }),
      /invalid PostgreSQL schema name "x"; DROP"/,
    );
  });

  it('claims from two owners never overlap, and a key has one delivery in flight, in order', async () => {
    const schema = freshSchema();
    const [a, b] = [store({ schema, owner: 'relay-a' }), store({ schema, owner: 'relay-b' })];
    await a.open();
    await b.open();
    const messages = Array.from({ length: 300 }, (_, i) =>
      message('d', i % 3 === 0 ? undefined : `k${i % 7}`),
    );
    // Both ingest at once, in 10 requests sharing keys: the heads must still be right.
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 === 0 ? a : b).ingest({ messages: messages.slice(i * 30, i * 30 + 30) }),
      ),
    );
    const stored = outcomes.flatMap((o) => o.stored);
    const keyOf = new Map(stored.map((m, i) => [m.seq, messages[i]!.deliveries[0]!.key]));
    const held = new Map<number, string>();
    const deliveredOrder = new Map<string, number[]>();
    const done = new Set<number>();
    let rounds = 0;
    while (done.size < stored.length) {
      assert.ok(++rounds < 500, `stuck after ${done.size} of ${stored.length}`);
      const [fromA, fromB] = await Promise.all([a.claim('d', 25), b.claim('d', 25)]);
      for (const [owner, claimed] of [
        ['a', fromA],
        ['b', fromB],
      ] as const) {
        for (const p of claimed) {
          assert.ok(!held.has(p.seq), `seq ${p.seq} claimed by ${owner} while held`);
          assert.ok(!done.has(p.seq), `seq ${p.seq} claimed again after delivery`);
          if (p.key !== undefined) {
            for (const [seq] of held) {
              assert.notEqual(keyOf.get(seq), p.key, `key ${p.key} twice in flight`);
            }
            // The head of its key: every lower seq of the key is delivered.
            for (const [seq, key] of keyOf) {
              if (key === p.key && seq < p.seq) assert.ok(done.has(seq), `${seq} before ${p.seq}`);
            }
          }
          held.set(p.seq, owner);
        }
      }
      // Each owner finishes about half of what it holds, in a random order.
      for (const [owner, s] of [
        ['a', a],
        ['b', b],
      ] as const) {
        const mine = [...held].filter(([, o]) => o === owner).map(([seq]) => seq);
        const finish = mine.filter(() => Math.random() < 0.5);
        if (finish.length === 0) continue;
        await s.record([delivered('d', finish)]);
        for (const seq of finish) {
          held.delete(seq);
          done.add(seq);
          const key = keyOf.get(seq);
          if (key !== undefined) deliveredOrder.set(key, [...(deliveredOrder.get(key) ?? []), seq]);
        }
      }
    }
    for (const [key, seqs] of deliveredOrder) {
      assert.deepEqual(
        seqs,
        [...seqs].sort((x, y) => x - y),
        `key ${key} delivered in seq order`,
      );
    }
    assert.deepEqual(await a.counts('d'), { pending: 0, delivered: 300, dead: 0 });
  });

  it('claims only due deliveries, blocks a key behind its retrying head, renews, takes over expired leases', async () => {
    const schema = freshSchema();
    let t = 1_000_000;
    const now = () => t;
    const a = store({ schema, owner: 'a', leaseTimeout: 1_000, now });
    const b = store({ schema, owner: 'b', leaseTimeout: 1_000, now });
    await a.open();
    await b.open();
    const { stored } = await a.ingest({
      messages: [message('d', 'k'), message('d', 'k'), message('d')],
    });
    const [k1, k2, free] = stored.map((m) => m.seq) as [number, number, number];
    const seqs = (list: PendingDelivery[]) => list.map((p) => p.seq);
    assert.deepEqual(seqs(await a.claim('d', 10)), [k1, free]);
    assert.deepEqual(seqs(await b.claim('d', 10)), [], 'all held or blocked');
    await a.record([
      {
        destination: 'd',
        seqs: [k1],
        at: t,
        durationMs: 5,
        error: 'e',
        outcome: 'pending',
        nextAt: t + 500,
      },
    ]);
    assert.deepEqual(seqs(await b.claim('d', 10)), [], 'k1 not due, k2 waits behind it');
    t += 500;
    assert.deepEqual(seqs(await b.claim('d', 10)), [k1], 'due now');
    t += 800;
    assert.deepEqual(await a.renew('d', [free]), [free], 'a still holds its lease');
    assert.deepEqual(await a.renew('d', [k1]), [], 'k1 is b’s');
    t += 800; // b's lease on k1 (until +1300+... ) has expired; a's renewed one has not.
    assert.deepEqual(seqs(await a.claim('d', 10)), [k1], 'taken over after expiry');
    assert.deepEqual(await b.renew('d', [k1]), [], 'b lost it');
    // b's late failure does not touch a's lease; its attempt is logged all the same.
    await b.record([
      {
        destination: 'd',
        seqs: [k1],
        at: t,
        durationMs: 1,
        error: 'late',
        outcome: 'pending',
        nextAt: t + 1e6,
      },
    ]);
    assert.deepEqual(await a.renew('d', [k1]), [k1], 'a still holds k1');
    await a.record([delivered('d', [k1], t)]);
    assert.deepEqual(seqs(await b.claim('d', 10)), [k2], 'k2 after k1 is delivered');
    const attempts = (await a.getMessage(stored[0]!.id))?.deliveries[0]?.attempts ?? [];
    assert.deepEqual(
      attempts.map((x) => x.error ?? x.status),
      ['e', 'late', 200],
    );
  });

  it('releases its leases at close, so the others need not wait for them to expire', async () => {
    const schema = freshSchema();
    const a = store({ schema, owner: 'a', leaseTimeout: 3_600_000 });
    const b = store({ schema, owner: 'b', leaseTimeout: 3_600_000 });
    await a.open();
    await b.open();
    await a.ingest({ messages: [message('d'), message('d')] });
    assert.equal((await a.claim('d', 10)).length, 2);
    assert.equal((await b.claim('d', 10)).length, 0);
    await a.close();
    assert.equal((await b.claim('d', 10)).length, 2);
  });

  it('release ends only its own leases, at once, and wakes the other relays', async () => {
    const schema = freshSchema();
    const a = store({ schema, owner: 'a', leaseTimeout: 3_600_000 });
    const b = store({ schema, owner: 'b', leaseTimeout: 3_600_000 });
    await a.open();
    await b.open();
    const heard: string[] = [];
    b.subscribe((d) => heard.push(d));
    await until('a notification', async () => {
      await a.ingest({ messages: [message('warmup')] });
      return heard.includes('warmup');
    });
    const { stored } = await a.ingest({ messages: [message('d'), message('d'), message('d')] });
    const [s1, s2, s3] = stored.map((m) => m.seq) as [number, number, number];
    assert.deepEqual(
      (await a.claim('d', 2)).map((p) => p.seq),
      [s1, s2],
    );
    assert.deepEqual(
      (await b.claim('d', 10)).map((p) => p.seq),
      [s3],
    );
    heard.length = 0;
    // b's s3 is not a's to release: it stays with b.
    await a.release('d', [s1, s3]);
    await until('the wake-up of the release', () => heard.includes('d'));
    assert.deepEqual(
      (await b.claim('d', 10)).map((p) => p.seq),
      [s1],
      'released at once (no lease timeout), s2 still held by a, s3 by b',
    );
    assert.deepEqual(await b.renew('d', [s1, s3]), [s1, s3]);
    assert.deepEqual(await a.renew('d', [s1, s2]), [s2], 'a holds nothing it released');
    await a.release('d', []);
  });

  it('overflow dead-letters only unleased or lease-expired deliveries, never another relay’s', async () => {
    const schema = freshSchema();
    let t = 1_000_000;
    const now = () => t;
    const a = store({ schema, owner: 'a', leaseTimeout: 1_000, now });
    const b = store({ schema, owner: 'b', leaseTimeout: 1_000, now });
    await a.open();
    await b.open();
    const { stored } = await a.ingest({
      messages: [message('d'), message('d'), message('d'), message('d', 'k'), message('d', 'k')],
    });
    const [s1, s2, s3, k1, k2] = stored.map((m) => m.seq) as [
      number,
      number,
      number,
      number,
      number,
    ];
    assert.deepEqual(
      (await b.claim('d', 2)).map((p) => p.seq),
      [s1, s2],
    );
    // a's own claim is held too: its attempt may have ended with the record still on its way.
    assert.deepEqual(
      (await a.claim('d', 1)).map((p) => p.seq),
      [s3],
    );
    assert.deepEqual(
      await a.overflow('d', 10, new Set(), 'overflow: test'),
      [k1, k2],
      'only the unleased ones, the oldest first',
    );
    t += 1_001; // every lease expired (their relays died)
    assert.deepEqual(await a.overflow('d', 2, new Set([s2]), 'overflow: test'), [s1, s3]);
    assert.deepEqual(await a.counts('d'), { pending: 1, delivered: 0, dead: 4 });
    const detail = await a.getMessage(stored[0]!.id);
    assert.equal(detail?.deliveries[0]?.attempts[0]?.error, 'overflow: test');
  });

  it('wakes subscribers of every store when any one ingests, resends or replays', async () => {
    const schema = freshSchema();
    const a = store({ schema });
    const b = store({ schema });
    await a.open();
    const heard: string[] = [];
    const unsubscribe = b.subscribe((d) => heard.push(d)); // before open: listens from open on
    await b.open();
    // LISTEN is set up in the background: ingest until the first wake-up arrives.
    await until('a notification', async () => {
      await a.ingest({ messages: [message('hooks')] });
      return heard.includes('hooks');
    });
    heard.length = 0;
    const { stored } = await a.ingest({ messages: [message('other'), message('other')] });
    await until('the second', () => heard.includes('other'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    // (Late wake-ups for 'hooks' from the loop above may still arrive.)
    assert.deepEqual(
      heard.filter((d) => d === 'other'),
      ['other'],
      'one wake-up for a request, per destination',
    );
    heard.length = 0;
    await a.resend(stored[0]!.id, 'third');
    await until('the resend', () => heard.includes('third'));
    unsubscribe();
    heard.length = 0;
    await a.ingest({ messages: [message('hooks')] });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(heard, [], 'nothing after unsubscribe');
  });

  it('rejects ingest with a clear error while PostgreSQL is unreachable, and recovers', async () => {
    const proxy = new CuttableProxy();
    const url = await proxy.listen();
    const errors: string[] = [];
    const s = store({
      schema: freshSchema(),
      url,
      connectTimeout: 2_000,
      onError: (_, context) => errors.push(context),
    });
    try {
      await s.open();
      const heard: string[] = [];
      s.subscribe((d) => heard.push(d));
      await s.claim('d', 1); // the LISTEN reconnect announces destinations claimed for
      await until('LISTEN', async () => {
        await s.ingest({ messages: [message('d')] });
        return heard.includes('d');
      });
      assert.equal(s.healthy(), true);
      const before = (await s.counts('d')).pending;
      proxy.cut();
      const m = message('d');
      await assert.rejects(s.ingest({ messages: [m] }), (error: Error) => {
        assert.equal(error.name, 'PostgresStoreError');
        assert.match(error.message, /^PostgreSQL store: ingest failed: PostgreSQL is unreachable/);
        assert.ok(error.cause !== undefined, 'the driver error as cause');
        return true;
      });
      assert.equal(s.healthy(), false);
      await assert.rejects(s.claim('d', 10), /claim failed: PostgreSQL is unreachable/);
      heard.length = 0;
      proxy.down = false;
      await until('healthy again', () => s.healthy());
      const again = await s.ingest({ messages: [m] });
      assert.equal(again.stored.length, 1, 'the retried request is stored once');
      assert.equal((await s.counts('d')).pending, before + 1, 'nothing else was stored');
      await until('the LISTEN connection back', () => heard.includes('d'));
      assert.ok(errors.includes('LISTEN connection lost; reconnecting'), errors.join());
    } finally {
      await s.close();
      await proxy.close();
    }
  });
});
