// The destination registry on a real SQLite store with recording targets: create / replace /
// patch / remove and their errors, the store's specs followed (another relay's changes),
// reload reconciliation, and replacements under a steady ingest that neither lose nor repeat
// an event. Plus the pure pieces (merge patch, redaction).
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { validate } from './config.js';
import type { AttemptOutcome, Target } from './delivery/Target.js';
import { Destination, type DestinationContext } from './destinations.js';
import type { Envelope } from './envelope.js';
import { RelayMetrics } from './metrics.js';
import {
  DestinationExistsError,
  DestinationHasPendingError,
  DestinationInvalidError,
  DestinationNotFoundError,
  DestinationRegistry,
  FileDestinationError,
  ReloadInvalidError,
  mergePatch,
  redact,
  unredact,
} from './registry.js';
import type { DestinationConfig } from './schema.js';
import { SqliteStore } from './store/SqliteStore.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** A target that records what it was sent, tagged with the destination's version. */
class Recorder implements Target {
  readonly sent: { id: string; tag: string }[];
  closed = false;
  constructor(
    readonly tag: string,
    sent: { id: string; tag: string }[],
    readonly delay = 0,
  ) {
    this.sent = sent;
  }
  async send(envelopes: readonly Envelope[]): Promise<AttemptOutcome> {
    if (this.delay > 0) await new Promise((r) => setTimeout(r, Math.random() * this.delay));
    for (const e of envelopes) this.sent.push({ id: e.id, tag: this.tag });
    return { ok: true, retryable: false };
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

const stores: SqliteStore[] = [];
after(async () => {
  for (const store of stores) await store.close().catch(() => undefined);
});

interface Setup {
  store: SqliteStore;
  registry: DestinationRegistry;
  sent: { id: string; tag: string }[];
  targets: Recorder[];
  logs: Record<string, unknown>[];
}

async function setup(files: DestinationConfig[] = [], delay = 0): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'h3-registry-'));
  const store = new SqliteStore({
    path: join(dir, 'relay.db'),
    durability: 'process',
    retention: 60_000,
  });
  await store.open();
  stores.push(store);
  const logs: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n'))
          if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );
  const config = validate({ destinations: [{ type: 'stdout', name: 'unused' }] }, {});
  const list: Destination[] = [];
  const metrics = new RelayMetrics(() => []);
  const context: DestinationContext = { config, metrics, logger, stdout: process.stdout, store };
  const sent: { id: string; tag: string }[] = [];
  const targets: Recorder[] = [];
  let n = 0;
  const registry = new DestinationRegistry({
    context,
    list,
    resync: 60_000,
    make: (c, ctx) => {
      const target = new Recorder(`${c.name}#${n++}`, sent, delay);
      targets.push(target);
      return new Destination(c, ctx, target);
    },
  });
  for (const file of files) registry.addFile(file, { ...file });
  await registry.startAll();
  await registry.follow();
  return { store, registry, sent, targets, logs };
}

function fileDestination(name: string, extra: Record<string, unknown> = {}): DestinationConfig {
  return validate({ destinations: [{ type: 'stdout', name, ...extra }] }, {}).destinations[0]!;
}

let counter = 0;
/** Stores one event for `names` and hands it to their running destinations, as Relay.accept does. */
async function ingest(registry: DestinationRegistry, store: SqliteStore, names: string[]) {
  await registry.admit();
  try {
    const id = `e-${++counter}`;
    const receivedAt = Date.now();
    const running = names.filter((n) => registry.get(n) !== undefined);
    const outcome = await store.ingest({
      messages: [
        {
          id,
          receivedAt,
          source: 'test',
          event: { id },
          deliveries: running.map((destination) => ({ destination })),
        },
      ],
    });
    const seq = outcome.stored[0]!.seq;
    for (const name of running) {
      registry.get(name)!.offer([
        {
          seq,
          id,
          receivedAt,
          source: 'test',
          event: { id },
          key: undefined,
          attempts: 0,
          nextAt: 0,
          batchId: undefined,
        },
      ]);
    }
    return id;
  } finally {
    registry.leave();
  }
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('merge patch and redaction', () => {
  it('applies RFC 7386 merge patches', () => {
    assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 }, f: [1] }), {
      a: 1,
      b: { d: 3, e: 4 },
      f: [1],
    });
    assert.deepEqual(mergePatch({ a: [1, 2] }, { a: [3] }), { a: [3] });
    assert.equal(mergePatch({ a: 1 }, 'x'), 'x');
  });

  it('redacts whsec secrets and restores them when sent back', () => {
    const stored = { signing: { secret: SECRET }, headers: { a: 'b' } };
    const shown = redact(stored) as { signing: { secret: string } };
    assert.equal(shown.signing.secret, `whsec_…${SECRET.slice(-4)}`);
    assert.ok(!JSON.stringify(shown).includes(SECRET));
    assert.deepEqual(unredact(shown, stored), stored);
    const withHeaders = {
      headers: {
        authorization: 'Bearer abcdefghijklmnop1234',
        'x-api-key': 'short',
        accept: 'json',
      },
    };
    const hidden = redact(withHeaders) as { headers: Record<string, string> };
    assert.deepEqual(hidden.headers, { authorization: '…1234', 'x-api-key': '…', accept: 'json' });
    assert.deepEqual(unredact(hidden, withHeaders), withHeaders);
    assert.deepEqual(
      unredact({ headers: { authorization: 'Bearer new-token-value' } }, withHeaders),
      { headers: { authorization: 'Bearer new-token-value' } },
      'a new value is taken as sent',
    );
    // An unknown redacted value stays as sent (and fails validation).
    assert.deepEqual(unredact({ s: 'whsec_…zzzz' }, stored), { s: 'whsec_…zzzz' });
  });

  it('keeps two secrets that end alike apart: each goes back to its own place', () => {
    // A rotation's old and new secret with the same last 4 characters: one redaction for both.
    const other = `whsec_X${SECRET.slice('whsec_X'.length)}`;
    assert.notEqual(other, SECRET);
    const stored = {
      signing: {
        secrets: [{ secret: SECRET }, { secret: other, expiresAt: '2026-12-31T00:00:00Z' }],
      },
    };
    const shown = redact(stored);
    assert.equal(JSON.stringify(shown).split(`whsec_…${SECRET.slice(-4)}`).length, 3);
    assert.deepEqual(unredact(shown, stored), stored);
    // Somewhere neither was, the redaction could be either: left as sent, it fails validation.
    assert.deepEqual(unredact({ s: `whsec_…${SECRET.slice(-4)}` }, stored), {
      s: `whsec_…${SECRET.slice(-4)}`,
    });
  });
});

describe('DestinationRegistry', () => {
  it('creates, replaces, patches and removes API destinations, keeping the list live', async () => {
    const { registry, store, targets } = await setup([fileDestination('filed')]);
    const list = registry.list;
    const created = await registry.create({ name: 'api', type: 'stdout' });
    assert.equal(created.origin, 'api');
    assert.equal(created.version, 1);
    assert.equal(registry.list, list, 'the same array, changed in place');
    assert.deepEqual(
      list.map((d) => d.name),
      ['filed', 'api'],
    );
    assert.deepEqual(
      (await store.listDestinationSpecs()).map((s) => [s.name, s.version]),
      [['api', 1]],
    );
    await assert.rejects(registry.create({ name: 'api', type: 'stdout' }), DestinationExistsError);
    await assert.rejects(
      registry.create({ name: 'filed', type: 'stdout' }),
      DestinationExistsError,
    );
    await assert.rejects(registry.create({ name: 'x', type: 'nope' }), DestinationInvalidError);

    const before = registry.get('api')!;
    const replaced = await registry.replace('api', { type: 'stdout', concurrency: 2 });
    assert.equal(replaced.version, 2);
    assert.notEqual(registry.get('api'), before, 'a new Destination object');
    assert.equal(list[1], registry.get('api'));
    assert.equal(targets.find((t) => t.tag === 'api#1')?.closed, true, 'the old target closed');
    assert.equal(registry.get('api')!.config.concurrency, 2);

    const patched = await registry.patch('api', { eventTypes: ['a.*'] });
    assert.equal(patched.version, 3);
    assert.deepEqual(patched.config, {
      name: 'api',
      type: 'stdout',
      concurrency: 2,
      eventTypes: ['a.*'],
    });
    assert.deepEqual(patched.eventTypes, ['a.*']);

    const modified = await registry.update('api', (input) => ({ ...input, concurrency: 3 }));
    assert.equal(modified.version, 4);
    assert.equal(registry.get('api')!.config.concurrency, 3);
    assert.equal(registry.input('api')['concurrency'], 3);
    await assert.rejects(
      registry.update('filed', (input) => input),
      FileDestinationError,
    );

    await assert.rejects(registry.replace('filed', { type: 'stdout' }), FileDestinationError);
    await assert.rejects(registry.patch('filed', {}), FileDestinationError);
    await assert.rejects(registry.remove('filed', true), FileDestinationError);
    await assert.rejects(registry.replace('none', { type: 'stdout' }), DestinationNotFoundError);
    await assert.rejects(
      registry.replace('api', { name: 'other', type: 'stdout' }),
      DestinationInvalidError,
    );

    await registry.remove('api', false);
    assert.deepEqual(
      list.map((d) => d.name),
      ['filed'],
    );
    assert.deepEqual(await store.listDestinationSpecs(), []);
    registry.close();
  });

  it('refuses to delete with pending events unless forced, then dead-letters them as deleted', async () => {
    const { registry, store } = await setup();
    await registry.create({ name: 'api', type: 'stdout', enabled: false });
    const id = await ingest(registry, store, ['api']);
    await assert.rejects(registry.remove('api', false), (error: unknown) => {
      assert.ok(error instanceof DestinationHasPendingError);
      assert.equal(error.pending, 1);
      assert.match(error.message, /1 pending event\b/);
      return true;
    });
    assert.ok(registry.get('api'), 'still there');
    assert.deepEqual(await registry.remove('api', true), { deadLettered: 1 });
    const message = await store.getMessage(id);
    const delivery = message!.deliveries.find((d) => d.destination === 'api')!;
    assert.equal(delivery.status, 'dead');
    assert.match(delivery.attempts.at(-1)!.error!, /^deleted/);
    registry.close();
  });

  it("follows the store's specs: another relay's create, change and delete", async () => {
    const { registry, store, logs } = await setup();
    await store.putDestinationSpec('other', { name: 'other', type: 'stdout' }, 0);
    await registry.sync();
    assert.equal(registry.origin('other'), 'api');
    await store.putDestinationSpec('other', { name: 'other', type: 'stdout', concurrency: 3 }, 1);
    await registry.sync();
    assert.equal(registry.get('other')!.config.concurrency, 3);
    assert.equal(registry.detail('other').version, 2);
    // An invalid spec is logged once and not run.
    await store.putDestinationSpec('bad', { name: 'bad', type: 'webhook', url: 'ftp://x' }, 0);
    await registry.sync();
    await registry.sync();
    assert.equal(registry.get('bad'), undefined);
    assert.equal(logs.filter((l) => l['destination'] === 'bad' && l['level'] === 50).length, 1);
    await store.deleteDestinationSpec('other');
    await registry.sync();
    assert.equal(registry.get('other'), undefined);
    registry.close();
  });

  it('reload: adds, changes, removes file destinations; an API name clash changes nothing', async () => {
    const { registry, store, logs } = await setup([
      fileDestination('keep'),
      fileDestination('change'),
      fileDestination('drop', { enabled: false }),
    ]);
    await ingest(registry, store, ['drop']);
    const outcome = await registry.reload([
      { config: fileDestination('keep'), input: { name: 'keep', type: 'stdout' } },
      {
        config: fileDestination('change', { concurrency: 4 }),
        input: { name: 'change', type: 'stdout', concurrency: 4 },
      },
      { config: fileDestination('new'), input: { name: 'new', type: 'stdout' } },
    ]);
    assert.deepEqual(outcome, {
      added: ['new'],
      changed: ['change'],
      removed: ['drop'],
      unchanged: 1,
    });
    assert.deepEqual(
      registry.list.map((d) => d.name),
      ['keep', 'change', 'new'],
    );
    assert.equal(registry.get('change')!.config.concurrency, 4);
    assert.ok(
      logs.some((l) => l['destination'] === 'drop' && l['pending'] === 1 && l['level'] === 40),
    );
    assert.equal((await store.counts('drop')).pending, 1, 'its pending deliveries stay');

    await registry.create({ name: 'api', type: 'stdout' });
    await assert.rejects(
      registry.reload([{ config: fileDestination('api'), input: { name: 'api', type: 'stdout' } }]),
      ReloadInvalidError,
    );
    assert.deepEqual(
      registry.list.map((d) => d.name),
      ['keep', 'change', 'new', 'api'],
      'nothing changed',
    );
    registry.close();
  });

  it('replacing destinations under a steady ingest delivers every event once', async () => {
    const { registry, store, sent } = await setup([fileDestination('a', { concurrency: 4 })], 5);
    await registry.create({ name: 'b', type: 'stdout', concurrency: 4 });
    const ids: string[] = [];
    let producing = true;
    const producer = (async () => {
      while (producing) {
        ids.push(await ingest(registry, store, ['a', 'b']));
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 30));
      await registry.replace('b', { type: 'stdout', concurrency: 1 + (i % 3) });
      await registry.reload([
        { config: fileDestination('a', { concurrency: 2 + (i % 2) }), input: {} },
      ]);
    }
    producing = false;
    await producer;
    assert.ok(ids.length > 20, `a steady ingest (${ids.length} events)`);
    const count = (name: string): number => sent.filter((s) => s.tag.startsWith(`${name}#`)).length;
    await until(() => count('a') >= ids.length && count('b') >= ids.length, 'every delivery');
    await new Promise((r) => setTimeout(r, 200));
    for (const name of ['a', 'b']) {
      const got = sent.filter((s) => s.tag.startsWith(`${name}#`)).map((s) => s.id);
      assert.equal(got.length, ids.length, `${name}: nothing twice`);
      assert.deepEqual([...new Set(got)].sort(), [...ids].sort(), `${name}: every event`);
    }
    registry.close();
  });
});
