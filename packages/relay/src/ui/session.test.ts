// The dashboard's sign-in: the signed session values (UiSessions), the cookie's attributes,
// and server.ts's use of them: the sign-in page, /ui/login, the admin API with the cookie and
// its CSRF header, /ui/logout.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { RelayMetrics } from '../metrics.js';
import { createHandler } from '../server.js';
import { LOGIN_CSP, loginPage } from './login.js';
import {
  CSRF_HEADER,
  SESSION_COOKIE,
  SESSION_LIFETIME_MS,
  UiSessions,
  isHttps,
  passesCsrfCheck,
  sessionSetCookie,
} from './session.js';

const TOKEN = 'tok_9f8e7d6c5b4a-admin';

function fakeRequest(headers: Record<string, string>, method = 'GET', encrypted = false) {
  return { method, headers, socket: { encrypted } } as unknown as IncomingMessage;
}

describe('UiSessions', () => {
  it('verifies what it issued for the same token, and nothing else', () => {
    const sessions = new UiSessions();
    const value = sessions.issue(TOKEN);
    assert.match(value, /^v1\.[0-9a-z]+\.[\w-]{22}\.[\w-]{43}$/);
    assert.ok(!value.includes(TOKEN));
    assert.equal(sessions.verify(value, TOKEN), true);
    assert.equal(sessions.verify(value, `${TOKEN}x`), false, 'another token');
    assert.notEqual(sessions.issue(TOKEN), value, 'each session has its own nonce');
    // Another relay with the same token (a second process behind the same load balancer).
    assert.equal(new UiSessions().verify(value, TOKEN), true);
  });

  it('refuses a changed expiry, nonce or signature, and values that are not sessions', () => {
    const sessions = new UiSessions();
    const [v, expires, nonce, mac] = sessions.issue(TOKEN).split('.') as [
      string,
      string,
      string,
      string,
    ];
    const later = (Number.parseInt(expires, 36) + 1).toString(36);
    const flipped = `${mac.slice(0, -2)}${mac.at(-2) === 'A' ? 'B' : 'A'}${mac.at(-1)}`;
    for (const bad of [
      `${v}.${later}.${nonce}.${mac}`,
      `${v}.${expires}.${nonce}x.${mac}`,
      `${v}.${expires}.${nonce}.${flipped}`,
      `${v}.${expires}.${nonce}.${mac.slice(0, 10)}`,
      `v2.${expires}.${nonce}.${mac}`,
      TOKEN,
      '',
      'v1...',
    ]) {
      assert.equal(sessions.verify(bad, TOKEN), false, bad);
    }
  });

  it('refuses a signature that decodes to the same bytes but is not the text it issued', () => {
    // The last of 43 base64url characters carries 4 bits of the MAC and 2 unused ones: a
    // decoder ignores those, so a comparison of decoded bytes would take this changed value.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sessions = new UiSessions();
    const value = sessions.issue(TOKEN);
    const last = alphabet.indexOf(value.at(-1) ?? '');
    assert.equal(last % 4, 0, 'a canonical last character has its unused bits clear');
    const changed = `${value.slice(0, -1)}${alphabet[last + 1] ?? ''}`;
    assert.deepEqual(
      Buffer.from(changed.split('.')[3] ?? '', 'base64url'),
      Buffer.from(value.split('.')[3] ?? '', 'base64url'),
      'the changed signature decodes to the same bytes',
    );
    assert.equal(sessions.verify(value, TOKEN), true);
    assert.equal(sessions.verify(changed, TOKEN), false);
  });

  it('expires after its lifetime, by the injected clock', () => {
    let now = Date.parse('2026-12-02T08:00:00Z');
    const sessions = new UiSessions({ now: () => now, lifetimeMs: 60_000 });
    assert.equal(sessions.lifetimeMs, 60_000);
    const value = sessions.issue(TOKEN);
    now += 59_999;
    assert.equal(sessions.verify(value, TOKEN), true);
    now += 1;
    assert.equal(sessions.verify(value, TOKEN), false);
    assert.equal(new UiSessions().lifetimeMs, SESSION_LIFETIME_MS);
  });

  it('forgets a revoked session, and only that one', () => {
    const sessions = new UiSessions();
    const a = sessions.issue(TOKEN);
    const b = sessions.issue(TOKEN);
    sessions.revoke(a, TOKEN);
    sessions.revoke('not a session', TOKEN);
    assert.equal(sessions.verify(a, TOKEN), false);
    assert.equal(sessions.verify(b, TOKEN), true);
  });

  it('refuses a lifetime that is not a positive number', () => {
    for (const lifetimeMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => new UiSessions({ lifetimeMs }), {
        name: 'RangeError',
        message: new RegExp(`lifetimeMs must be a positive number of ms, got ${lifetimeMs}`),
      });
    }
  });
});

describe('the session cookie', () => {
  it('is HttpOnly, SameSite=Strict, Path=/, and Secure on https only', () => {
    const plain = sessionSetCookie('v1.a.b.c', { secure: false, maxAgeSeconds: 600 });
    assert.equal(
      plain,
      `${SESSION_COOKIE}=v1.a.b.c; Max-Age=600; Path=/; HttpOnly; SameSite=Strict`,
    );
    assert.match(sessionSetCookie('v', { secure: true, maxAgeSeconds: 1 }), /; Secure/);
    assert.match(
      sessionSetCookie(undefined, { secure: false, maxAgeSeconds: 600 }),
      new RegExp(`^${SESSION_COOKIE}=; Max-Age=0;`),
    );
  });

  it('is Secure when the socket is TLS or a proxy says https', () => {
    assert.equal(isHttps(fakeRequest({})), false);
    assert.equal(isHttps(fakeRequest({}, 'GET', true)), true);
    assert.equal(isHttps(fakeRequest({ 'x-forwarded-proto': 'https' })), true);
    assert.equal(isHttps(fakeRequest({ 'x-forwarded-proto': 'HTTPS, http' })), true);
    assert.equal(isHttps(fakeRequest({ 'x-forwarded-proto': 'http' })), false);
  });

  it('needs the CSRF header for every method but GET and HEAD', () => {
    assert.equal(passesCsrfCheck(fakeRequest({}, 'GET')), true);
    assert.equal(passesCsrfCheck(fakeRequest({}, 'HEAD')), true);
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      assert.equal(passesCsrfCheck(fakeRequest({}, method)), false, method);
      assert.equal(passesCsrfCheck(fakeRequest({ [CSRF_HEADER]: '0' }, method)), false, method);
      assert.equal(passesCsrfCheck(fakeRequest({ [CSRF_HEADER]: '1' }, method)), true, method);
    }
  });
});

describe('the sign-in page', () => {
  it('has no script, and its one inline style is the one its CSP allows', () => {
    const html = loginPage({ error: 'bad <token>' });
    assert.ok(!/<script/i.test(html));
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    const hash = createHash('sha256').update(style).digest('base64');
    assert.ok(LOGIN_CSP.includes(`style-src 'sha256-${hash}'`), LOGIN_CSP);
    assert.match(LOGIN_CSP, /default-src 'none'/);
    assert.match(html, /role="alert" id="login-error">bad &lt;token&gt;</);
    assert.match(html, /<form method="post" action="login">/);
    assert.ok(!loginPage().includes('role="alert"'));
  });
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      { method: options.method ?? 'GET', headers: options.headers ?? {} },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A relay's request handler with `token` (or none), an admin API that records its calls. */
async function relayServer(token: string | undefined) {
  const logs: string[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        logs.push(chunk.toString());
        done();
      },
    }),
  );
  const calls: string[] = [];
  const handler = createHandler({
    source: {
      type: 'http',
      path: '/events',
      maxBodySize: 1024 * 1024,
      maxEvents: 10_000,
      ...(token === undefined ? {} : { token }),
    },
    metrics: new RelayMetrics(() => []),
    logger,
    ready: () => true,
    draining: () => false,
    accept: () => Promise.reject(new Error('no ingest in this test')),
    admin: (req, res, url, reply) => {
      calls.push(`${req.method} ${url.pathname}`);
      req.resume();
      reply(res, 200, { ok: true });
      return Promise.resolve();
    },
  });
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, server, calls, logs };
}

const form = (token: string) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ token }).toString(),
});

const errorOf = (answer: Answer): string => (JSON.parse(answer.body) as { error: string }).error;

function cookieOf(answer: Answer): string {
  const set = answer.headers['set-cookie'];
  assert.ok(Array.isArray(set) && set.length === 1, `one set-cookie, got ${String(set)}`);
  return set[0]!.split(';')[0]!;
}

describe('server.ts: signing in to the dashboard', () => {
  let relay: Awaited<ReturnType<typeof relayServer>>;
  before(async () => {
    relay = await relayServer(TOKEN);
  });
  after(() => relay.server.close());

  it('answers the page without credentials with the sign-in page (401)', async () => {
    for (const path of ['/ui/', '/ui/app.js', '/ui/login']) {
      const answer = await send(relay.base, path);
      assert.equal(answer.status, path === '/ui/login' ? 200 : 401, path);
      assert.match(String(answer.headers['content-type']), /^text\/html/);
      assert.equal(answer.headers['content-security-policy'], LOGIN_CSP);
      assert.match(answer.body, /<label for="token">Admin token<\/label>/);
    }
    // `/ui` redirects first, so that the form's relative action resolves under /ui/.
    const bare = await send(relay.base, '/ui');
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.location, '/ui/');
  });

  it('shows an error for a wrong token, and never logs what was typed', async () => {
    for (const wrong of ['nope', `${TOKEN}x`, TOKEN.slice(0, -1), '']) {
      const answer = await send(relay.base, '/ui/login', form(wrong));
      assert.equal(answer.status, 401, wrong);
      assert.match(answer.body, /role="alert" id="login-error">That is not the admin token/);
      assert.equal(answer.headers['set-cookie'], undefined);
    }
    const missing = await send(relay.base, '/ui/login', { ...form(''), body: 'other=1' });
    assert.equal(missing.status, 401);
    assert.ok(relay.logs.some((l) => l.includes('dashboard sign-in with a wrong token')));
    assert.ok(!relay.logs.some((l) => l.includes('nope')));
  });

  it('signs in with the token: a cookie the admin API takes, with the CSRF header for changes', async () => {
    const answer = await send(relay.base, '/ui/login', form(TOKEN));
    assert.equal(answer.status, 303);
    assert.equal(answer.headers.location, './');
    const setCookie = String(answer.headers['set-cookie']);
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    assert.match(setCookie, /Path=\//);
    assert.match(setCookie, /Max-Age=43200/);
    assert.doesNotMatch(setCookie, /Secure/);
    assert.ok(!setCookie.includes(TOKEN));
    assert.ok(!relay.logs.some((l) => l.includes(TOKEN)));
    const cookie = cookieOf(answer);

    relay.calls.length = 0;
    const list = await send(relay.base, '/admin/destinations', { headers: { cookie } });
    assert.equal(list.status, 200);
    const forged = await send(relay.base, '/admin/destinations/billing/disable', {
      method: 'POST',
      headers: { cookie },
    });
    assert.equal(forged.status, 403);
    assert.match(errorOf(forged), /needs the header x-eventsinks-ui: 1/);
    const fromPage = await send(relay.base, '/admin/destinations/billing/disable', {
      method: 'POST',
      headers: { cookie, [CSRF_HEADER]: '1' },
    });
    assert.equal(fromPage.status, 200);
    // The bearer header needs no CSRF header: a browser never sends it by itself.
    const bearer = await send(relay.base, '/admin/destinations/billing/enable', {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(bearer.status, 200);
    assert.deepEqual(relay.calls, [
      'GET /admin/destinations',
      'POST /admin/destinations/billing/disable',
      'POST /admin/destinations/billing/enable',
    ]);

    const page = await send(relay.base, '/ui/session', { headers: { cookie } });
    assert.deepEqual(JSON.parse(page.body), { auth: 'cookie' });
    const signedIn = await send(relay.base, '/ui/login', { headers: { cookie } });
    assert.equal(signedIn.status, 303, 'the sign-in page sends a signed-in browser on');
  });

  it('refuses a changed cookie, and one from another site', async () => {
    const cookie = cookieOf(await send(relay.base, '/ui/login', form(TOKEN)));
    // Any changed character, the last one included (its unused bits decode alike).
    const changed = `${cookie.slice(0, -1)}${cookie.endsWith('A') ? 'B' : 'A'}`;
    assert.equal(
      (await send(relay.base, '/admin/destinations', { headers: { cookie: changed } })).status,
      401,
    );
    const crossSite = await send(relay.base, '/admin/destinations/billing/disable', {
      method: 'POST',
      headers: { cookie, [CSRF_HEADER]: '1', 'sec-fetch-site': 'cross-site' },
    });
    assert.equal(crossSite.status, 403);
    const login = await send(relay.base, '/ui/login', {
      ...form(TOKEN),
      headers: { ...form(TOKEN).headers, 'sec-fetch-site': 'cross-site' },
    });
    assert.equal(login.status, 403);
  });

  it('sets Secure behind an https proxy', async () => {
    const answer = await send(relay.base, '/ui/login', {
      ...form(TOKEN),
      headers: { ...form(TOKEN).headers, 'x-forwarded-proto': 'https' },
    });
    assert.equal(answer.status, 303);
    assert.match(String(answer.headers['set-cookie']), /; Secure/);
  });

  it('signs out: the cookie is cleared and no longer accepted', async () => {
    const cookie = cookieOf(await send(relay.base, '/ui/login', form(TOKEN)));
    const out = await send(relay.base, '/ui/logout', { method: 'POST', headers: { cookie } });
    assert.equal(out.status, 303);
    assert.match(String(out.headers['set-cookie']), new RegExp(`^${SESSION_COOKIE}=; Max-Age=0;`));
    assert.equal(
      (await send(relay.base, '/admin/destinations', { headers: { cookie } })).status,
      401,
    );
    assert.equal((await send(relay.base, '/ui/', { headers: { cookie } })).status, 401);
  });
});

describe('server.ts: the dashboard without a token (loopback only)', () => {
  let relay: Awaited<ReturnType<typeof relayServer>>;
  before(async () => {
    relay = await relayServer(undefined);
  });
  after(() => relay.server.close());

  it('needs no sign-in, and refuses changes a browser says come from another site', async () => {
    assert.equal((await send(relay.base, '/ui/login')).status, 303);
    assert.deepEqual(JSON.parse((await send(relay.base, '/ui/session')).body), {
      auth: 'loopback',
    });
    const crossSite = await send(relay.base, '/admin/destinations/billing/disable', {
      method: 'POST',
      headers: { 'sec-fetch-site': 'cross-site' },
    });
    assert.equal(crossSite.status, 403);
    assert.match(errorOf(crossSite), /another site \(sec-fetch-site: cross-site\)/);
    for (const site of ['same-origin', 'none']) {
      const ok = await send(relay.base, '/admin/destinations/billing/disable', {
        method: 'POST',
        headers: { 'sec-fetch-site': site },
      });
      assert.equal(ok.status, 200, site);
    }
    // The CLI sends no sec-fetch-site and no CSRF header.
    const cli = await send(relay.base, '/admin/destinations/billing/enable', { method: 'POST' });
    assert.equal(cli.status, 200);
  });
});
