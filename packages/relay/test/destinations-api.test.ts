// Destinations at runtime (issue 16), the relay as a child process: create over the API →
// delivered → PUT a new URL → delivered to the new receiver → DELETE with pending (409) →
// force (dead letter reason `deleted`); a file destination cannot be changed (409) but can be
// disabled; validation answers with the file's messages; eventTypes patterns.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  FAST_RETRY,
  Receiver,
  closeAll,
  idsOf,
  post,
  relayIn,
  waitFor,
  type MessageDetailJson,
} from './harness.js';

after(closeAll);

/** A JSON request to the admin API. */
async function call(
  url: string,
  path: string,
  method: string,
  body?: unknown,
): Promise<{ status: number; json: unknown; headers: Headers }> {
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
    // Not JSON (a 204): the text.
  }
  return { status: response.status, json, headers: response.headers };
}

const fileConfig = (receiver: Receiver): string => `
server: { listen: 127.0.0.1:0 }
destinations:
  - name: filed
    type: webhook
    url: ${receiver.url}${FAST_RETRY}
`;

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

describe('destinations over the admin API', () => {
  it('create → deliver → PUT a new URL → DELETE (409 with pending, then force)', async () => {
    const filed = await new Receiver().start();
    const first = await new Receiver().start();
    const second = await new Receiver().start();
    const { relay } = await relayIn(fileConfig(filed));

    const created = await call(relay.url, '/admin/destinations', 'POST', {
      name: 'api-hook',
      type: 'webhook',
      url: first.url,
      signing: { secret: SECRET },
      retry: { maxAttempts: 1000, backoff: { base: '20ms', factor: '20ms', max: '300ms' } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    assert.equal(created.headers.get('location'), '/admin/destinations/api-hook');
    const detail = created.json as Record<string, unknown>;
    assert.equal(detail['origin'], 'api');
    assert.equal(detail['version'], 1);
    assert.deepEqual((detail['config'] as { signing: unknown }).signing, {
      secret: `whsec_…${SECRET.slice(-4)}`,
    });
    assert.ok(!JSON.stringify(created.json).includes(SECRET), 'the secret is never answered');

    const list = await call(relay.url, '/admin/destinations', 'GET');
    const items = (list.json as { items: { name: string; origin: string; eventTypes: unknown }[] })
      .items;
    assert.deepEqual(
      items.map((i) => [i.name, i.origin, i.eventTypes]),
      [
        ['filed', 'file', null],
        ['api-hook', 'api', null],
      ],
    );

    const again = await call(relay.url, '/admin/destinations', 'POST', {
      name: 'filed',
      type: 'stdout',
    });
    assert.equal(again.status, 409, JSON.stringify(again.json));

    idsOf(await post(relay.url, JSON.stringify({ n: 1 })));
    await waitFor(() => first.received.length === 1, 10_000, 'delivery to the first URL');
    assert.ok(first.log[0]!.headers['webhook-signature'], 'signed with the stored secret');

    // PUT with the redacted secret sent back: the stored one is kept.
    const put = await call(relay.url, '/admin/destinations/api-hook', 'PUT', {
      ...(detail['config'] as Record<string, unknown>),
      url: second.url,
    });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    assert.equal((put.json as { version: number }).version, 2);
    idsOf(await post(relay.url, JSON.stringify({ n: 2 })));
    await waitFor(() => second.received.length === 1, 10_000, 'delivery to the new URL');
    assert.deepEqual(second.received[0]!.body, { n: 2 });
    assert.equal(first.received.length, 1, 'nothing more to the old URL');
    assert.equal(
      second.log[0]!.headers['webhook-signature'] !== undefined,
      true,
      'still signed: the redacted secret stood for the stored one',
    );

    // A pending event: the receiver fails, so it stays pending.
    second.status = 500;
    const [pendingId] = idsOf(await post(relay.url, JSON.stringify({ n: 3 })));
    await waitFor(() => second.requests >= 2, 10_000, 'a failed attempt');
    const refused = await call(relay.url, '/admin/destinations/api-hook', 'DELETE');
    assert.equal(refused.status, 409, JSON.stringify(refused.json));
    assert.match((refused.json as { error: string }).error, /1 pending event/);

    const forced = await call(relay.url, '/admin/destinations/api-hook?force=true', 'DELETE');
    assert.equal(forced.status, 204, JSON.stringify(forced.json));
    const gone = await call(relay.url, '/admin/destinations/api-hook', 'GET');
    assert.equal(gone.status, 404);
    const message = await call(relay.url, `/admin/messages/${pendingId}`, 'GET');
    const delivery = (message.json as MessageDetailJson).deliveries.find(
      (d) => d.destination === 'api-hook',
    )!;
    assert.equal(delivery.status, 'dead');
    assert.match(delivery.attempts.at(-1)!.error!, /^deleted/);
  });

  it('a file destination: PUT, PATCH and DELETE answer 409, disable works', async () => {
    const filed = await new Receiver().start();
    const { relay } = await relayIn(fileConfig(filed));
    for (const [method, body] of [
      ['PUT', { type: 'stdout' }],
      ['PATCH', { enabled: false }],
      ['DELETE', undefined],
    ] as const) {
      const answer = await call(relay.url, '/admin/destinations/filed', method, body);
      assert.equal(answer.status, 409, `${method}: ${JSON.stringify(answer.json)}`);
      assert.match(
        (answer.json as { error: string }).error,
        /declared in the config file; change it there \(or disable it over the API\)/,
      );
    }
    const disabled = await call(relay.url, '/admin/destinations/filed/disable', 'POST');
    assert.equal(disabled.status, 200);
    const detail = await call(relay.url, '/admin/destinations/filed', 'GET');
    assert.equal((detail.json as { state: string }).state, 'disabled');
    assert.equal((detail.json as { origin: string }).origin, 'file');
    assert.equal((detail.json as { version: unknown }).version, null);
  });

  it('answers 400 with the file validation messages, and PATCH merges', async () => {
    const filed = await new Receiver().start();
    const { relay } = await relayIn(fileConfig(filed));
    const bad = await call(relay.url, '/admin/destinations', 'POST', {
      name: 'x',
      type: 'webhook',
      url: 'ftp://nowhere',
      timeout: 5,
    });
    assert.equal(bad.status, 400);
    const problems = (bad.json as { problems: { path: string; message: string }[] }).problems;
    assert.deepEqual(
      problems.map((p) => p.path),
      ['url', 'timeout'],
    );
    assert.match(problems[0]!.message, /expected an http:\/\/ or https:\/\/ URL/);
    assert.match(problems[1]!.message, /a bare number is not a duration/);
    const notJson = await fetch(`${relay.url}/admin/destinations`, { method: 'POST', body: '{' });
    assert.equal(notJson.status, 400);

    const created = await call(relay.url, '/admin/destinations', 'POST', {
      name: 'typed',
      type: 'webhook',
      url: filed.url,
      eventTypes: ['order.*'],
      headers: { 'x-a': '1' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const patched = await call(relay.url, '/admin/destinations/typed', 'PATCH', {
      headers: { 'x-a': null, 'x-b': '2' },
      timeout: '2s',
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.json));
    const config = (patched.json as { config: Record<string, unknown> }).config;
    assert.deepEqual(config['headers'], { 'x-b': '2' });
    assert.equal(config['timeout'], '2s');
    assert.deepEqual(config['eventTypes'], ['order.*']);
    const renamed = await call(relay.url, '/admin/destinations/typed', 'PUT', {
      name: 'other',
      type: 'stdout',
    });
    assert.equal(renamed.status, 400);
  });

  it('eventTypes: order.* takes order.created and order.item.added, nothing else', async () => {
    const all = await new Receiver().start();
    const orders = await new Receiver().start();
    const { relay } = await relayIn(fileConfig(all));
    const created = await call(relay.url, '/admin/destinations', 'POST', {
      name: 'orders',
      type: 'webhook',
      url: orders.url,
      eventTypes: ['order.*'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const events = [
      { type: 'order.created', n: 1 },
      { type: 'invoice.paid', n: 2 },
      { type: 'order.item.added', n: 3 },
      { n: 4 },
      { type: 7, n: 5 },
      { type: 'order', n: 6 },
    ];
    idsOf(await post(relay.url, JSON.stringify(events)));
    await waitFor(() => all.received.length === 6, 10_000, 'every event to the file destination');
    await waitFor(() => orders.received.length === 2, 10_000, 'the order events');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(orders.received.map((r) => (r.body as { n: number }).n).sort(), [1, 3]);
  });
});
