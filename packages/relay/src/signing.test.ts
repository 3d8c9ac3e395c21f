// Secret rotation: the schema's `signing.secrets`, rotateSigning, and what a receiver using
// the official `standardwebhooks` package concludes before, during and after the grace period.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { ConfigError, validate } from './config.js';
import { createTarget } from './delivery/targets.js';
import { WebhookClient } from './delivery/WebhookClient.js';
import type { Envelope } from './envelope.js';
import type { DestinationConfig } from './schema.js';
import {
  DEFAULT_ROTATION_GRACE,
  generateSecret,
  rotateSigning,
  secretsAt,
  signingKeys,
} from './signing.js';

const HOUR = 3_600_000;

/** The problems of a configuration with this one webhook destination's `signing`. */
function signingProblems(signing: unknown): { path: string; message: string }[] {
  try {
    validate({
      destinations: [{ type: 'webhook', name: 'hook', url: 'http://127.0.0.1:1/', signing }],
    });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems.map(({ path, message }) => ({ path, message }));
  }
  return [];
}

describe('signing: the schema', () => {
  const a = generateSecret();
  const b = generateSecret();

  it('takes the single secret, a secrets list with and without expiresAt, and both', () => {
    for (const signing of [
      { secret: a },
      { secrets: [{ secret: a }] },
      { secrets: [{ secret: a }, { secret: b, expiresAt: '2026-12-03T12:00:00Z' }] },
      { secret: a, secrets: [{ secret: b, expiresAt: '2026-12-03T13:00:00.123+01:00' }] },
    ]) {
      assert.deepEqual(signingProblems(signing), [], JSON.stringify(signing));
    }
    const config = validate({
      destinations: [
        {
          type: 'webhook',
          name: 'hook',
          url: 'http://127.0.0.1:1/',
          signing: { secret: a, secrets: [{ secret: b, expiresAt: '2026-12-03T12:00:00Z' }] },
        },
      ],
    });
    const destination = config.destinations[0]!;
    assert.equal(destination.type, 'webhook');
    assert.deepEqual(
      signingKeys(destination.type === 'webhook' ? destination.signing : undefined),
      [{ secret: a }, { secret: b, expiresAt: Date.parse('2026-12-03T12:00:00Z') }],
    );
  });

  it('needs at least one secret', () => {
    for (const signing of [{}, { secrets: [] }]) {
      const problems = signingProblems(signing);
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.equal(problems[0]!.path, 'destinations[0].signing');
      assert.match(problems[0]!.message, /`secret` or a non-empty `secrets` list/);
    }
  });

  it('names a malformed secret by its path without showing it, and a bad expiresAt with its value', () => {
    const hidden = 'whsec_not%base64%hidden';
    const problems = signingProblems({
      secrets: [{ secret: a }, { secret: hidden }, { secret: b, expiresAt: 'tomorrow' }],
    });
    assert.deepEqual(problems, [
      {
        path: 'destinations[0].signing.secrets[1].secret',
        message: 'expected a Standard Webhooks secret: "whsec_" followed by base64',
      },
      {
        path: 'destinations[0].signing.secrets[2].expiresAt',
        message:
          'expected an ISO-8601 date and time with a time zone, e.g. "2026-12-03T12:00:00Z"; got "tomorrow"',
      },
    ]);
    assert.ok(!JSON.stringify(problems).includes('hidden'));
    // A time without its zone would be a different instant on each machine.
    assert.match(
      signingProblems({ secrets: [{ secret: a, expiresAt: '2026-12-03T12:00:00' }] })[0]!.message,
      /with a time zone/,
    );
    assert.match(
      signingProblems({ secrets: [{ secret: a, extra: 1 }] })[0]!.message,
      /unknown key "extra"/,
    );
  });
});

describe('signing: rotateSigning', () => {
  const now = Date.parse('2026-12-02T04:00:00Z');
  const iso = (ms: number) => new Date(ms).toISOString();

  it('puts the new secret first, without expiry; the old one expires after the grace', () => {
    const old = generateSecret();
    const { signing, secret, previous } = rotateSigning({ secret: old }, { now, grace: 2 * HOUR });
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/); // 32 bytes
    assert.equal(Buffer.from(secret.slice(6), 'base64').length, 32);
    assert.deepEqual(signing, {
      secrets: [{ secret }, { secret: old, expiresAt: iso(now + 2 * HOUR) }],
    });
    assert.deepEqual(previous, [{ expiresAt: iso(now + 2 * HOUR) }]);
    // The result is a valid signing for the schema.
    assert.deepEqual(signingProblems(signing), []);
  });

  it('keeps an earlier expiry, drops the expired, and makes a fresh secret each time', () => {
    const given = generateSecret();
    const soon = generateSecret();
    const later = generateSecret();
    const gone = generateSecret();
    const { signing, secret } = rotateSigning(
      {
        secrets: [
          { secret: soon, expiresAt: iso(now + HOUR) },
          { secret: later, expiresAt: iso(now + 48 * HOUR) },
          { secret: gone, expiresAt: iso(now) },
        ],
      },
      { now, grace: DEFAULT_ROTATION_GRACE, secret: given },
    );
    assert.equal(secret, given);
    assert.deepEqual(signing.secrets, [
      { secret: given },
      { secret: soon, expiresAt: iso(now + HOUR) },
      { secret: later, expiresAt: iso(now + 24 * HOUR) },
    ]);
    assert.notEqual(rotateSigning(undefined, { now, grace: 0 }).secret, generateSecret());
    // No grace: the old secrets stop at once.
    assert.deepEqual(rotateSigning({ secret: soon }, { now, grace: 0, secret: given }).signing, {
      secrets: [{ secret: given }],
    });
  });

  it('from no signing, and to a secret already in the list', () => {
    assert.deepEqual(rotateSigning(undefined, { now, grace: HOUR, secret: 'whsec_AAAA' }), {
      signing: { secrets: [{ secret: 'whsec_AAAA' }] },
      secret: 'whsec_AAAA',
      previous: [],
    });
    const a = generateSecret();
    const b = generateSecret();
    const { signing } = rotateSigning(
      { secret: a, secrets: [{ secret: b, expiresAt: iso(now + HOUR) }] },
      { now, grace: 4 * HOUR, secret: b },
    );
    assert.deepEqual(signing.secrets, [
      { secret: b },
      { secret: a, expiresAt: iso(now + 4 * HOUR) },
    ]);
  });

  it('refuses a bad secret without showing it, and a bad clock or grace', () => {
    assert.throws(
      () => rotateSigning(undefined, { now, grace: HOUR, secret: 'whsec_%%hidden%%' }),
      (e: unknown) =>
        e instanceof TypeError && /`secret`/.test(e.message) && !e.message.includes('hidden'),
    );
    assert.throws(
      () => rotateSigning(undefined, { now, grace: HOUR, secret: 'hidden' }),
      (e: unknown) => e instanceof TypeError && !e.message.includes('hidden'),
    );
    assert.throws(() => rotateSigning(undefined, { now, grace: -1 }), RangeError);
    assert.throws(() => rotateSigning(undefined, { now, grace: Number.NaN }), /`grace`/);
    assert.throws(() => rotateSigning(undefined, { now: Number.NaN, grace: 0 }), /`now`/);
  });

  it('secretsAt: every unexpired secret; the last to expire once all have', () => {
    const keys = [
      { secret: 'whsec_AAAA', expiresAt: now + 10 },
      { secret: 'whsec_BBBB', expiresAt: now + 20 },
      { secret: 'whsec_CCCC', expiresAt: now + 5 },
    ];
    assert.deepEqual(secretsAt(keys, now), {
      secrets: ['whsec_AAAA', 'whsec_BBBB', 'whsec_CCCC'],
      allExpired: false,
    });
    assert.deepEqual(secretsAt(keys, now + 10), { secrets: ['whsec_BBBB'], allExpired: false });
    assert.deepEqual(secretsAt(keys, now + 20), { secrets: ['whsec_BBBB'], allExpired: true });
    assert.deepEqual(secretsAt([], now), { secrets: [], allExpired: false });
  });
});

describe('signing: a standardwebhooks receiver through a rotation', () => {
  // What each receiver concluded, per request: the one holding the old secret, the new one.
  interface Verdict {
    old: boolean;
    new: boolean;
    signatures: number;
  }
  const verdicts: Verdict[] = [];
  const oldSecret = generateSecret();
  let newSecret = '';
  let origin = '';
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const headers = req.headers as Record<string, string>;
      const verifies = (secret: string): boolean => {
        if (secret === '') return false;
        try {
          new Webhook(secret).verify(body, headers);
          return true;
        } catch {
          return false;
        }
      };
      verdicts.push({
        old: verifies(oldSecret),
        new: verifies(newSecret),
        signatures: String(headers['webhook-signature']).split(' ').length,
      });
      res.writeHead(204).end();
    });
  });
  const closing: (() => Promise<void>)[] = [];
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const close of closing) await close();
    await new Promise((resolve) => server.close(resolve));
  });

  it('the new secret always verifies; the old one during the grace period only', async () => {
    let clock = Date.now();
    const warnings: string[] = [];
    const signed = (signing: Parameters<typeof signingKeys>[0]) => {
      const client = new WebhookClient(`${origin}/hook`, {
        method: 'POST',
        headers: {},
        timeout: 10_000,
        followRedirects: false,
        connections: 2,
        secrets: signingKeys(signing),
        now: () => clock,
        onWarning: (message) => warnings.push(message),
      });
      closing.push(() => client.close());
      return client;
    };
    // Before: the old secret alone.
    const before = signed({ secret: oldSecret });
    await before.send('{"n":1}', 'evt_before');
    // The rotation, 24 h of grace; the new client is what the relay builds from the new spec.
    const rotated = rotateSigning({ secret: oldSecret }, { now: clock, grace: 24 * HOUR });
    newSecret = rotated.secret;
    const during = signed(rotated.signing);
    await during.send('{"n":2}', 'evt_during_0');
    clock += 23 * HOUR;
    await during.send('{"n":3}', 'evt_during_23h');
    clock += HOUR; // exactly at expiresAt: the old secret no longer signs
    await during.send('{"n":4}', 'evt_after_24h');
    clock += 30 * 24 * HOUR;
    await during.send('{"n":5}', 'evt_after_31d');
    assert.deepEqual(verdicts, [
      { old: true, new: false, signatures: 1 },
      { old: true, new: true, signatures: 2 },
      { old: true, new: true, signatures: 2 },
      { old: false, new: true, signatures: 1 },
      { old: false, new: true, signatures: 1 },
    ]);
    assert.deepEqual(warnings, []);
  });

  it('when every secret has expired, the last to expire signs and a warning comes once', async () => {
    verdicts.length = 0;
    newSecret = generateSecret();
    let clock = Date.now();
    const warnings: string[] = [];
    const client = new WebhookClient(`${origin}/hook`, {
      method: 'POST',
      headers: {},
      timeout: 10_000,
      followRedirects: false,
      connections: 2,
      secrets: [
        { secret: oldSecret, expiresAt: clock + HOUR },
        { secret: newSecret, expiresAt: clock + 2 * HOUR },
      ],
      now: () => clock,
      onWarning: (message) => warnings.push(message),
    });
    closing.push(() => client.close());
    clock += 3 * HOUR;
    await client.send('{}', 'evt_x1');
    await client.send('{}', 'evt_x2');
    assert.deepEqual(verdicts, [
      { old: false, new: true, signatures: 1 },
      { old: false, new: true, signatures: 1 },
    ]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /every signing secret .* has expired/);
    assert.ok(!warnings[0]!.includes(newSecret.slice(6)), 'the warning never shows a secret');
  });

  it('a webhook target built from the configuration signs with secret and secrets alike', async () => {
    verdicts.length = 0;
    newSecret = generateSecret();
    const config = validate({
      destinations: [
        {
          type: 'webhook',
          name: 'hook',
          url: `${origin}/hook`,
          signing: {
            secret: newSecret,
            secrets: [
              { secret: oldSecret, expiresAt: new Date(Date.now() + HOUR).toISOString() },
              { secret: generateSecret(), expiresAt: '2020-01-01T00:00:00Z' },
            ],
          },
        },
      ],
    }).destinations[0] as DestinationConfig;
    let clock = Date.now();
    const warnings: string[] = [];
    const target = createTarget(config, {
      stdout: process.stdout,
      now: () => clock,
      warn: (message) => warnings.push(message),
    });
    closing.push(() => target.close());
    const envelope: Envelope = { id: 'evt_t1', receivedAt: clock, source: 'http', event: { n: 1 } };
    const first = await target.send([envelope], undefined);
    assert.equal(first.ok, true, JSON.stringify(first));
    clock += 2 * HOUR;
    assert.equal((await target.send([envelope], undefined)).ok, true);
    assert.deepEqual(verdicts, [
      { old: true, new: true, signatures: 2 },
      { old: false, new: true, signatures: 1 },
    ]);
    assert.deepEqual(warnings, []);
  });
});
