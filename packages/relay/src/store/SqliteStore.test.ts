import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { isQueueLockedError } from 'eventsinks/sqlite';
import { storeConformance } from './conformance.js';
import { openSqliteStore, SqliteStore, SQLITE_STORE_SCHEMA } from './SqliteStore.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sqlite-store-'));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

storeConformance('SqliteStore', (options) =>
  Promise.resolve(
    new SqliteStore({ ...options, path: join(tempDir(), 'relay.db'), durability: 'process' }),
  ),
);

describe('SqliteStore (SQLite only)', () => {
  it('refuses a second owner of the file, in this process and in another one', async () => {
    const path = join(tempDir(), 'relay.db');
    const store = await openSqliteStore({ path, durability: 'process', retention: 0 });
    try {
      const second = new SqliteStore({ path, durability: 'process', retention: 0 });
      await assert.rejects(second.open(), (error: unknown) => {
        assert.ok(isQueueLockedError(error), String(error));
        assert.equal((error as { code?: string }).code, 'ERR_QUEUE_LOCKED');
        assert.equal((error as { path?: string }).path, path);
        return true;
      });
      await assert.rejects(
        openSqliteStore({ path, durability: 'process', retention: 0 }),
        (error: unknown) => isQueueLockedError(error),
      );
      // Another process: a plain better-sqlite3 connection cannot even read it.
      const script = join(tempDir(), 'probe.cjs');
      writeFileSync(
        script,
        `const D = require(${JSON.stringify(require_('better-sqlite3'))});
         try { new D(process.argv[2], { timeout: 0 }).prepare('SELECT count(*) FROM messages').get(); console.log('opened'); }
         catch (e) { console.log(e.code); }`,
      );
      const probe = spawnSync(process.execPath, [script, path], { encoding: 'utf8' });
      assert.equal(probe.stdout.trim(), 'SQLITE_BUSY', probe.stderr);
    } finally {
      await store.close();
    }
    // Released on close.
    const again = await openSqliteStore({ path, durability: 'process', retention: 0 });
    await again.close();
  });

  it('keeps everything across a reopen', async () => {
    const path = join(tempDir(), 'relay.db');
    const store = await openSqliteStore({ path, durability: 'power', retention: 60_000 });
    const { stored } = await store.ingest({
      messages: [
        {
          id: 'one',
          receivedAt: 5,
          source: 'http',
          event: { a: 1 },
          deliveries: [{ destination: 'a', key: 'k' }, { destination: 'b' }],
        },
      ],
      idempotencyKey: 'key',
      answer: 'answer',
    });
    await store.seal('a', 'batch_x', [stored[0]!.seq]);
    await store.record([
      {
        destination: 'b',
        seqs: [stored[0]!.seq],
        at: 7,
        durationMs: 1,
        error: 'e',
        outcome: 'dead',
      },
    ]);
    await store.updateDestination('a', { state: 'disabled', reason: 'admin' });
    const before = await store.getMessage('one');
    await store.close();

    const reopened = await openSqliteStore({ path, durability: 'process', retention: 60_000 });
    try {
      assert.deepEqual(await reopened.getMessage('one'), before);
      const pending = await reopened.pending('a', 0, 10);
      assert.deepEqual(
        pending.map((p) => [p.id, p.key, p.batchId]),
        [['one', 'k', 'batch_x']],
      );
      assert.deepEqual(await reopened.counts('b'), { pending: 0, delivered: 0, dead: 1 });
      assert.deepEqual(await reopened.destination('a'), { state: 'disabled', reason: 'admin' });
      assert.equal(
        (await reopened.ingest({ messages: [], idempotencyKey: 'key' })).replayed,
        'answer',
      );
      const next = await reopened.ingest({
        messages: [{ id: 'two', receivedAt: 6, source: 'http', event: {}, deliveries: [] }],
      });
      assert.ok(next.stored[0]!.seq > stored[0]!.seq, 'seq keeps increasing across a reopen');
    } finally {
      await reopened.close();
    }
    const raw = new Database(path, { readonly: true });
    try {
      assert.equal(raw.pragma('user_version', { simple: true }), SQLITE_STORE_SCHEMA);
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      raw.close();
    }
  });

  it('sets the durability pragmas like QueueFile: WAL, exclusive, NORMAL or FULL', async () => {
    for (const [durability, synchronous] of [
      ['process', 1],
      ['power', 2],
    ] as const) {
      const store = await openSqliteStore({
        path: join(tempDir(), 'relay.db'),
        durability,
        retention: 0,
      });
      try {
        assert.deepEqual(store.pragmas(), {
          journalMode: 'wal',
          synchronous,
          lockingMode: 'exclusive',
        });
      } finally {
        await store.close();
      }
    }
  });

  it('refuses a database that is not a relay store, naming it', async () => {
    const path = join(tempDir(), 'other.db');
    const db = new Database(path);
    db.exec('CREATE TABLE mine (x)');
    db.close();
    await assert.rejects(
      openSqliteStore({ path, durability: 'process', retention: 0 }),
      /not a relay store \(it has "mine"\)/,
    );
    await assert.rejects(
      openSqliteStore({
        path: join(tempDir(), 'no', 'such.db'),
        durability: 'process',
        retention: 0,
      }),
      /directory .* does not exist/,
    );
    assert.throws(
      () => new SqliteStore({ path: '', durability: 'process', retention: 0 }),
      /`path`/,
    );
  });
});

function require_(name: string): string {
  return fileURLToPath(import.meta.resolve(name));
}
