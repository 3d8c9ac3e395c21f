import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { migrateQueueFiles } from './migrate.js';
import { openSqliteStore, type SqliteStore } from './SqliteStore.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/v0.1-data', import.meta.url));
// The ids the relay gave the fixture's events, by their `n` (see the fixture's README.md).
const IDS: Record<number, string> = {
  1: '95ab6e11-136f-4585-9029-775e67c3ea36',
  2: 'e4366073-5a5e-4077-a804-75f6c3266a96',
  3: '16ace37b-d119-4c46-9c71-ebdcd9958c6c',
  4: '7a4f35db-2f35-44a8-8819-b40629351d0a',
  5: 'e2d12806-325c-4740-b065-11df4f4f779c',
  6: 'e744d4d0-7178-4e6a-a190-b4077b27b254',
  7: '04e71c2a-80f7-4f69-a9d5-b38936708df5',
  8: '4f0d2c9d-ddc6-4d7e-9bf5-e2203b1ffc1c',
};
const ALL = ['down', 'rejected', 'batched'];

const dirs: string[] = [];
const stores: SqliteStore[] = [];
after(async () => {
  for (const store of stores) await store.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function copyFixture(): string {
  const dir = mkdtempSync(join(tmpdir(), 'migrate-'));
  dirs.push(dir);
  cpSync(FIXTURE, dir, {
    recursive: true,
    filter: (source) => source.endsWith('.db') || source === FIXTURE,
  });
  return dir;
}

function logger(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n'))
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

async function storeIn(dir: string): Promise<SqliteStore> {
  const store = await openSqliteStore({
    path: join(dir, 'relay.db'),
    durability: 'process',
    retention: 0,
  });
  stores.push(store);
  return store;
}

async function everything(store: SqliteStore) {
  const { items } = await store.listMessages({ limit: 1000 });
  return Promise.all(items.reverse().map(async (m) => (await store.getMessage(m.id))!));
}

describe('migrateQueueFiles', () => {
  it('moves every queued and dead event of the v0.1 fixture into the store', async () => {
    const dir = copyFixture();
    const store = await storeIn(dir);
    const { log, lines } = logger();
    const outcome = await migrateQueueFiles(store, dir, ALL, log);
    // down 8 + batched 5 queued; rejected 6 dead.
    assert.deepEqual(outcome, { migrated: 13, dead: 6 });

    const messages = await everything(store);
    assert.deepEqual(
      messages.map((m) => m.event.n),
      [1, 2, 3, 4, 5, 6, 7, 8],
      'one message per event, in ingest order',
    );
    for (const m of messages) {
      const n = m.event.n as number;
      assert.equal(m.id, IDS[n], `the id of n=${n} is kept`);
      assert.equal(m.source, 'http');
      assert.ok(
        m.receivedAt > 1.79e12 && m.receivedAt < 1.8e12,
        `receivedAt kept: ${m.receivedAt}`,
      );
      const kind = m.event.kind as string;
      const expected: [string, string][] = [];
      if (kind === 'order') expected.push(['batched', 'pending']);
      expected.push(['down', 'pending']);
      if (kind === 'order' || kind === 'refund') expected.push(['rejected', 'dead']);
      assert.deepEqual(
        m.deliveries.map((d) => [d.destination, d.status]),
        expected,
        `deliveries of n=${n}`,
      );
      const dead = m.deliveries.find((d) => d.destination === 'rejected');
      if (dead) {
        assert.equal(dead.attempts.length, 1);
        assert.equal(dead.attempts[0]!.status, 400);
        assert.match(dead.attempts[0]!.error!, /^HttpStatusError: POST .*: 400 Bad Request/);
      }
    }
    const first = messages[0]!;
    assert.deepEqual(first.event, { kind: 'order', n: 1, amount: 10 });

    // The sealed batches of `batched` keep their ids (rows 1–2 and 3–5 of its queue file).
    const batched = await store.pending('batched', 0, 100);
    assert.deepEqual(
      batched.map((p) => [p.event.n, p.batchId]),
      [
        [1, 'batch_904820c6-67dc-4b07-aa7a-5bede03c20f5'],
        [2, 'batch_904820c6-67dc-4b07-aa7a-5bede03c20f5'],
        [5, 'batch_5a44130e-09a5-4a36-bb49-75fcc61bd60b'],
        [6, 'batch_5a44130e-09a5-4a36-bb49-75fcc61bd60b'],
        [7, 'batch_5a44130e-09a5-4a36-bb49-75fcc61bd60b'],
      ],
    );
    assert.deepEqual(await store.counts('down'), { pending: 8, delivered: 0, dead: 0 });
    assert.deepEqual(await store.counts('rejected'), { pending: 0, delivered: 0, dead: 6 });
    assert.ok(lines.some((l) => /migrated 6 queue files/.test(String(l.msg))));

    // The old files are kept under another name; a second run finds nothing to do.
    const files = readdirSync(dir).sort();
    assert.deepEqual(
      files.filter((f) => f.endsWith('.db')),
      ['relay.db'],
    );
    assert.equal(files.filter((f) => f.endsWith('.db.migrated')).length, 6);
    assert.deepEqual(await migrateQueueFiles(store, dir, ALL, log), { migrated: 0, dead: 0 });
    assert.equal((await everything(store)).length, 8);
  });

  it('adds nothing when re-run after an interruption before the files were renamed', async () => {
    const dir = copyFixture();
    const store = await storeIn(dir);
    const { log } = logger();
    await migrateQueueFiles(store, dir, ALL, log);
    const before = await everything(store);
    // As if it had stopped before renaming: the old files are back.
    cpSync(FIXTURE, dir, { recursive: true, filter: (s) => s.endsWith('.db') || s === FIXTURE });
    assert.deepEqual(await migrateQueueFiles(store, dir, ALL, log), { migrated: 0, dead: 0 });
    assert.deepEqual(await everything(store), before);
    assert.ok(!existsSync(join(dir, 'down.queue.db')), 'renamed this time');
  });

  it('leaves the files of a destination no longer configured in place, with a warning', async () => {
    const dir = copyFixture();
    const store = await storeIn(dir);
    const { log, lines } = logger();
    const outcome = await migrateQueueFiles(store, dir, ['down', 'rejected', 'new'], log);
    assert.deepEqual(outcome, { migrated: 8, dead: 6 });
    assert.ok(existsSync(join(dir, 'batched.queue.db')));
    assert.ok(existsSync(join(dir, 'batched.dead.db')));
    const warning = lines.find((l) => l.level === 40);
    assert.equal(warning?.destination, 'batched');
    assert.match(String(warning?.msg), /no longer in the configuration/);
    assert.deepEqual(await store.counts('batched'), { pending: 0, delivered: 0, dead: 0 });
  });

  it('does nothing in a data directory without old files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'migrate-empty-'));
    dirs.push(dir);
    const store = await storeIn(dir);
    assert.deepEqual(await migrateQueueFiles(store, dir, ALL, logger().log), {
      migrated: 0,
      dead: 0,
    });
  });
});
