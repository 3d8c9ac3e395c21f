// Config reload (issue 16), the relay as a child process: SIGHUP under a continuous producer
// changes one destination's URL and adds another, and every event answered 202 reaches each
// destination it was meant for exactly once (counted by webhook-id); a bad file changes
// nothing (POST /admin/reload answers 400 with the problems); relay-wide settings that need a
// restart are a warning.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import {
  FAST_RETRY,
  Receiver,
  admin,
  closeAll,
  idsOf,
  logLines,
  post,
  relayIn,
  waitFor,
} from './harness.js';

after(closeAll);

const hook = (name: string, url: string): string => `
  - name: ${name}
    type: webhook
    url: ${url}
    concurrency: 4${FAST_RETRY}`;

describe('reload', () => {
  it('SIGHUP under load: a URL changed and a destination added, nothing lost or sent twice', async () => {
    const r1 = await new Receiver().start();
    const r2 = await new Receiver().start();
    const r3 = await new Receiver().start();
    // Slow receivers: attempts are in flight when the reload comes.
    for (const r of [r1, r2, r3]) r.delay = 20;
    const { relay, file } = await relayIn(`
server: { listen: 127.0.0.1:0 }
destinations:${hook('a', r1.url)}
`);
    const accepted: string[] = [];
    const afterReload: string[] = [];
    let reloaded = false;
    let producing = true;
    const producer = (async () => {
      for (let n = 0; producing; n++) {
        const started = reloaded;
        const ids = idsOf(await post(relay.url, JSON.stringify([{ n }, { n: n + 0.5 }])));
        accepted.push(...ids);
        if (started) afterReload.push(...ids);
      }
    })();
    await waitFor(() => r1.received.length >= 20, 20_000, 'deliveries before the reload');
    writeFileSync(
      file,
      `
server: { listen: 127.0.0.1:0 }
destinations:${hook('a', r2.url)}${hook('b', r3.url)}
`,
    );
    relay.child.kill('SIGHUP');
    await waitFor(
      () => logLines(relay).some((l) => l['msg'] === 'configuration reloaded'),
      20_000,
      'the reload',
    );
    reloaded = true;
    await waitFor(() => afterReload.length >= 40, 20_000, 'events after the reload');
    producing = false;
    await producer;

    const ids = (r: Receiver): string[] => r.received.map((x) => x.id!);
    await waitFor(
      () => r1.received.length + r2.received.length >= accepted.length,
      30_000,
      'every event to a',
    );
    await waitFor(
      () => afterReload.every((id) => ids(r3).includes(id)),
      30_000,
      'the events after the reload to b',
    );
    await new Promise((r) => setTimeout(r, 500));
    const toA = [...ids(r1), ...ids(r2)];
    assert.equal(new Set(toA).size, toA.length, 'nothing sent twice to a');
    assert.deepEqual([...toA].sort(), [...accepted].sort(), 'every 202 event to a, once');
    assert.ok(r2.received.length > 0, 'a delivers to its new URL');
    assert.equal(new Set(ids(r3)).size, ids(r3).length, 'nothing sent twice to b');
    const known = new Set(accepted);
    assert.ok(
      ids(r3).every((id) => known.has(id)),
      'b got only accepted events',
    );
    const line = logLines(relay).find((l) => l['msg'] === 'configuration reloaded')!;
    assert.deepEqual(line['added'], ['b']);
    assert.deepEqual(line['changed'], ['a']);
  });

  it('POST /admin/reload: a bad file changes nothing (400 with problems); a restart-only change warns', async () => {
    const r1 = await new Receiver().start();
    const { relay, file } = await relayIn(`
server: { listen: 127.0.0.1:0 }
destinations:${hook('a', r1.url)}
`);
    writeFileSync(
      file,
      `
server: { listen: 127.0.0.1:0 }
destinations:${hook('a', 'ftp://nowhere')}${hook('b', r1.url)}
`,
    );
    const bad = await admin(relay.url, '/admin/reload', 'POST');
    assert.equal(bad.status, 400, JSON.stringify(bad.json));
    const body = bad.json as { error: string; problems: { path: string; message: string }[] };
    assert.match(body.problems[0]!.path, /^destinations\[0\]\.url/);
    assert.match(body.problems[0]!.message, /expected an http:\/\/ or https:\/\/ URL/);
    assert.ok(
      logLines(relay).some((l) => l['level'] === 50 && /reload refused/.test(String(l['msg']))),
      'logged as an error',
    );
    const list = await admin(relay.url, '/admin/destinations');
    assert.deepEqual(
      (list.json as { items: { name: string }[] }).items.map((i) => i.name),
      ['a'],
      'nothing changed',
    );

    writeFileSync(
      file,
      `
server: { listen: 127.0.0.1:0 }
retention: 1h
destinations:${hook('a', r1.url)}
`,
    );
    const good = await admin(relay.url, '/admin/reload', 'POST');
    assert.equal(good.status, 200, JSON.stringify(good.json));
    assert.deepEqual(good.json, { added: [], changed: [], removed: [], unchanged: 1 });
    assert.ok(
      logLines(relay).some((l) => l['level'] === 40 && /retention.*restart/.test(String(l['msg']))),
      'a restart-only setting is a warning',
    );
  });
});
