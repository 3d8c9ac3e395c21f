// Destinations at runtime on a shared PostgreSQL store (issue 16): two relay processes on one
// schema; a destination created on relay A is listed by relay B within seconds and B's events
// reach it; a change on B (PUT a new URL) is followed by A; a delete on A stops it on B.
//
// Needs the local PostgreSQL (postgres://postgres@127.0.0.1:5432/test, or EVENTSINKS_PG_URL):
// skipped loudly without it, a failure when CI is set.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import {
  FAST_RETRY,
  Receiver,
  admin,
  closeAll,
  idsOf,
  post,
  startRelay,
  tempDir,
  waitFor,
  writeConfig,
} from './harness.js';
import { PG_URL, needPostgres, pgQuery } from './pg.js';

const URL = PG_URL;
const schema = `h3_specs_${randomBytes(4).toString('hex')}`;

after(async () => {
  await closeAll();
  await pgQuery(URL, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
});

async function call(url: string, path: string, method: string, body?: unknown) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // a 204
  }
  return { status: response.status, json };
}

const names = async (url: string): Promise<string[]> =>
  ((await admin(url, '/admin/destinations')).json as { items: { name: string }[] }).items.map(
    (i) => i.name,
  );

describe('destinations over the API on a shared PostgreSQL store', () => {
  it('create on relay A → relay B lists and delivers it; PUT on B → A follows; DELETE on A', async (t) => {
    if (!(await needPostgres(t, 'destinations on PostgreSQL', URL))) return;
    const filed = await new Receiver().start();
    const first = await new Receiver().start();
    const second = await new Receiver().start();
    const yaml = `
server: { listen: 127.0.0.1:0 }
store: { type: postgres, url: "${URL}", schema: ${schema}, leaseTimeout: 2s }
destinations:
  - name: filed
    type: webhook
    url: ${filed.url}${FAST_RETRY}
`;
    const a = await startRelay(writeConfig(tempDir(), yaml), { cwd: tempDir() });
    const b = await startRelay(writeConfig(tempDir(), yaml), { cwd: tempDir() });

    const created = await call(a.url, '/admin/destinations', 'POST', {
      name: 'shared',
      type: 'webhook',
      url: first.url,
      retry: { maxAttempts: 1000, backoff: { base: '20ms', factor: '20ms', max: '300ms' } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    await waitFor(async () => (await names(b.url)).includes('shared'), 10_000, 'B lists it');
    const onB = await call(b.url, '/admin/destinations/shared', 'GET');
    assert.equal((onB.json as { origin: string }).origin, 'api');
    assert.equal((onB.json as { version: number }).version, 1);

    const ids = [
      ...idsOf(await post(b.url, JSON.stringify([{ n: 1 }, { n: 2 }]))),
      ...idsOf(await post(a.url, JSON.stringify([{ n: 3 }]))),
    ];
    await waitFor(() => first.received.length >= 3, 15_000, 'the events of both relays');
    assert.deepEqual(first.received.map((r) => r.id).sort(), [...ids].sort());

    const put = await call(b.url, '/admin/destinations/shared', 'PUT', {
      type: 'webhook',
      url: second.url,
      retry: { maxAttempts: 1000, backoff: { base: '20ms', factor: '20ms', max: '300ms' } },
    });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    await waitFor(
      async () =>
        ((await call(a.url, '/admin/destinations/shared', 'GET')).json as { version: number })
          .version === 2,
      10_000,
      'A follows the change',
    );
    const later = idsOf(await post(a.url, JSON.stringify([{ n: 4 }, { n: 5 }])));
    await waitFor(() => second.received.length >= 2, 15_000, 'delivery to the new URL');
    assert.deepEqual(second.received.map((r) => r.id).sort(), [...later].sort());
    assert.equal(first.received.length, 3, 'nothing more to the old URL');

    // The receiver has them before the relay has recorded them: pending until then.
    await waitFor(
      async () =>
        (
          (await call(a.url, '/admin/messages?destination=shared&status=pending', 'GET')).json as {
            items: unknown[];
          }
        ).items.length === 0,
      15_000,
      'the deliveries recorded',
    );
    const deleted = await call(a.url, '/admin/destinations/shared', 'DELETE');
    assert.equal(deleted.status, 204, JSON.stringify(deleted.json));
    await waitFor(async () => !(await names(b.url)).includes('shared'), 10_000, 'B drops it');
    assert.deepEqual(await names(a.url), ['filed']);
  });
});

describe('resend on a shared PostgreSQL store', () => {
  it('gives a resent dead letter the whole retry budget again, from whichever relay claims it', async (t) => {
    if (!(await needPostgres(t, 'resend on PostgreSQL', URL))) return;
    const budget = `h3_resend_${randomBytes(4).toString('hex')}`;
    const receiver = await new Receiver().start();
    receiver.status = 500;
    const yaml = `
server: { listen: 127.0.0.1:0 }
store: { type: postgres, url: "${URL}", schema: ${budget}, leaseTimeout: 2s }
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}
    retry:
      maxAttempts: 2
      backoff: { base: 20ms, factor: 20ms, max: 100ms }
`;
    try {
      const relay = await startRelay(writeConfig(tempDir(), yaml), { cwd: tempDir() });
      const [id] = idsOf(await post(relay.url, '{"n":1}'));
      const attemptsOf = async (): Promise<{ status: string; attempts: number }> => {
        const detail = (await admin(relay.url, `/admin/messages/${id}`)).json as {
          deliveries: { status: string; attempts: unknown[] }[];
        };
        const delivery = detail.deliveries[0]!;
        return { status: delivery.status, attempts: delivery.attempts.length };
      };
      await waitFor(
        async () => (await attemptsOf()).status === 'dead',
        15_000,
        'dead after its 2 attempts',
      );
      assert.deepEqual(await attemptsOf(), { status: 'dead', attempts: 2 });
      const resent = await fetch(`${relay.url}/admin/messages/${id}/resend?destination=hooks`, {
        method: 'POST',
      });
      assert.equal(resent.status, 202);
      await waitFor(
        async () => (await attemptsOf()).attempts >= 4 && (await attemptsOf()).status === 'dead',
        15_000,
        'dead again after 2 more attempts',
      );
      assert.deepEqual(await attemptsOf(), { status: 'dead', attempts: 4 });
      assert.equal(receiver.requests, 4);
      relay.child.kill('SIGTERM');
      assert.equal((await relay.exited).code, 0, relay.stderr());
    } finally {
      await receiver.close();
      await pgQuery(URL, `DROP SCHEMA IF EXISTS "${budget}" CASCADE`).catch(() => undefined);
    }
  });
});
