// The admin API against its OpenAPI document (src/openapi.ts): the admin handler's routes are
// exactly the documented operations, and every documented operation of a running relay (SQLite
// store, admin token) answers a status the document lists, with a body that is exactly its
// schema (the zod schema parsed back to the same JSON: no field missing, none undocumented).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as z from 'zod';
import { adminRoutes } from '../src/admin.js';
import { ADMIN_OPERATIONS, adminOpenApi, type AdminOperation } from '../src/openapi.js';
import { OPENAPI_PATH } from '../src/server.js';
import type { ReloadAnswer, DestinationItemJson } from '../src/adminSchemas.js';
import type { RegistryStatus, ReloadOutcome } from '../src/registry.js';
import {
  Receiver,
  closeAll,
  idsOf,
  post,
  relayIn,
  stop,
  waitFor,
  type RelayProcess,
} from './harness.js';

after(closeAll);

const TOKEN = 'h5-openapi-admin-token';
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const anyParameter = (path: string): string => path.replace(/\{\w*\}/g, '{}');
const key = (method: string, path: string): string =>
  `${method.toUpperCase()} ${anyParameter(path)}`;

// Compile time: what the registry (registry.ts) answers with is assignable to the documented
// types, so tsc fails when the two drift apart.
type Fits<A, B> = [A] extends [B] ? true : false;
const registryAnswersFit: [
  Fits<RegistryStatus, DestinationItemJson>,
  Fits<ReloadOutcome, ReloadAnswer>,
] = [true, true];

describe('the admin routes and the OpenAPI document', () => {
  it('the registry answers with the documented types (checked by tsc)', () => {
    assert.deepEqual(registryAnswersFit, [true, true]);
  });

  it('the handler answers exactly the documented operations', () => {
    const handled = [...adminRoutes(), { method: 'GET', path: OPENAPI_PATH }]
      .map((r) => key(r.method, r.path))
      .sort();
    const documented = ADMIN_OPERATIONS.map((op) => key(op.method, op.path)).sort();
    assert.deepEqual(
      documented.filter((op) => !handled.includes(op)),
      [],
      'documented, not handled',
    );
    assert.deepEqual(
      handled.filter((op) => !documented.includes(op)),
      [],
      'handled, not documented',
    );
  });
});

describe('a running relay answers every documented operation as documented', () => {
  let relay: RelayProcess;
  let receiver: Receiver;
  let id: string;
  const called = new Set<AdminOperation>();

  before(async () => {
    receiver = await new Receiver().start();
    receiver.status = 400; // not retryable: the message is dead after one attempt
    ({ relay } = await relayIn(`
server: { listen: 127.0.0.1:0 }
admin: { token: ${TOKEN} }
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}
`));
    id = idsOf(await post(relay.url, JSON.stringify({ type: 'order.created', n: 1 })))[0]!;
    await waitFor(
      async () => {
        const answer = await fetch(`${relay.url}/admin/messages/${id}`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        const body = (await answer.json()) as { deliveries?: { status: string }[] };
        return body.deliveries?.[0]?.status === 'dead';
      },
      15_000,
      'the message is dead',
    );
  });

  /**
   * Calls `method path` (`template` is its documented path) and checks the answer against the
   * document: a listed status, `expected` if given, and a body its schema parses to itself.
   */
  async function call(
    method: AdminOperation['method'],
    template: string,
    path: string,
    expected: number,
    options: { body?: unknown; contentType?: string; token?: string | null } = {},
  ): Promise<unknown> {
    const op = ADMIN_OPERATIONS.find((o) => o.method === method && o.path === template);
    assert.ok(op, `${method} ${template} is documented`);
    const headers: Record<string, string> = {};
    const token = options.token === undefined ? TOKEN : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (options.body !== undefined)
      headers['content-type'] = options.contentType ?? 'application/json';
    const response = await fetch(`${relay.url}${path}`, {
      method: method.toUpperCase(),
      headers,
      ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
    });
    const text = await response.text();
    const what = `${method.toUpperCase()} ${path} answered ${response.status} ${text.slice(0, 300)}`;
    const answer = op.responses[response.status];
    assert.ok(answer, `${what}: a status the document does not list`);
    assert.equal(response.status, expected, what);
    if (answer.headers) {
      for (const name of Object.keys(answer.headers)) {
        assert.ok(response.headers.get(name), `${what}: without its ${name} header`);
      }
    }
    if (token === TOKEN) called.add(op);
    if (!answer.schema) {
      assert.equal(text, '', `${what}: a body where the document has none`);
      return undefined;
    }
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/, what);
    const json = JSON.parse(text) as unknown;
    const parsed = answer.schema.safeParse(json);
    assert.ok(
      parsed.success,
      `${what}: not its schema:\n${parsed.error && z.prettifyError(parsed.error)}`,
    );
    // The schemas strip unknown fields: the same JSON back means that none was undocumented.
    assert.deepEqual(parsed.data, json, `${what}: fields the document does not describe`);
    return json;
  }

  it('without the token every operation answers 401 with the error schema', async () => {
    for (const op of ADMIN_OPERATIONS) {
      const path = op.path.replace('{name}', 'hooks').replace('{id}', id);
      await call(op.method, op.path, path, 401, { token: null });
      await call(op.method, op.path, path, 401, { token: `${TOKEN}-wrong` });
    }
  });

  it('the document, enable and disable, the message log and the dead letters', async () => {
    const doc = await call('get', '/admin/openapi.json', '/admin/openapi.json', 200);
    assert.deepEqual(doc, adminOpenApi(), 'the served document is the generated one');
    await call(
      'post',
      '/admin/destinations/{name}/disable',
      '/admin/destinations/hooks/disable',
      200,
    );
    await call(
      'post',
      '/admin/destinations/{name}/enable',
      '/admin/destinations/hooks/enable',
      200,
    );
    await call('post', '/admin/destinations/{name}/enable', '/admin/destinations/nope/enable', 404);

    await call('get', '/admin/messages', '/admin/messages?destination=hooks&status=dead', 200);
    await call('get', '/admin/messages', '/admin/messages?limit=0', 400);
    await call('get', '/admin/messages', '/admin/messages?destination=nope', 404);
    await call('get', '/admin/messages/{id}', `/admin/messages/${id}`, 200);
    await call('get', '/admin/messages/{id}', '/admin/messages/nope', 404);
    const dead = (await call('get', '/admin/dlq/{name}', '/admin/dlq/hooks', 200)) as unknown[];
    assert.equal(dead.length, 1);
    await call('get', '/admin/dlq/{name}', '/admin/dlq/nope', 404);
    await call('get', '/admin/dlq/{name}', '/admin/dlq/hooks?limit=x', 400);
    await call('post', '/admin/dlq/{name}/replay', '/admin/dlq/hooks/replay?since=x', 400);
    await call('post', '/admin/dlq/{name}/replay', '/admin/dlq/hooks/replay', 200);
    await call(
      'post',
      '/admin/messages/{id}/resend',
      `/admin/messages/${id}/resend?destination=hooks`,
      202,
    );
    await call('post', '/admin/messages/{id}/resend', `/admin/messages/${id}/resend`, 400);
  });

  it('the destinations list and one destination', async () => {
    const list = (await call('get', '/admin/destinations', '/admin/destinations', 200)) as {
      items: { name: string; origin: string }[];
    };
    assert.deepEqual(
      list.items.map((d) => [d.name, d.origin]),
      [['hooks', 'file']],
    );
    const hooks = (await call(
      'get',
      '/admin/destinations/{name}',
      '/admin/destinations/hooks',
      200,
    )) as { origin: string; version: number | null };
    assert.deepEqual([hooks.origin, hooks.version], ['file', null]);
    await call('get', '/admin/destinations/{name}', '/admin/destinations/nope', 404);
  });

  it('destinations over the API: create, replace, patch, rotate the secret, delete; reload', async () => {
    const base = { name: 'api-hook', type: 'webhook', url: receiver.url };
    await call('post', '/admin/destinations', '/admin/destinations', 201, {
      body: { ...base, signing: { secret: SECRET } },
    });
    await call('post', '/admin/destinations', '/admin/destinations', 409, { body: base });
    await call('post', '/admin/destinations', '/admin/destinations', 400, {
      body: { ...base, name: 'bad', url: 'ftp://example.com' },
    });
    const detail = (await call(
      'put',
      '/admin/destinations/{name}',
      '/admin/destinations/api-hook',
      200,
      { body: { ...base, signing: { secret: SECRET }, maxPending: 10 } },
    )) as { config: { signing?: { secret?: string } } };
    assert.notEqual(detail.config.signing?.secret, SECRET, 'the secret is redacted');
    await call('put', '/admin/destinations/{name}', '/admin/destinations/hooks', 409, {
      body: { name: 'hooks', type: 'webhook', url: receiver.url },
    });
    await call('patch', '/admin/destinations/{name}', '/admin/destinations/api-hook', 200, {
      body: { maxPending: 20 },
      contentType: 'application/merge-patch+json',
    });
    await call('patch', '/admin/destinations/{name}', '/admin/destinations/api-hook', 400, {
      body: { url: 'not a url' },
    });
    const rotated = (await call(
      'post',
      '/admin/destinations/{name}/rotate-secret',
      '/admin/destinations/api-hook/rotate-secret',
      200,
      { body: { grace: '1h' } },
    )) as { secret: string; previous: unknown[] };
    assert.match(rotated.secret, /^whsec_/);
    assert.equal(rotated.previous.length, 1);
    await call(
      'post',
      '/admin/destinations/{name}/rotate-secret',
      '/admin/destinations/hooks/rotate-secret',
      409,
    );
    await call(
      'delete',
      '/admin/destinations/{name}',
      '/admin/destinations/api-hook?force=true',
      204,
    );
    await call('delete', '/admin/destinations/{name}', '/admin/destinations/api-hook', 404);
    await call('delete', '/admin/destinations/{name}', '/admin/destinations/hooks', 409);
    await call('post', '/admin/reload', '/admin/reload', 200);
  });

  it('every documented operation was called with the token', async () => {
    const missing = ADMIN_OPERATIONS.filter((op) => !called.has(op)).map((op) =>
      key(op.method, op.path),
    );
    assert.deepEqual(missing, [], 'operations this test does not call');
    assert.equal(await stop(relay), 0);
  });
});
