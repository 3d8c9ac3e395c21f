// The message log's admin API and CLI (issue 14), the relay as a child process: resend keeps
// the webhook-id (of a delivered and of a dead message, through the API and `eventsinks
// messages resend`), pagination of GET /admin/messages, and the token on admin requests.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  FAST_RETRY,
  Receiver,
  admin,
  closeAll,
  idsOf,
  post,
  relayIn,
  runCli,
  stop,
  waitFor,
  type MessageDetailJson,
  type MessageListJson,
} from './harness.js';

after(closeAll);

const webhook = (receiver: Receiver, extra = ''): string => `
server: { listen: 127.0.0.1:0 }
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}${FAST_RETRY}
${extra}`;

async function statusOf(url: string, id: string): Promise<string | undefined> {
  const { status, json } = await admin(url, `/admin/messages/${id}`);
  return status === 200 ? (json as MessageDetailJson).deliveries[0]?.status : undefined;
}

describe('resend', () => {
  it('a delivered message is delivered again with the same webhook-id (API and CLI)', async () => {
    const receiver = await new Receiver().start();
    const { relay, dir } = await relayIn(webhook(receiver));
    const [id] = idsOf(await post(relay.url, JSON.stringify({ seq: 0 })));
    await waitFor(() => receiver.received.length >= 1, 10_000, 'the first delivery');
    assert.equal(receiver.received[0]!.id, id, 'the webhook-id is the relay id (unsigned)');
    await waitFor(async () => (await statusOf(relay.url, id!)) === 'delivered', 5_000, 'delivered');

    const resent = await admin(relay.url, `/admin/messages/${id}/resend?destination=hooks`, 'POST');
    assert.equal(resent.status, 202, JSON.stringify(resent.json));
    await waitFor(() => receiver.received.length >= 2, 10_000, 'the resend');
    assert.equal(receiver.received[1]!.id, id);
    assert.deepEqual(receiver.received[1]!.body, { seq: 0 });

    const cli = await runCli(
      ['messages', 'resend', id!, '--destination', 'hooks', '--config', 'relay.yaml'],
      {
        cwd: dir,
      },
    );
    assert.equal(cli.code, 0, cli.stderr);
    await waitFor(() => receiver.received.length >= 3, 10_000, 'the resend by the CLI');
    assert.equal(receiver.received[2]!.id, id);
    await waitFor(async () => (await statusOf(relay.url, id!)) === 'delivered', 5_000, 'delivered');
    const detail = (await admin(relay.url, `/admin/messages/${id}`)).json as MessageDetailJson;
    assert.equal(detail.deliveries[0]!.attempts.length, 3, 'the attempts so far are kept');
    assert.equal(await stop(relay), 0);
  });

  it('a dead message is delivered with the same webhook-id once resent (API and CLI)', async () => {
    const receiver = await new Receiver().start();
    receiver.status = 400; // not retryable: dead after one attempt
    const { relay, dir } = await relayIn(webhook(receiver));
    const [a, b] = idsOf(await post(relay.url, JSON.stringify([{ seq: 0 }, { seq: 1 }])));
    await waitFor(
      async () =>
        (await statusOf(relay.url, a!)) === 'dead' && (await statusOf(relay.url, b!)) === 'dead',
      10_000,
      'both dead',
    );
    const dead = (await admin(relay.url, '/admin/messages?destination=hooks&status=dead'))
      .json as MessageListJson;
    assert.deepEqual(dead.items.map((m) => m.id).sort(), [a, b].sort());
    receiver.status = 200;

    const resent = await admin(relay.url, `/admin/messages/${a}/resend?destination=hooks`, 'POST');
    assert.equal(resent.status, 202, JSON.stringify(resent.json));
    await waitFor(() => receiver.received.length >= 1, 10_000, 'the resend');
    assert.equal(receiver.received[0]!.id, a);
    await waitFor(async () => (await statusOf(relay.url, a!)) === 'delivered', 5_000, 'delivered');

    const cli = await runCli(
      ['messages', 'resend', b!, '--destination', 'hooks', '--config', 'relay.yaml'],
      {
        cwd: dir,
      },
    );
    assert.equal(cli.code, 0, cli.stderr);
    await waitFor(() => receiver.received.length >= 2, 10_000, 'the resend by the CLI');
    assert.equal(receiver.received[1]!.id, b);
    await waitFor(async () => (await statusOf(relay.url, b!)) === 'delivered', 5_000, 'delivered');
    assert.equal(receiver.received.length, 2);
    assert.equal(await stop(relay), 0);
  });

  it('messages resend with no relay running: delivered with the same webhook-id at the next start', async () => {
    const receiver = await new Receiver().start();
    receiver.status = 400;
    const { relay, dir } = await relayIn(webhook(receiver));
    const [id] = idsOf(await post(relay.url, JSON.stringify({ seq: 0 })));
    await waitFor(async () => (await statusOf(relay.url, id!)) === 'dead', 10_000, 'dead');
    assert.equal(await stop(relay), 0);
    const cli = await runCli(
      ['messages', 'resend', id!, '--destination', 'hooks', '--config', 'relay.yaml'],
      { cwd: dir },
    );
    assert.equal(cli.code, 0, cli.stderr);
    receiver.status = 200;
    const { relay: again } = await relayIn(webhook(receiver), dir);
    await waitFor(() => receiver.received.length >= 1, 10_000, 'the resent delivery');
    assert.equal(receiver.received[0]!.id, id);
    assert.equal(await stop(again), 0);
  });

  it('resend of an unknown message or destination is 404', async () => {
    const receiver = await new Receiver().start();
    const { relay } = await relayIn(webhook(receiver));
    const [id] = idsOf(await post(relay.url, JSON.stringify({ seq: 0 })));
    assert.equal(
      (await admin(relay.url, '/admin/messages/nope/resend?destination=hooks', 'POST')).status,
      404,
    );
    assert.equal(
      (await admin(relay.url, `/admin/messages/${id}/resend?destination=nope`, 'POST')).status,
      404,
    );
    assert.equal(await stop(relay), 0);
  });
});

describe('eventsinks messages', () => {
  it('list and show, in text and --json', async () => {
    const receiver = await new Receiver().start();
    const { relay, dir } = await relayIn(webhook(receiver));
    const ids = idsOf(await post(relay.url, JSON.stringify([{ seq: 0 }, { seq: 1 }])));
    await waitFor(() => receiver.received.length >= 2, 10_000, 'two deliveries');
    await waitFor(
      async () => (await statusOf(relay.url, ids[1]!)) === 'delivered',
      5_000,
      'delivered',
    );
    const list = await runCli(['messages', 'list', '--json', '--config', 'relay.yaml'], {
      cwd: dir,
    });
    assert.equal(list.code, 0, list.stderr);
    for (const id of ids) assert.match(list.stdout, new RegExp(id));
    const text = await runCli(['messages', 'list', '--config', 'relay.yaml'], { cwd: dir });
    assert.equal(text.code, 0, text.stderr);
    for (const id of ids) assert.match(text.stdout, new RegExp(id));

    const show = await runCli(['messages', 'show', ids[0]!, '--json', '--config', 'relay.yaml'], {
      cwd: dir,
    });
    assert.equal(show.code, 0, show.stderr);
    const shown = JSON.parse(show.stdout) as MessageDetailJson;
    assert.equal(shown.id, ids[0]);
    assert.deepEqual(shown.event, { seq: 0 });
    assert.equal(shown.deliveries[0]!.status, 'delivered');
    const missing = await runCli(['messages', 'show', 'no-such-id', '--config', 'relay.yaml'], {
      cwd: dir,
    });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no-such-id/);
    assert.equal(await stop(relay), 0);
  });
});

describe('GET /admin/messages', () => {
  it('250 messages, limit 100: 3 pages, newest first, no overlap or gap, next null at the end', async () => {
    const receiver = await new Receiver().start();
    const { relay } = await relayIn(webhook(receiver));
    const ingested: string[] = [];
    for (let r = 0; r < 5; r++) {
      const body = Array.from({ length: 50 }, (_, i) => ({ seq: r * 50 + i }));
      ingested.push(...idsOf(await post(`${relay.url}`, JSON.stringify(body))));
    }
    assert.equal(new Set(ingested).size, 250);
    const pages: MessageListJson[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const { status, json } = await admin(relay.url, `/admin/messages?limit=100${query}`);
      assert.equal(status, 200, JSON.stringify(json));
      const page = json as MessageListJson;
      pages.push(page);
      cursor = page.next;
      assert.ok(pages.length <= 4, 'too many pages');
    } while (cursor !== null);
    assert.deepEqual(
      pages.map((p) => p.items.length),
      [100, 100, 50],
    );
    assert.equal(pages[2]!.next, null);
    const listed = pages.flatMap((p) => p.items.map((m) => m.id));
    assert.deepEqual(listed, [...ingested].reverse(), 'newest first, each once');
    for (const item of pages[0]!.items) {
      assert.equal(item.source, 'http');
      assert.ok(!Number.isNaN(Date.parse(item.receivedAt)));
      assert.equal(item.deliveries[0]?.destination, 'hooks');
    }

    // Filters: all delivered in the end; none pending; since in the future: nothing.
    await waitFor(() => receiver.received.length >= 250, 20_000, '250 deliveries');
    await waitFor(
      async () =>
        (
          (await admin(relay.url, '/admin/messages?status=pending&limit=10'))
            .json as MessageListJson
        ).items.length === 0,
      5_000,
      'nothing pending',
    );
    const delivered = (
      await admin(relay.url, '/admin/messages?destination=hooks&status=delivered&limit=1000')
    ).json as MessageListJson;
    assert.equal(delivered.items.length, 250);
    assert.equal(delivered.next, null);
    const future = new Date(Date.now() + 60_000).toISOString();
    const none = (await admin(relay.url, `/admin/messages?since=${encodeURIComponent(future)}`))
      .json as MessageListJson;
    assert.deepEqual(none.items, []);
    assert.equal(await stop(relay), 0);
  });

  it('a bad query is a 400 that names the value', async () => {
    const receiver = await new Receiver().start();
    const { relay } = await relayIn(webhook(receiver));
    const bad = await admin(relay.url, '/admin/messages?status=lost');
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.json), /lost/);
    assert.equal(await stop(relay), 0);
  });
});

describe('admin authorization', () => {
  it('with a token on the http source, admin requests need it', async () => {
    const receiver = await new Receiver().start();
    const { relay } = await relayIn(`
server: { listen: 127.0.0.1:0 }
sources: [{ type: http, token: s3cret }]
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}
`);
    assert.equal((await admin(relay.url, '/admin/destinations')).status, 401);
    const ok = await admin(relay.url, '/admin/destinations', 'GET', {
      authorization: 'Bearer s3cret',
    });
    assert.equal(ok.status, 200);
    assert.equal((await admin(relay.url, '/admin/messages')).status, 401);
    assert.equal(await stop(relay), 0);
  });
});

describe('admin token (admin.token)', () => {
  const ADMIN_TOKEN = 'adm1n-T0ken-for-h5-tests';
  const INGEST_TOKEN = 'ingest-T0ken-for-h5-tests';

  it('is required on /admin/* and /ui over the http source token, the CLI sends it, and it is never logged', async () => {
    const receiver = await new Receiver().start();
    const { relay, dir } = await relayIn(`
server: { listen: 127.0.0.1:0 }
log: { level: trace }
admin: { token: ${ADMIN_TOKEN} }
sources: [{ type: http, token: ${INGEST_TOKEN} }]
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}
`);
    const bearer = (token: string): Record<string, string> => ({
      authorization: `Bearer ${token}`,
    });
    const none = await fetch(`${relay.url}/admin/destinations`);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.deepEqual(await none.json(), { error: 'admin requests need the bearer token' });
    for (const wrong of ['wrong', `${ADMIN_TOKEN}x`, ADMIN_TOKEN.slice(0, -1), INGEST_TOKEN]) {
      const answer = await admin(relay.url, '/admin/destinations', 'GET', bearer(wrong));
      assert.equal(answer.status, 401, `token ${wrong}`);
    }
    const ok = await admin(relay.url, '/admin/destinations', 'GET', bearer(ADMIN_TOKEN));
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal(
      (await admin(relay.url, '/admin/messages', 'GET', bearer(INGEST_TOKEN))).status,
      401,
    );
    assert.equal((await fetch(`${relay.url}/ui/`)).status, 401);
    assert.equal((await fetch(`${relay.url}/ui/`, { headers: bearer(ADMIN_TOKEN) })).status, 200);

    // Ingest keeps the http source's own token; the admin token is not one for it.
    assert.equal((await post(relay.url, '{"a":1}', bearer(ADMIN_TOKEN))).status, 401);
    const [id] = idsOf(await post(relay.url, '{"a":1}', bearer(INGEST_TOKEN)));
    await waitFor(() => receiver.received.length >= 1, 10_000, 'the delivery');

    // The CLI's admin commands talk to the running relay with admin.token.
    const list = await runCli(['messages', 'list', '--json', '--config', 'relay.yaml'], {
      cwd: dir,
    });
    assert.equal(list.code, 0, list.stderr);
    const page = JSON.parse(list.stdout) as MessageListJson;
    assert.deepEqual(
      page.items.map((m) => m.id),
      [id],
    );
    const dlq = await runCli(['dlq', 'list', 'hooks', '--json', '--config', 'relay.yaml'], {
      cwd: dir,
    });
    assert.equal(dlq.code, 0, dlq.stderr);

    assert.equal(await stop(relay), 0);
    const output = relay.stderr() + relay.stdout() + list.stderr + dlq.stderr + dlq.stdout;
    assert.ok(output.includes('listening on'), 'the log was captured');
    assert.ok(!output.includes(ADMIN_TOKEN), 'the admin token is in the output');
    assert.ok(!output.includes(INGEST_TOKEN), 'the ingest token is in the output');
  });

  it('a CLI admin command without the token is refused with a message that says where it is', async () => {
    const receiver = await new Receiver().start();
    const { relay, dir } = await relayIn(`
server: { listen: 127.0.0.1:0 }
admin: { token: ${ADMIN_TOKEN} }
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}
`);
    // The same dataDir (so the same relay.json), without admin.token.
    writeFileSync(
      join(dir, 'other.yaml'),
      `server: { listen: 127.0.0.1:0 }\ndestinations: [{ name: hooks, type: webhook, url: ${receiver.url} }]\n`,
    );
    const list = await runCli(['messages', 'list', '--config', 'other.yaml'], { cwd: dir });
    assert.notEqual(list.code, 0);
    assert.match(list.stderr, /refused the admin request \(401\).*admin\.token/);
    assert.equal(await stop(relay), 0);
  });
});
