import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { Breaker } from '../retry/Breaker.js';
import { RetryingSink } from '../RetryingSink.js';
import { isWebhookVerificationError, type WebhookVerificationReason } from './errors.js';
import { HttpSink } from './HttpSink.js';
import { signWebhook, signWebhookAll, verifyWebhook } from './signing.js';
import { reply, startServer, type Received, type TestServer } from './test-utils.js';

const secret = `whsec_${randomBytes(24).toString('base64')}`;

async function reason(promise: Promise<unknown>): Promise<WebhookVerificationReason> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isWebhookVerificationError(error), String(error));
    return error.reason;
  }
  assert.fail('expected verification to fail');
}

function signed(r: Received): Record<string, string> {
  return {
    'webhook-id': String(r.headers['webhook-id']),
    'webhook-timestamp': String(r.headers['webhook-timestamp']),
    'webhook-signature': String(r.headers['webhook-signature']),
  };
}

describe('Standard Webhooks signing', () => {
  let server: TestServer;
  // What the receiver concluded for each request: verifyWebhook's and the official library's.
  const verdicts: { ours: string; official: string }[] = [];
  before(async () => {
    server = await startServer(async (received, res) => {
      let ours = 'ok';
      let official = 'ok';
      try {
        await verifyWebhook(secret, received.headers, received.body);
      } catch (error) {
        ours = isWebhookVerificationError(error) ? error.reason : String(error);
      }
      try {
        new Webhook(secret).verify(received.body, signed(received), { jsonParse: false });
      } catch (error) {
        official = String(error);
      }
      verdicts.push({ ours, official });
      reply(res, ours === 'ok' ? 204 : 401);
    });
  });
  after(() => server.close());

  it('the receiver verifies every request HttpSink signs, with verifyWebhook and standardwebhooks', async () => {
    verdicts.length = 0;
    const sink = new HttpSink<unknown>(`${server.origin}/hook`, { signing: { secret } });
    const events = [
      { type: 'push', repository: 'library/alpine', tag: '3.20' },
      { text: 'ünïcødé ✓ 🎉', nested: { list: [1, 2, 3] } },
      'a string',
      42,
    ];
    for (const event of events) await sink.write(event);
    assert.equal(verdicts.length, events.length);
    for (const verdict of verdicts) assert.deepEqual(verdict, { ours: 'ok', official: 'ok' });
    const ids = server.received.slice(-events.length).map((r) => r.headers['webhook-id']);
    assert.equal(new Set(ids).size, events.length, 'distinct events get distinct ids');
    for (const r of server.received) {
      assert.match(String(r.headers['webhook-id']), /^msg_[0-9a-f]{32}$/);
      assert.match(String(r.headers['webhook-timestamp']), /^\d{10}$/);
      assert.match(String(r.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]{43}=$/);
    }
  });

  it('signs binary bodies and works without the whsec_ prefix', async () => {
    verdicts.length = 0;
    const bare = secret.slice('whsec_'.length);
    const sink = new HttpSink<Uint8Array>(`${server.origin}/bin`, {
      signing: { secret: bare },
      encode: (bytes) => ({ body: bytes, contentType: 'application/octet-stream' }),
    });
    await sink.write(new TextEncoder().encode('bytes: ✓'));
    assert.deepEqual(verdicts, [{ ours: 'ok', official: 'ok' }]);
    // Bytes that are not UTF-8: we sign and verify the exact bytes; the official library turns a
    // Buffer into a string first (lossy), so only ours is checked here.
    await sink.write(new Uint8Array([0, 1, 2, 250, 255]));
    assert.equal(verdicts[1]?.ours, 'ok');
  });

  it('verifyWebhook accepts what standardwebhooks signs', async () => {
    const wh = new Webhook(secret);
    const payload = JSON.stringify({ hello: 'world', n: 1 });
    const now = new Date();
    const headers = {
      'webhook-id': 'msg_official_1',
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': wh.sign('msg_official_1', now, payload),
    };
    assert.deepEqual(await verifyWebhook(secret, headers, payload), {
      id: 'msg_official_1',
      timestamp: Math.floor(now.getTime() / 1000),
    });
    // Bytes, a fetch Headers object, mixed-case names: all the same request.
    const fetchHeaders = new Headers({
      'Webhook-Id': headers['webhook-id'],
      'Webhook-Timestamp': headers['webhook-timestamp'],
      'Webhook-Signature': headers['webhook-signature'],
    });
    await verifyWebhook(secret, fetchHeaders, new TextEncoder().encode(payload));
    await verifyWebhook(
      secret,
      { 'WEBHOOK-ID': headers['webhook-id'], ...headers },
      Buffer.from(payload),
    );
    // And signWebhook agrees with the official library byte for byte.
    assert.equal(
      await signWebhook(secret, 'msg_official_1', Math.floor(now.getTime() / 1000), payload),
      headers['webhook-signature'],
    );
  });

  it('rejects a tampered body, a stale or future timestamp, a wrong secret, missing headers', async () => {
    const wh = new Webhook(secret);
    const payload = '{"amount":100}';
    const at = (seconds: number) => {
      const date = new Date((Math.floor(Date.now() / 1000) + seconds) * 1000);
      return {
        'webhook-id': 'msg_x',
        'webhook-timestamp': String(Math.floor(date.getTime() / 1000)),
        'webhook-signature': wh.sign('msg_x', date, payload),
      };
    };
    const fresh = at(0);
    assert.equal(
      await reason(verifyWebhook(secret, fresh, '{"amount":1000}')),
      'invalid-signature',
    );
    assert.equal(
      await reason(verifyWebhook(secret, { ...fresh, 'webhook-id': 'msg_y' }, payload)),
      'invalid-signature',
    );
    assert.equal(
      await reason(verifyWebhook(`whsec_${randomBytes(24).toString('base64')}`, fresh, payload)),
      'invalid-signature',
    );
    // Stale: signed 10 minutes ago, correctly, but outside the 5-minute default tolerance.
    assert.equal(await reason(verifyWebhook(secret, at(-600), payload)), 'stale-timestamp');
    assert.equal(await reason(verifyWebhook(secret, at(600), payload)), 'future-timestamp');
    // A tighter tolerance, and a looser one accepting the same request.
    assert.equal(
      await reason(verifyWebhook(secret, at(-60), payload, { tolerance: 30_000 })),
      'stale-timestamp',
    );
    await verifyWebhook(secret, at(-600), payload, { tolerance: 900_000 });
    assert.equal(
      await reason(verifyWebhook(secret, { ...fresh, 'webhook-timestamp': 'yesterday' }, payload)),
      'invalid-timestamp',
    );
    const unsigned: Record<string, string> = { ...fresh };
    delete unsigned['webhook-signature'];
    assert.equal(await reason(verifyWebhook(secret, unsigned, payload)), 'missing-header');
    assert.equal(
      await reason(
        verifyWebhook(secret, { ...fresh, 'webhook-signature': 'v2,abc v1,not-base64!' }, payload),
      ),
      'invalid-signature',
    );
    // Secret rotation: any one matching v1 signature among several is enough.
    await verifyWebhook(
      secret,
      { ...fresh, 'webhook-signature': `v1,AAAA ${fresh['webhook-signature']}` },
      payload,
    );
    // The official library agrees about the tampered body.
    assert.throws(() => wh.verify('{"amount":1000}', fresh));
    // A signature whose last character differs only in bits base64 leaves unused ("...A=" and
    // "...B=" decode to the same bytes) is another text: refused, by the official library too.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const signature = fresh['webhook-signature'];
    const last = alphabet.indexOf(signature.at(-2) ?? '');
    assert.equal(last % 4, 0);
    const padded = {
      ...fresh,
      'webhook-signature': `${signature.slice(0, -2)}${alphabet[last + 1]}=`,
    };
    assert.deepEqual(
      Buffer.from(padded['webhook-signature'].slice(3), 'base64'),
      Buffer.from(signature.slice(3), 'base64'),
    );
    assert.equal(await reason(verifyWebhook(secret, padded, payload)), 'invalid-signature');
    assert.throws(() => wh.verify(payload, padded), /No matching signature/);
  });

  it('the receiver rejects a tampered body and a stale timestamp sent over HTTP', async () => {
    verdicts.length = 0;
    const body = '{"event":"tamper-test"}';
    const timestamp = Math.floor(Date.now() / 1000);
    const good = {
      'content-type': 'application/json',
      'webhook-id': 'msg_t',
      'webhook-timestamp': String(timestamp),
      'webhook-signature': await signWebhook(secret, 'msg_t', timestamp, body),
    };
    const post = (headers: Record<string, string>, payload: string) =>
      fetch(`${server.origin}/hook`, { method: 'POST', headers, body: payload });
    assert.equal((await post(good, body)).status, 204);
    assert.equal((await post(good, body.replace('tamper', 'TAMPER'))).status, 401);
    const old = timestamp - 3600;
    const stale = {
      ...good,
      'webhook-timestamp': String(old),
      'webhook-signature': await signWebhook(secret, 'msg_t', old, body),
    };
    assert.equal((await post(stale, body)).status, 401);
    assert.deepEqual(
      verdicts.map((v) => v.ours),
      ['ok', 'invalid-signature', 'stale-timestamp'],
    );
    assert.equal(verdicts[1]?.official.includes('No matching signature'), true);
    assert.equal(verdicts[2]?.official.includes('too old'), true);
  });

  it('webhook-id is stable across retries of one event', async () => {
    let answer = 0;
    const flaky = await startServer(async (received, res) => {
      await verifyWebhook(secret, received.headers, received.body);
      reply(res, ++answer % 3 === 0 ? 200 : 503);
    });
    try {
      const sink = new RetryingSink(
        new HttpSink<unknown>(`${flaky.origin}/hook`, { signing: { secret } }),
        new Breaker(10, 0),
      );
      await sink.write({ n: 1 }); // 503, 503, 200
      await sink.write('same-primitive'); // 503, 503, 200
      await sink.write('same-primitive'); // a new event with an equal value: 503, 503, 200
      const ids = flaky.received.map((r) => String(r.headers['webhook-id']));
      assert.equal(ids.length, 9);
      assert.equal(new Set(ids.slice(0, 3)).size, 1);
      assert.equal(new Set(ids.slice(3, 6)).size, 1);
      assert.equal(new Set(ids.slice(6, 9)).size, 1);
      assert.equal(new Set([ids[0], ids[3], ids[6]]).size, 3);
      await sink.close();
    } finally {
      await flaky.close();
    }
  });

  it('a custom id function, and an object written again after delivery gets a new id', async () => {
    const sink = new HttpSink<{ id: number }>(`${server.origin}/hook`, {
      signing: { secret, id: (e) => `evt_${e.id}` },
    });
    await sink.write({ id: 7 });
    assert.equal(server.received.at(-1)?.headers['webhook-id'], 'evt_7');
    const plain = new HttpSink<{ id: number }>(`${server.origin}/hook`, { signing: { secret } });
    const event = { id: 8 };
    await plain.write(event);
    await plain.write(event);
    const [a, b] = server.received.slice(-2).map((r) => r.headers['webhook-id']);
    assert.notEqual(a, b);
  });

  it('bad secrets are refused without being shown', async () => {
    await assert.rejects(
      verifyWebhook('whsec_%%%secret%%%', {}, ''),
      (e: unknown) => e instanceof TypeError && !String(e).includes('secret%%%'),
    );
    await assert.rejects(verifyWebhook(secret, {}, '', { tolerance: -1 }), /`tolerance`/);
  });

  it('signWebhookAll signs with every secret; a receiver with any one of them verifies', async () => {
    const second = `whsec_${randomBytes(32).toString('base64')}`;
    const stranger = `whsec_${randomBytes(32).toString('base64')}`;
    const body = '{"rotation":true}';
    const timestamp = Math.floor(Date.now() / 1000);
    const header = await signWebhookAll([secret, second], 'msg_r', timestamp, body);
    // One signWebhook signature per secret, in order, space-separated.
    assert.equal(
      header,
      `${await signWebhook(secret, 'msg_r', timestamp, body)} ${await signWebhook(second, 'msg_r', timestamp, body)}`,
    );
    const headers = {
      'webhook-id': 'msg_r',
      'webhook-timestamp': String(timestamp),
      'webhook-signature': header,
    };
    for (const key of [secret, second]) {
      assert.deepEqual(await verifyWebhook(key, headers, body), { id: 'msg_r', timestamp });
      new Webhook(key).verify(body, headers); // the official library, too
    }
    assert.equal(await reason(verifyWebhook(stranger, headers, body)), 'invalid-signature');
    assert.throws(() => new Webhook(stranger).verify(body, headers), /No matching signature/);
    // One secret gives exactly signWebhook's value.
    assert.equal(
      await signWebhookAll([second], 'msg_r', timestamp, new TextEncoder().encode(body)),
      await signWebhook(second, 'msg_r', timestamp, body),
    );
  });

  it('signWebhookAll refuses no secrets and names a bad one by index, never showing it', async () => {
    await assert.rejects(signWebhookAll([], 'msg', 1, ''), /non-empty array.*an empty array/);
    await assert.rejects(
      signWebhookAll('whsec_abc' as unknown as string[], 'msg', 1, ''),
      /non-empty array.*string/,
    );
    await assert.rejects(
      signWebhookAll([secret, 'whsec_%%%hidden%%%'], 'msg', 1, ''),
      (e: unknown) =>
        e instanceof TypeError && /`secrets\[1\]`/.test(String(e)) && !String(e).includes('hidden'),
    );
  });
});
