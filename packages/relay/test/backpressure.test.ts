// Backpressure end to end (issue 12, item 5): a destination's maxPending bounds its backlog;
// whenFull: reject refuses the request whole (503, nothing stored anywhere), whenFull:
// dead-letter moves the oldest waiting events to the dead letter with reason overflow.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  FAST_RETRY,
  closeAll,
  post,
  Receiver,
  startRelay,
  tempDir,
  waitFor,
  writeConfig,
  type RelayProcess,
} from './harness.js';

after(closeAll);

async function metric(relay: RelayProcess, pattern: RegExp): Promise<number | undefined> {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  const line = text.split('\n').find((l) => pattern.test(l));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

async function stop(relay: RelayProcess): Promise<void> {
  relay.child.kill('SIGTERM');
  const { code } = await relay.exited;
  assert.equal(code, 0, relay.stderr());
}

describe('backpressure', () => {
  it('whenFull: reject (the default) answers 503 with Retry-After and stores nothing anywhere', async () => {
    const hook = await new Receiver().start();
    hook.status = 503;
    const dir = tempDir();
    const archive = join(dir, 'archive.ndjson');
    const relay = await startRelay(
      writeConfig(
        dir,
        `
server: { listen: 127.0.0.1:0 }
destinations:
  - name: hook
    type: webhook
    concurrency: 1
    url: ${hook.url}
    maxPending: 5${FAST_RETRY}
  - { name: archive, type: file, path: ${archive} }
`,
      ),
      { cwd: dir },
    );
    const five = JSON.stringify([1, 2, 3, 4, 5].map((seq) => ({ seq })));
    assert.equal((await post(relay.url, five)).status, 202);
    const response = await fetch(`${relay.url}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ seq: 6 }),
    });
    assert.equal(response.status, 503);
    assert.ok(Number(response.headers.get('retry-after')) > 0);
    const { error } = (await response.json()) as { error: string };
    assert.match(error, /destination "hook" is full .*maxPending 5.*nothing was accepted/);
    assert.equal(
      await metric(relay, /^eventsinks_relay_rejected_requests_total\{[^}]*reason="full"/),
      1,
    );
    assert.equal(await metric(relay, /^eventsinks_relay_queue_depth\{destination="hook"\}/), 5);
    assert.equal(await metric(relay, /^eventsinks_relay_queue_limit\{destination="hook"\}/), 5);

    // The receiver recovers: the backlog drains, requests are accepted again, and the refused
    // event is nowhere (the archive, which had room, did not take it either).
    hook.status = 200;
    await waitFor(() => hook.received.length === 5, 20_000, 'the backlog');
    assert.equal((await post(relay.url, JSON.stringify({ seq: 7 }))).status, 202);
    await waitFor(() => hook.received.length === 6, 20_000, 'the next event');
    assert.deepEqual(hook.seqs(), [1, 2, 3, 4, 5, 7]);
    await waitFor(
      () => existsSync(archive) && readFileSync(archive, 'utf8').trim().split('\n').length === 6,
      20_000,
      'the archive',
    );
    const archived = readFileSync(archive, 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { seq: number }).seq);
    assert.deepEqual(archived, [1, 2, 3, 4, 5, 7]);
    await stop(relay);
    await hook.close();
  });

  it('a stdin source waits for room instead of failing events; everything arrives in order', async () => {
    const hook = await new Receiver().start();
    hook.status = 503;
    const dir = tempDir();
    const relay = await startRelay(
      writeConfig(
        dir,
        `
server: { listen: 127.0.0.1:0 }
sources: [{ type: stdin }]
destinations:
  - name: hook
    type: webhook
    concurrency: 1
    url: ${hook.url}
    maxPending: 3${FAST_RETRY}
`,
      ),
      { cwd: dir, stdin: true },
    );
    for (let seq = 1; seq <= 8; seq++) {
      relay.child.stdin!.write(`{"seq":${seq}}\n`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await waitFor(
      async () =>
        (await metric(relay, /^eventsinks_relay_queue_depth\{destination="hook"\}/)) === 3,
      10_000,
      'a full queue',
    );
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(await metric(relay, /^eventsinks_relay_queue_depth\{destination="hook"\}/), 3);
    assert.doesNotMatch(relay.stderr(), /could not store events from stdin/);
    hook.status = 200;
    await waitFor(() => hook.received.length === 8, 20_000, 'every line');
    assert.deepEqual(hook.seqs(), [1, 2, 3, 4, 5, 6, 7, 8]);
    await stop(relay);
    await hook.close();
  });

  it('whenFull: dead-letter moves the oldest waiting events to the dead letter (reason overflow)', async () => {
    const hook = await new Receiver().start();
    hook.status = 503;
    const dir = tempDir();
    const relay = await startRelay(
      writeConfig(
        dir,
        `
server: { listen: 127.0.0.1:0 }
destinations:
  - name: hook
    type: webhook
    concurrency: 1
    url: ${hook.url}
    maxPending: 3
    whenFull: dead-letter${FAST_RETRY}
`,
      ),
      { cwd: dir },
    );
    for (let seq = 1; seq <= 5; seq++) {
      assert.equal((await post(relay.url, JSON.stringify({ seq }))).status, 202);
      // seq 1 is taken for delivery (and retried) at once; wait for it so the rest queue up.
      if (seq === 1) await waitFor(() => hook.requests > 0, 10_000, 'the first attempt');
    }
    // Pending never went above maxPending: seq 1 is being delivered, so 2 and 3 made room.
    assert.equal(await metric(relay, /^eventsinks_relay_queue_depth\{destination="hook"\}/), 3);
    assert.equal(
      await metric(relay, /^eventsinks_relay_overflow_events_total\{destination="hook"\}/),
      2,
    );
    const dead = (await (await fetch(`${relay.url}/admin/dlq/hook`)).json()) as {
      envelope: { event: { seq: number } };
      reason?: string;
      error: string;
    }[];
    assert.deepEqual(
      dead.map((d) => d.envelope.event.seq),
      [2, 3],
    );
    for (const d of dead) {
      assert.equal(d.reason, 'overflow');
      assert.match(d.error, /overflow/);
    }
    hook.status = 200;
    await waitFor(() => hook.received.length === 3, 20_000, 'the rest');
    assert.deepEqual(hook.seqs(), [1, 4, 5]);
    await stop(relay);
    await hook.close();
  });
});
