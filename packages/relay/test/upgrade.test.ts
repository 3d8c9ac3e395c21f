// Upgrade from the previous release (issue 14): the data directory of v0.1 (one queue file and
// one dead-letter file per destination) copied to a temp dir; the relay with the new store
// starts on it, delivers every event that was queued, and shows the old dead letters in
// `eventsinks dlq list`.
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { QueueFile } from 'eventsinks/sqlite';
import type { DeadRecord, Envelope } from '../src/envelope.js';
import { Receiver, closeAll, relayIn, runCli, stop, tempDir, waitFor } from './harness.js';

after(closeAll);

const FIXTURE = new URL('fixtures/v0.1-data/', import.meta.url).pathname;

/** Every entry of an old queue or dead-letter file (read from a scratch copy: opening writes). */
function entries<E>(file: string): E[] {
  const scratch = join(tempDir('eventsinks-upgrade-scratch-'), 'copy.db');
  cpSync(file, scratch);
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(file + suffix)) cpSync(file + suffix, scratch + suffix);
  }
  const queue = new QueueFile<E>({ path: scratch });
  try {
    const out: E[] = [];
    let after = 0;
    for (;;) {
      const page = queue.list({ after, limit: 500 });
      if (page.length === 0) return out;
      out.push(...page.map((e) => e.event));
      after = page[page.length - 1]!.id;
    }
  } finally {
    queue.close();
  }
}

describe('upgrade from v0.1', () => {
  it('starts on the old data directory, delivers every queued event, lists the old dead letters', async (t) => {
    if (!existsSync(FIXTURE)) {
      t.skip(`no fixture at ${FIXTURE}`);
      return;
    }
    const files = readdirSync(FIXTURE);
    const names = files
      .filter((f) => f.endsWith('.queue.db'))
      .map((f) => f.slice(0, -'.queue.db'.length));
    assert.ok(names.length > 0, `no queue files in ${FIXTURE}: ${files.join(', ')}`);
    const queued = new Map<string, Envelope[]>();
    const dead = new Map<string, DeadRecord[]>();
    for (const name of names) {
      queued.set(name, entries<Envelope>(join(FIXTURE, `${name}.queue.db`)));
      const deadFile = join(FIXTURE, `${name}.dead.db`);
      dead.set(name, existsSync(deadFile) ? entries<DeadRecord>(deadFile) : []);
    }
    const total = [...queued.values()].reduce((n, list) => n + list.length, 0);
    assert.ok(total > 0, 'the fixture has queued events');

    const dir = tempDir();
    cpSync(FIXTURE, join(dir, 'data'), { recursive: true });
    const receivers = new Map<string, Receiver>();
    for (const name of names) receivers.set(name, await new Receiver().start());
    const { relay } = await relayIn(
      `
server: { listen: 127.0.0.1:0 }
dataDir: ./data
destinations:
${names
  .map(
    (name) => `  - name: ${name}
    type: webhook
    url: ${receivers.get(name)!.url}
    retry: { maxAttempts: 1000, backoff: { base: 20ms, factor: 20ms, max: 300ms } }${
      // As configured when the fixture was made: its sealed batches are sent as batches.
      name === 'batched' ? '\n    batch: { maxSize: 3, maxDelay: 10ms }' : ''
    }`,
  )
  .join('\n')}
`,
      dir,
    );
    for (const name of names) {
      const receiver = receivers.get(name)!;
      const expected = queued.get(name)!.map((e) => e.id);
      // An event's id: its webhook-id, or in a batch the `webhook-id` field of its element.
      const delivered = (): Map<string, unknown> =>
        new Map(
          receiver.received.map((r) => {
            const { 'webhook-id': inBatch, ...event } = r.body as Record<string, unknown>;
            return [typeof inBatch === 'string' ? inBatch : (r.id ?? ''), event];
          }),
        );
      await waitFor(
        () => expected.every((id) => delivered().has(id)),
        30_000,
        `the ${expected.length} queued events of ${name}`,
      );
      // Each delivered with its old id and its event as it was.
      const got = delivered();
      for (const envelope of queued.get(name)!)
        assert.deepEqual(got.get(envelope.id), envelope.event);
      const listed = await runCli(['dlq', 'list', name, '--json', '--config', 'relay.yaml'], {
        cwd: dir,
      });
      assert.equal(listed.code, 0, listed.stderr);
      const lines = listed.stdout.trim().split('\n').filter(Boolean);
      assert.equal(lines.length, dead.get(name)!.length, listed.stdout);
      for (const record of dead.get(name)!) {
        assert.ok(
          listed.stdout.includes(record.envelope.id),
          `dead letter ${record.envelope.id} listed`,
        );
      }
    }
    assert.ok(
      [...dead.values()].some((list) => list.length > 0),
      'the fixture has dead letters to list',
    );
    assert.equal(await stop(relay), 0);
  });
});
