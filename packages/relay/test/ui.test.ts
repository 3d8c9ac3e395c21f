// The operations dashboard (issue 17) in headless Chromium: an operator's walk through it,
// asserted through roles and names (what a screen reader would find): the failing destination
// marked with its last error, the receiver fixed, its dead letters resent and counted, a message
// found by id with its payload and attempts. It also saves the screenshots of docs/.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createAdminHandler, type AdminDestination, type DestinationStatus } from '../src/admin.js';
import { createUiHandler } from '../src/ui/serve.js';
import {
  ROOT,
  Receiver,
  closeAll,
  post,
  startRelay,
  tempDir,
  waitFor,
  writeConfig,
} from './harness.js';
import { MemoryStore, type MemoryMessage } from './MemoryStore.js';

/** Debian's chromium package (installed by .ci/run). */
const CHROMIUM = '/usr/bin/chromium';
const DOCS = new URL('docs/', ROOT);
const SLOW = { timeout: 15_000 };

let browser: Browser;
/** Set once the end-to-end walk-through took the screenshots: the fake's are then not needed. */
let screenshotsTaken = false;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  await closeAll();
});

/** A page that records every console error, page error and request to another origin. */
async function open(base: string, width = 1280, height = 860) {
  const context = await browser.newContext({
    viewport: { width, height },
    colorScheme: 'light',
    timezoneId: 'UTC',
    locale: 'en-US',
  });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('request', (request) => {
    if (!request.url().startsWith(base)) problems.push(`external request: ${request.url()}`);
  });
  await page.goto(`${base}/ui/`);
  return { page, problems, close: () => context.close() };
}

/** What the walk-through needs from the relay under test. */
interface Subject {
  base: string;
  /** The failing destination (its receiver answers 500) and the healthy one. */
  failing: string;
  healthy: string;
  /** Ids of the messages that are dead letters of `failing`. */
  dead: string[];
  /** Makes the failing destination's receiver answer 200 from now on. */
  fix(): Promise<void>;
  /** The event posted as `dead[0]`. */
  firstEvent: Record<string, unknown>;
}

async function shot(page: Page, name: string): Promise<void> {
  // The chart draws on the next frame after its data.
  await page.waitForTimeout(300);
  await page.screenshot({ path: new URL(name, DOCS).pathname, fullPage: true });
}

/** The walk through the three views; every step asserts what the operator would see. */
async function walkThrough(subject: Subject, options: { screenshots: boolean }): Promise<void> {
  const { page, problems, close } = await open(subject.base);
  try {
    // Overview: the failing destination is marked, with what its receiver answered.
    await page.getByRole('heading', { level: 1, name: 'Destinations' }).waitFor();
    const row = page.getByRole('row', { name: new RegExp(`^${subject.failing}\\b`) });
    await row.getByRole('cell', { name: 'failing', exact: true }).waitFor(SLOW);
    await row.getByRole('cell', { name: /500/ }).waitFor(SLOW);
    const healthyRow = page.getByRole('row', { name: new RegExp(`^${subject.healthy}\\b`) });
    await healthyRow.getByRole('cell', { name: 'healthy', exact: true }).waitFor(SLOW);
    await page
      .getByRole('img', { name: /All destinations, last 5 min, now [\d.]+ delivered\/s/ })
      .waitFor(SLOW);
    if (options.screenshots) {
      // Two samples more, so the chart has a line.
      await page.waitForTimeout(4500);
      await shot(page, 'ui-overview.png');
    }

    // A destination: its dead letters, and the attempts with the receiver's answer.
    await row.getByRole('link', { name: subject.failing }).click();
    await page
      .getByRole('heading', { level: 1, name: new RegExp(`^Destination ${subject.failing}`) })
      .waitFor();
    const deadTable = page.getByRole('table', { name: new RegExp(`^Dead letters of`) });
    for (const id of subject.dead) {
      await deadTable.getByRole('button', { name: `Resend ${id}` }).waitFor(SLOW);
    }
    const attempts = page.getByRole('table', { name: /^Attempts to/ });
    await attempts.getByRole('cell', { name: /500/ }).first().waitFor(SLOW);
    if (options.screenshots) await shot(page, 'ui-destination.png');

    // Fixed: one dead letter resent by itself, the rest all at once.
    await subject.fix();
    const [first, ...rest] = subject.dead;
    await deadTable.getByRole('button', { name: `Resend ${first}` }).click();
    await page
      .getByRole('status')
      .filter({ hasText: `Message ${first} sent again to ${subject.failing}.` })
      .waitFor(SLOW);
    await page.getByRole('button', { name: 'Resend all dead letters' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: new RegExp(`^\\d+ dead letters? of ${subject.failing} sent again\\.$`) })
      .waitFor(SLOW);
    // Every one delivered and counted: the destination's total, and no dead letter left.
    const facts = page.getByRole('definition');
    await page.getByText('No dead letters.').waitFor(SLOW);
    const delivered = page.locator('.facts div', { hasText: /^Delivered/ }).getByRole('definition');
    await assertEventually(
      async () => Number((await delivered.textContent()) ?? '') >= subject.dead.length,
      'the delivered count to include the resent messages',
    );
    assert.ok((await facts.count()) > 5);
    await page.getByRole('heading', { level: 1, name: /healthy$/ }).waitFor(SLOW);

    // Back on the overview, the deliveries show in the last minutes' count.
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Destinations' })
      .click();
    const deliveredCell = row.getByRole('cell').nth(3);
    await assertEventually(
      async () => Number(await deliveredCell.textContent()) >= rest.length + 1,
      `the overview to count ${rest.length + 1} deliveries to ${subject.failing}`,
    );
    await row.getByRole('cell', { name: 'healthy', exact: true }).waitFor(SLOW);

    // A message, found by id with the keyboard: its payload and each destination's attempts.
    const search = page.getByRole('searchbox', { name: 'Message id' });
    for (let i = 0; i < 10 && !(await search.evaluate((e) => e === document.activeElement)); i++) {
      await page.keyboard.press('Tab');
    }
    assert.ok(
      await search.evaluate((e) => e === document.activeElement),
      'search reachable by Tab',
    );
    await page.keyboard.type(first!);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: `Message ${first}` }).waitFor();
    const payload = page.getByRole('region', { name: 'Payload' });
    const text = (await payload.textContent()) ?? '';
    assert.deepEqual(
      pick(JSON.parse(text.replace(/^Payload/, '')) as Record<string, unknown>, subject.firstEvent),
      subject.firstEvent,
    );
    const messageAttempts = page.getByRole('table', { name: `Attempts to ${subject.failing}` });
    await messageAttempts.getByRole('cell', { name: /500/ }).first().waitFor();
    await messageAttempts.getByRole('cell', { name: /^200/ }).first().waitFor(SLOW);
    await page.getByRole('table', { name: `Attempts to ${subject.healthy}` }).waitFor();
    await page.getByRole('button', { name: `Resend to ${subject.healthy}` }).waitFor();
    if (options.screenshots) await shot(page, 'ui-message.png');

    // No CSP violation, script error or request elsewhere on the way.
    assert.deepEqual(problems, []);

    // An id that is not there says so (the browser logs the API's 404 itself).
    await search.fill('no-such-id');
    await search.press('Enter');
    await page.getByRole('alert').filter({ hasText: 'No message “no-such-id”' }).waitFor(SLOW);
  } finally {
    await close();
  }
}

/** The keys of `like` taken from `value` (the relay may add fields of its own). */
function pick(value: Record<string, unknown>, like: Record<string, unknown>) {
  return Object.fromEntries(Object.keys(like).map((k) => [k, value[k]]));
}

async function assertEventually(check: () => Promise<boolean>, what: string, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------------------------------------
// A fake relay: the real admin handler and UI handler over an in-memory store, with destinations
// that "deliver" at once (a receiver that fails or not) and a /metrics made of their counters.

class FakeDestination implements AdminDestination {
  readonly name: string;
  fails: boolean;
  enabled = true;
  delivered = 0;
  failed = 0;
  latencies: number[] = [];
  lastError: string | null = null;
  lastSuccessAt: number | null = null;
  readonly #store: MemoryStore;

  constructor(name: string, fails: boolean, store: MemoryStore) {
    this.name = name;
    this.fails = fails;
    this.#store = store;
  }

  #deliveries(status?: string) {
    return this.#store.messages.flatMap((m) =>
      m.deliveries.filter((d) => d.destination === this.name && (!status || d.status === status)),
    );
  }

  /** Tries the delivery of `message` until it is delivered or dead (3 attempts). */
  deliver(message: MemoryMessage, at: number): void {
    const delivery = message.deliveries.find((d) => d.destination === this.name)!;
    for (let i = 0; i < 3; i++) {
      const durationMs = 5 + ((at + i) % 40);
      if (this.fails) {
        this.failed++;
        this.lastError = 'HTTP 500 from http://127.0.0.1:4301/hook';
        delivery.attempts.push({
          at: at + i * 100,
          durationMs,
          status: 500,
          error: 'HTTP 500',
          response: '{"error":"billing database unavailable"}',
          ...(i < 2 ? { nextAt: at + (i + 1) * 100 } : {}),
        });
        continue;
      }
      this.delivered++;
      this.latencies.push((Date.now() - message.receivedAt + durationMs) / 1000);
      this.lastSuccessAt = at;
      this.lastError = null;
      delivery.attempts.push({ at, durationMs, status: 200, response: 'ok' });
      delivery.status = 'delivered';
      return;
    }
    delivery.status = 'dead';
  }

  /** Issue 16's fields: where it is declared, the event types it takes. */
  origin: 'file' | 'api' = 'file';
  eventTypes: string[] | null = null;

  status(): DestinationStatus {
    const dead = this.#deliveries('dead').length;
    const status: DestinationStatus = {
      name: this.name,
      type: 'webhook',
      state: !this.enabled ? 'disabled' : this.lastError !== null ? 'failing' : 'healthy',
      pending: this.#deliveries('pending').length,
      inFlight: 0,
      delivered: this.delivered,
      failed: this.failed,
      deadLetters: dead,
      lastError: this.lastError,
      lastSuccessAt:
        this.lastSuccessAt === null ? null : new Date(this.lastSuccessAt).toISOString(),
    };
    return Object.assign(status, { origin: this.origin, eventTypes: this.eventTypes });
  }

  async enable(): Promise<void> {
    this.enabled = true;
  }

  async disable(): Promise<void> {
    this.enabled = false;
  }

  async resend(id: string): Promise<boolean> {
    const moved = await this.#store.resend(id, this.name);
    if (!moved) return false;
    this.deliver(
      this.#store.messages.find((m) => m.id === id)!,
      Date.now(),
    );
    return true;
  }

  async replay(since: number): Promise<number> {
    const moved = await this.#store.replayDead(this.name, since, 1000);
    for (const p of moved)
      this.deliver(
        this.#store.messages.find((m) => m.id === p.id)!,
        Date.now(),
      );
    return moved.length;
  }
}

const BOUNDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

function metricsText(destinations: FakeDestination[]): string {
  const lines: string[] = [];
  for (const d of destinations) {
    const label = `destination="${d.name}"`;
    if (d.delivered) lines.push(`eventsinks_relay_delivered_events_total{${label}} ${d.delivered}`);
    if (d.failed) lines.push(`eventsinks_relay_delivery_failures_total{${label}} ${d.failed}`);
    for (const le of BOUNDS) {
      const n = d.latencies.filter((l) => l <= le).length;
      lines.push(`eventsinks_relay_delivery_latency_seconds_bucket{le="${le}",${label}} ${n}`);
    }
    lines.push(
      `eventsinks_relay_delivery_latency_seconds_bucket{le="+Inf",${label}} ${d.latencies.length}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function fakeRelay() {
  const store = new MemoryStore();
  const billing = new FakeDestination('billing', true, store);
  const audit = new FakeDestination('audit', false, store);
  const destinations = [audit, billing];
  const admin = createAdminHandler({ store, destinations, logger: pino({ level: 'silent' }) });
  const ui = createUiHandler();
  const reply = (res: ServerResponse, status: number, body: unknown, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  billing.origin = 'api';
  billing.eventTypes = ['invoice.*'];
  /** The rotate-secret calls the page made: their body and CSRF header. */
  const rotations: { name: string; body: unknown; header: string | undefined }[] = [];
  const secrets: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    void (async () => {
      // Issue 16's destination detail and rotate-secret, as the contract has them.
      const route = /^\/admin\/destinations\/([^/]+)(\/rotate-secret)?$/.exec(url.pathname);
      const destination = destinations.find((d) => d.name === decodeURIComponent(route?.[1] ?? ''));
      if (route && destination && route[2] === undefined && req.method === 'GET') {
        return reply(res, 200, {
          ...destination.status(),
          version: destination.origin === 'api' ? 3 : null,
          config: {
            name: destination.name,
            type: 'webhook',
            url: 'http://127.0.0.1:4301/hook',
            signing: { secret: 'whsec_…Zm9v' },
          },
        });
      }
      if (route && destination && route[2] !== undefined && req.method === 'POST') {
        let text = '';
        for await (const chunk of req) text += String(chunk);
        const body = text === '' ? {} : (JSON.parse(text) as { grace?: string });
        const header = req.headers['x-eventsinks-ui'];
        rotations.push({
          name: destination.name,
          body,
          header: typeof header === 'string' ? header : undefined,
        });
        if (destination.origin === 'file') {
          return reply(res, 409, {
            error: `destination "${destination.name}" is declared in the config file; rotate it in its signing.secrets and reload`,
          });
        }
        const secret = `whsec_${randomBytes(24).toString('base64')}`;
        secrets.push(secret);
        return reply(res, 200, {
          secret,
          previous: [{ expiresAt: new Date(Date.parse('2026-12-03T09:30:00Z')).toISOString() }],
        });
      }
      if (url.pathname.startsWith('/admin/')) return admin(req, res, url, reply);
      // server.ts's answer on loopback without a token.
      if (url.pathname === '/ui/session') return reply(res, 200, { auth: 'loopback' });
      if (await ui(req, res, url)) return;
      if (url.pathname === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        return res.end(metricsText(destinations));
      }
      reply(res, 404, { error: 'not found' });
    })().catch((error: unknown) => reply(res, 500, { error: String(error) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let seq = 0;
  const ingest = (event: Record<string, unknown>, only?: string[]): string => {
    const to = destinations.filter((d) => !only || only.includes(d.name));
    const id = `msg_${String(++seq).padStart(4, '0')}`;
    const message: MemoryMessage = {
      id,
      receivedAt: Date.now(),
      source: 'http',
      event,
      deliveries: to.map((d) => ({ destination: d.name, status: 'pending', attempts: [] })),
    };
    store.messages.push(message);
    for (const d of to) d.deliver(message, Date.now());
    return id;
  };
  return {
    base,
    billing,
    ingest,
    rotations,
    secrets,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('dashboard end to end (relay child process)', () => {
  it('marks the failing destination, resends its dead letters, finds a message', async () => {
    const failing = await new Receiver().start();
    failing.status = 500;
    const healthy = await new Receiver().start();
    const dir = tempDir();
    const file = writeConfig(
      dir,
      `server: { listen: 127.0.0.1:0 }
dataDir: ./data
destinations:
  - name: billing
    type: webhook
    url: ${failing.url}
    ignore: { type: audit.log }
    retry:
      maxAttempts: 2
      backoff: { base: 20ms, factor: 20ms, max: 50ms }
  - name: audit
    type: webhook
    url: ${healthy.url}
`,
    );
    const relay = await startRelay(file, { cwd: dir });
    const firstEvent = { type: 'invoice.paid', invoice: 'inv_1001', amount: 4200 };
    const events = [
      firstEvent,
      { type: 'invoice.paid', invoice: 'inv_1002', amount: 990 },
      { type: 'invoice.voided', invoice: 'inv_1003' },
    ];
    const dead: string[] = [];
    for (const event of events) {
      const answer = await post(relay.url, JSON.stringify(event));
      assert.equal(answer.status, 202, JSON.stringify(answer.json));
      dead.push((answer.json as { ids: string[] }).ids[0]!);
    }
    await waitFor(
      async () => {
        const { items } = (await (await fetch(`${relay.url}/admin/destinations`)).json()) as {
          items: { name: string; deadLetters: number }[];
        };
        return (items.find((d) => d.name === 'billing')?.deadLetters ?? 0) >= dead.length;
      },
      30_000,
      'three dead letters for billing',
    );
    // Traffic for the healthy destination while the page samples, for the chart.
    let n = 0;
    const traffic = setInterval(() => {
      for (let i = 0; i < 1 + (n++ % 4); i++) {
        void post(relay.url, JSON.stringify({ type: 'audit.log', n })).catch(() => undefined);
      }
    }, 700);
    try {
      await walkThrough(
        {
          base: relay.url,
          failing: 'billing',
          healthy: 'audit',
          dead,
          firstEvent,
          fix: async () => {
            failing.status = 200;
          },
        },
        { screenshots: true },
      );
      screenshotsTaken = true;
    } finally {
      clearInterval(traffic);
    }
    // The receiver got every resent event.
    assert.deepEqual(failing.received.map((r) => (r.body as { invoice: string }).invoice).sort(), [
      'inv_1001',
      'inv_1002',
      'inv_1003',
    ]);
  });
});

describe('dashboard (fake admin API)', () => {
  it('marks the failing destination, resends its dead letters, finds a message', async () => {
    const fake = await fakeRelay();
    try {
      const firstEvent = { type: 'invoice.paid', invoice: 'inv_1001', amount: 4200 };
      const dead = [
        fake.ingest(firstEvent),
        fake.ingest({ type: 'invoice.paid', invoice: 'inv_1002', amount: 990 }),
        fake.ingest({ type: 'invoice.voided', invoice: 'inv_1003' }),
      ];
      // Traffic for the healthy destination's chart while the page samples.
      let n = 0;
      const timer = setInterval(() => {
        for (let i = 0; i < 1 + (n++ % 4); i++) fake.ingest({ type: 'audit.log', n }, ['audit']);
      }, 700);
      try {
        await walkThrough(
          {
            base: fake.base,
            failing: 'billing',
            healthy: 'audit',
            dead,
            firstEvent,
            fix: async () => {
              fake.billing.fails = false;
            },
          },
          { screenshots: !screenshotsTaken },
        );
      } finally {
        clearInterval(timer);
      }
    } finally {
      await fake.close();
    }
  });
});

describe('dashboard on a phone (fake admin API)', () => {
  it('fits the width, and disables and enables a destination from the keyboard', async () => {
    const fake = await fakeRelay();
    const { page, problems, close } = await open(fake.base, 390, 844);
    try {
      fake.ingest({ type: 'invoice.paid', invoice: 'inv_2001' });
      // Wide tables scroll inside their own region; the page itself must not.
      const overflowing = () =>
        page.evaluate(() =>
          document.documentElement.scrollWidth <= window.innerWidth
            ? []
            : [
                `page ${document.documentElement.scrollWidth} px wide`,
                ...Array.from(document.querySelectorAll<HTMLElement>('body *'))
                  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
                  .filter((e) => !e.closest('.table-wrap'))
                  .map((e) => `${e.tagName.toLowerCase()}.${e.className}`),
              ],
        );
      await page.getByRole('link', { name: 'billing' }).waitFor(SLOW);
      assert.deepEqual(await overflowing(), [], 'the overview scrolls sideways on a phone');
      await page.getByRole('searchbox', { name: 'Message id' }).waitFor();

      await page.getByRole('link', { name: 'billing' }).press('Enter');
      await page
        .getByRole('heading', { level: 1, name: /^Destination billing failing$/ })
        .waitFor();
      // Focus moved to the new view's heading, for a screen reader to announce it.
      assert.equal(await page.evaluate(() => document.activeElement?.tagName), 'H1');
      assert.deepEqual(await overflowing(), [], 'the destination view scrolls sideways');

      await page.getByRole('button', { name: 'Disable billing' }).press('Enter');
      await page.getByRole('heading', { level: 1, name: /disabled$/ }).waitFor(SLOW);
      await page.getByRole('status').filter({ hasText: 'billing is disabled' }).waitFor();
      assert.equal(fake.billing.enabled, false);
      await page.getByRole('button', { name: 'Enable billing' }).press('Enter');
      await page.getByRole('heading', { level: 1, name: /failing$/ }).waitFor(SLOW);
      assert.equal(fake.billing.enabled, true);
      assert.deepEqual(problems, []);
    } finally {
      await close();
      await fake.close();
    }
  });
});

describe('dashboard: rotate a signing secret (fake admin API)', () => {
  it('shows the new secret once with a copy button, and the 409 of a file destination', async () => {
    const fake = await fakeRelay();
    const { page, problems, close } = await open(fake.base);
    try {
      await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], {
        origin: fake.base,
      });
      fake.ingest({ type: 'invoice.paid', invoice: 'inv_3001' });
      // The overview shows where each destination is declared and what it takes.
      const billingRow = page.getByRole('row', { name: /^billing\b/ });
      await billingRow.getByText('webhook · API').waitFor(SLOW);
      await billingRow.getByText('invoice.*').waitFor();
      await page
        .getByRole('row', { name: /^audit\b/ })
        .getByText('webhook · file')
        .waitFor();

      await billingRow.getByRole('link', { name: 'billing' }).click();
      const fact = (name: string) =>
        page.locator('.facts div', { hasText: new RegExp(`^${name}`) }).getByRole('definition');
      await page.getByRole('heading', { level: 1, name: /^Destination billing/ }).waitFor();
      assert.equal(await fact('Declared in').textContent(), 'admin API, version 3');
      assert.equal(await fact('Event types').textContent(), 'invoice.*');
      await page.getByText('Configuration (secrets redacted)').click();
      assert.match(
        (await page.getByLabel('Configuration of billing').textContent()) ?? '',
        /"secret": "whsec_…Zm9v"/,
      );

      await page.getByLabel('Previous secret keeps signing for').fill('2h');
      await page.getByRole('button', { name: 'Rotate signing secret' }).click();
      const shown = page.getByRole('group', { name: /New signing secret of billing/ });
      await shown.waitFor(SLOW);
      assert.equal(fake.secrets.length, 1);
      const secret = fake.secrets[0]!;
      assert.equal(await shown.getByRole('textbox').inputValue(), secret);
      await shown
        .getByRole('list', { name: 'Previous secrets' })
        .getByText('The previous secret also signs until 2026-12-03 09:30:00.')
        .waitFor();
      assert.deepEqual(fake.rotations, [{ name: 'billing', body: { grace: '2h' }, header: '1' }]);
      await shown.getByRole('button', { name: 'Copy secret' }).click();
      await shown.getByRole('status').filter({ hasText: 'Copied to the clipboard.' }).waitFor();
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
      await shot(page, 'ui-rotate.png');

      // Shown once: back on the page later, it is gone.
      await page
        .getByRole('navigation', { name: 'Main' })
        .getByRole('link', { name: 'Destinations' })
        .click();
      await page.getByRole('link', { name: 'audit' }).click();
      await page.getByRole('heading', { level: 1, name: /^Destination audit/ }).waitFor();
      assert.equal(await fact('Declared in').textContent(), 'config file');
      assert.equal(await fact('Event types').textContent(), 'all events');
      await page.getByRole('button', { name: 'Rotate signing secret' }).click();
      await page
        .getByRole('alert')
        .filter({
          hasText:
            'Not rotated: destination "audit" is declared in the config file; rotate it in its signing.secrets and reload',
        })
        .waitFor(SLOW);
      assert.deepEqual(fake.rotations[1], { name: 'audit', body: { grace: '24h' }, header: '1' });
      await page.goBack();
      await page.goBack();
      await page.getByRole('heading', { level: 1, name: /^Destination billing/ }).waitFor();
      await page.getByRole('button', { name: 'Rotate signing secret' }).waitFor();
      assert.equal(await page.getByRole('group', { name: /New signing secret/ }).count(), 0);
      assert.ok(!(await page.content()).includes(secret), 'the secret is no longer in the page');
      // The 409 is the only failed request.
      assert.deepEqual(problems, [
        'console: Failed to load resource: the server responded with a status of 409 (Conflict)',
      ]);
    } finally {
      await close();
      await fake.close();
    }
  });
});

describe('dashboard sign-in (relay child process, admin token)', () => {
  it('opens in a plain browser with the token: wrong token, right token, CSRF, sign out', async () => {
    const receiver = await new Receiver().start();
    const dir = tempDir();
    const token = 'tok_4ZpQ8sVr2Lm9-admin';
    const file = writeConfig(
      dir,
      `server: { listen: 127.0.0.1:0 }
dataDir: ./data
sources:
  - type: http
    token: ${token}
destinations:
  - name: billing
    type: webhook
    url: ${receiver.url}
  - name: out
    type: stdout
`,
    );
    const relay = await startRelay(file, { cwd: dir });

    // Without credentials the page is the sign-in form; the bearer header still works.
    const without = await fetch(`${relay.url}/ui/`);
    assert.equal(without.status, 401);
    assert.match(without.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(without.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.match(await without.text(), /<form method="post" action="login">/);
    const wrong = await fetch(`${relay.url}/ui/app.js`, {
      headers: { authorization: 'Bearer nope' },
    });
    assert.equal(wrong.status, 401);
    const bearer = await fetch(`${relay.url}/ui/`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(bearer.status, 200);
    assert.match(await bearer.text(), /<script type="module" src="app\.js\?v=/);
    const unknown = await fetch(`${relay.url}/ui/relay.json`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(unknown.status, 404);

    const { page, problems, close } = await open(relay.url, 1280, 720);
    try {
      await page.getByRole('heading', { level: 1, name: 'eventsinks relay' }).waitFor();
      const field = page.getByLabel('Admin token');
      assert.equal(await field.getAttribute('type'), 'password');
      await field.fill('not-the-token');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page
        .getByRole('alert')
        .filter({ hasText: 'That is not the admin token. Try again.' })
        .waitFor(SLOW);
      await shot(page, 'ui-login.png');
      // The browser logs the 401 of the page itself; nothing else may show up.
      const others = problems.filter((p) => !/status of 401/.test(p));
      assert.deepEqual(others, []);
      problems.length = 0;

      // The right token (typed, then Enter): the overview, from the cookie alone.
      await page.getByLabel('Admin token').fill(token);
      await page.getByLabel('Admin token').press('Enter');
      await page.getByRole('heading', { level: 1, name: 'Destinations' }).waitFor(SLOW);
      await page.getByRole('link', { name: 'billing' }).waitFor(SLOW);
      const cookies = await page.context().cookies();
      const session = cookies.find((c) => c.name === 'eventsinks_admin');
      assert.ok(session, 'the session cookie is set');
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, 'Strict');
      assert.equal(session.path, '/');
      assert.equal(session.secure, false);
      assert.ok(!session.value.includes(token), 'the cookie is a session, not the token');

      // The page's own changes work; the same change without its header is refused (CSRF).
      await page.getByRole('link', { name: 'billing' }).click();
      await page.getByRole('button', { name: 'Disable billing' }).click();
      await page.getByRole('heading', { level: 1, name: /disabled$/ }).waitFor(SLOW);
      const forged = await page.evaluate(async () => {
        const r = await fetch('../admin/destinations/billing/enable', { method: 'POST' });
        return { status: r.status, body: (await r.json()) as { error: string } };
      });
      assert.equal(forged.status, 403);
      assert.match(forged.body.error, /x-eventsinks-ui: 1/);
      await page.getByRole('heading', { level: 1, name: /disabled$/ }).waitFor();
      await page.getByRole('button', { name: 'Enable billing' }).click();
      await page.getByRole('heading', { level: 1, name: /healthy$/ }).waitFor(SLOW);
      // The refused fetch above is the only failed request.
      assert.deepEqual(problems, [
        'console: Failed to load resource: the server responded with a status of 403 (Forbidden)',
      ]);

      // Sign out: back to the form, and the old cookie no longer opens anything.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('button', { name: 'Sign in' }).waitFor(SLOW);
      assert.equal(
        (
          await fetch(`${relay.url}/admin/destinations`, {
            headers: { cookie: `eventsinks_admin=${session.value}` },
          })
        ).status,
        401,
      );
    } finally {
      await close();
    }
  });
});
