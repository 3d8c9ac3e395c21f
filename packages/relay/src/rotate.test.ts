import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateSecret } from './signing.js';
import { rotateSecret, type RotatableDestination, type RotateSecretContext } from './rotate.js';
import { DestinationSpecConflictError } from './store/Store.js';

const NOW = Date.parse('2026-12-02T04:00:00Z');

/** An in-memory spec table with the store's version check; `interfere` edits before a put. */
function specs(initial: Record<string, RotatableDestination>) {
  const table = new Map(Object.entries(initial));
  const puts: { name: string; config: Record<string, unknown> }[] = [];
  let interfere: ((name: string) => void) | undefined;
  const context: RotateSecretContext = {
    get: (name) => Promise.resolve(structuredClone(table.get(name))),
    put(name, config, expectedVersion) {
      interfere?.(name);
      const current = table.get(name)!;
      if (current.version !== expectedVersion) {
        return Promise.reject(
          new DestinationSpecConflictError(name, expectedVersion, current.version ?? 0),
        );
      }
      table.set(name, { ...current, config, version: expectedVersion + 1 });
      puts.push({ name, config });
      return Promise.resolve();
    },
    now: () => NOW,
  };
  return {
    context,
    table,
    puts,
    interfereWith(f: ((name: string) => void) | undefined) {
      interfere = f;
    },
  };
}

describe('rotateSecret (the rotate-secret route)', () => {
  const old = generateSecret();
  const hook = (): RotatableDestination => ({
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
    const { context, puts } = specs({ hook: hook() });
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
    assert.deepEqual(puts, []);
  });

  it('404 unknown, 409 file destination, 400 not a webhook', async () => {
    const { context, puts } = specs({
      hook: { ...hook(), origin: 'file', version: null },
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
    assert.deepEqual(puts, []);
  });

  it('a change made meanwhile is read again and kept', async () => {
    const spec = specs({ hook: hook() });
    let once = true;
    spec.interfereWith((name) => {
      if (!once) return;
      once = false;
      // Another request changes the URL between our read and our write.
      const current = spec.table.get(name)!;
      spec.table.set(name, {
        ...current,
        version: current.version! + 1,
        config: { ...current.config, url: 'http://127.0.0.1:2/' },
      });
    });
    const answer = await rotateSecret(spec.context, 'hook', {});
    assert.equal(answer.status, 200);
    const stored = spec.table.get('hook')!;
    assert.equal(stored.config['url'], 'http://127.0.0.1:2/');
    assert.equal(stored.version, 5);
    assert.equal(spec.puts.length, 1);
  });
});
