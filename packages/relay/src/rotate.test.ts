import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateSecret } from './signing.js';
import { rotateSecret, type RotateSecretContext } from './rotate.js';

const NOW = Date.parse('2026-12-02T04:00:00Z');

interface Spec {
  origin: 'file' | 'api';
  version: number;
  config: Record<string, unknown>;
}

/** An in-memory registry of specs: `update` runs the edit on the stored form and bumps the version. */
function specs(initial: Record<string, Spec>) {
  const table = new Map(Object.entries(initial));
  const updates: string[] = [];
  const context: RotateSecretContext = {
    origin: (name) => table.get(name)?.origin,
    update(name, edit) {
      const current = table.get(name)!;
      // As the registry's: what edit throws is the update's rejection.
      return Promise.resolve().then(() => {
        const config = edit(structuredClone(current.config));
        table.set(name, { ...current, config, version: current.version + 1 });
        updates.push(name);
      });
    },
    now: () => NOW,
  };
  return { context, table, updates };
}

describe('rotateSecret (the rotate-secret route)', () => {
  const old = generateSecret();
  const hook = (): Spec => ({
    origin: 'api',
    version: 3,
    config: { name: 'hook', type: 'webhook', url: 'http://127.0.0.1:1/', signing: { secret: old } },
  });

  it('stores the rotated signing and answers the new secret once, with the old one’s expiry', async () => {
    const { context, table } = specs({ hook: hook() });
    const answer = await rotateSecret(context, 'hook', undefined);
    assert.equal(answer.status, 200);
    const { secret, previous } = answer.body as {
      secret: string;
      previous: { expiresAt: string }[];
    };
    assert.deepEqual(previous, [{ expiresAt: new Date(NOW + 24 * 3_600_000).toISOString() }]);
    const stored = table.get('hook')!;
    assert.equal(stored.version, 4);
    assert.deepEqual(stored.config, {
      ...hook().config,
      signing: { secrets: [{ secret }, { secret: old, expiresAt: previous[0]!.expiresAt }] },
    });
  });

  it('takes the given secret and grace', async () => {
    const { context, table } = specs({ hook: hook() });
    const mine = generateSecret();
    const answer = await rotateSecret(context, 'hook', { secret: mine, grace: '90m' });
    assert.deepEqual(answer, {
      status: 200,
      body: { secret: mine, previous: [{ expiresAt: new Date(NOW + 90 * 60_000).toISOString() }] },
    });
    assert.equal(
      (table.get('hook')!.config['signing'] as { secrets: unknown[] }).secrets.length,
      2,
    );
  });

  it('a bad body is a 400 naming each field, never showing the secret', async () => {
    const { context, updates } = specs({ hook: hook() });
    const answer = await rotateSecret(context, 'hook', {
      secret: 'whsec_%%hidden%%',
      grace: 30,
      extra: true,
    });
    assert.equal(answer.status, 400);
    const body = answer.body as { error: string; problems: { path: string; message: string }[] };
    assert.deepEqual(body.problems.map((p) => p.path).sort(), ['extra', 'grace', 'secret']);
    assert.match(body.error, /grace: a bare number is not a duration/);
    assert.ok(!JSON.stringify(body).includes('hidden'));
    assert.equal((await rotateSecret(context, 'hook', 'text')).status, 400);
    assert.equal((await rotateSecret(context, 'hook', { grace: 'soon' })).status, 400);
    assert.deepEqual(updates, []);
  });

  it('404 unknown, 409 file destination, 400 not a webhook', async () => {
    const { context, updates } = specs({
      hook: { ...hook(), origin: 'file' },
      out: { origin: 'api', version: 1, config: { name: 'out', type: 'stdout' } },
    });
    const unknown = await rotateSecret(context, 'nope', {});
    assert.equal(unknown.status, 404);
    const file = await rotateSecret(context, 'hook', {});
    assert.equal(file.status, 409);
    assert.match((file.body as { error: string }).error, /config file.*signing\.secrets/);
    const stdout = await rotateSecret(context, 'out', {});
    assert.equal(stdout.status, 400);
    assert.match((stdout.body as { error: string }).error, /stdout destination/);
    assert.deepEqual(updates, []);
  });

  it('an error of the update (the destination removed meanwhile) is not swallowed', async () => {
    const { context } = specs({ hook: hook() });
    const gone = new Error('gone');
    const answer = rotateSecret({ ...context, update: () => Promise.reject(gone) }, 'hook', {});
    await assert.rejects(answer, (e: unknown) => e === gone);
  });
});
