import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { SinkClosedError } from 'eventsinks';
import { MemoryStore, type MemoryMessage } from '../test/MemoryStore.js';
import {
  MAX_ATTEMPTS_SHOWN,
  createAdminHandler,
  listDeadLetters,
  parseSinceParam,
  replayDeadLetters,
  type AdminDestination,
  type DestinationStatus,
  type Reply,
} from './admin.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

function messages(): MemoryMessage[] {
  return [
    {
      id: 'm1',
      receivedAt: T0,
      source: 'http',
      event: { n: 1 },
      deliveries: [
        {
          destination: 'hooks',
          status: 'delivered',
          attempts: [{ at: T0 + 10, durationMs: 5, status: 200, response: 'ok' }],
        },
        { destination: 'out', status: 'pending', attempts: [] },
      ],
    },
    {
      id: 'm2',
      receivedAt: T0 + 1000,
      source: 'stdin',
      event: { n: 2 },
      deliveries: [
        {
          destination: 'hooks',
          status: 'dead',
          attempts: [
            { at: T0 + 1010, durationMs: 20, status: 500, error: 'HTTP 500', nextAt: T0 + 2000 },
            { at: T0 + 2000, durationMs: 30, status: 400, error: 'HTTP 400' },
          ],
        },
      ],
    },
    {
      id: 'm3',
      receivedAt: T0 + 2000,
      source: 'http',
      event: { n: 3 },
      deliveries: [
        {
          destination: 'hooks',
          status: 'dead',
          attempts: [{ at: T0 + 2100, durationMs: 0, error: 'overflow: more than maxPending' }],
        },
      ],
    },
  ];
}

class FakeDestination implements AdminDestination {
  state: DestinationStatus['state'] = 'healthy';
  resent: string[] = [];
  replayedSince: number[] = [];
  constructor(
    readonly name: string,
    readonly store: MemoryStore,
  ) {}
  status(): DestinationStatus {
    return {
      name: this.name,
      type: 'webhook',
      state: this.state,
      pending: 1,
      inFlight: 0,
      delivered: 2,
      failed: 3,
      deadLetters: 4,
      lastError: 'HTTP 500',
      lastSuccessAt: new Date(T0).toISOString(),
    };
  }
  async enable(): Promise<void> {
    this.state = 'healthy';
  }
  async disable(): Promise<void> {
    this.state = 'disabled';
  }
  async resend(id: string): Promise<boolean> {
    this.resent.push(id);
    return (await this.store.resend(id, this.name)) !== undefined;
  }
  async replay(since: number): Promise<number> {
    this.replayedSince.push(since);
    return replayDeadLetters(this.store, this.name, since);
  }
}

const reply: Reply = (res: ServerResponse, status, body, headers = {}) => {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
};

let store: MemoryStore;
let hooks: FakeDestination;
let out: FakeDestination;
let server: Server;
let base: string;

before(async () => {
  server = createServer((req, res) => {
    const handler = createAdminHandler({
      store,
      destinations: [hooks, out],
      logger: pino({ level: 'silent' }),
    });
    handler(req, res, new URL(req.url ?? '/', 'http://relay.invalid'), reply).catch(
      (error: unknown) => reply(res, 500, { error: String(error) }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  store = new MemoryStore(messages());
  hooks = new FakeDestination('hooks', store);
  out = new FakeDestination('out', store);
});

async function call(
  path: string,
  method = 'GET',
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const response = await fetch(`${base}${path}`, { method });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

function errorOf(body: unknown): string {
  return (body as { error: string }).error;
}

describe('admin: destinations', () => {
  it('GET /admin/destinations lists every status under items', async () => {
    const { status, body } = await call('/admin/destinations');
    assert.equal(status, 200);
    const items = (body as { items: DestinationStatus[] }).items;
    assert.deepEqual(
      items.map((d) => d.name),
      ['hooks', 'out'],
    );
    assert.equal(items[0]!.lastSuccessAt, '2026-01-01T00:00:00.000Z');
  });

  it('POST enable/disable changes the state and answers the status', async () => {
    const disabled = await call('/admin/destinations/hooks/disable', 'POST');
    assert.equal(disabled.status, 200);
    assert.equal((disabled.body as DestinationStatus).state, 'disabled');
    assert.equal(hooks.state, 'disabled');
    const enabled = await call('/admin/destinations/hooks/enable', 'POST');
    assert.equal((enabled.body as DestinationStatus).state, 'healthy');
  });

  it('an unknown destination is a 404 naming it and the known ones', async () => {
    const { status, body } = await call('/admin/destinations/nope/enable', 'POST');
    assert.equal(status, 404);
    assert.match(errorOf(body), /"nope".*hooks, out/);
  });

  it('a wrong method is a 405 with allow', async () => {
    const get = await call('/admin/destinations/hooks/enable');
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    // POST creates a destination (issue 16): DELETE is the wrong method on the list.
    const remove = await call('/admin/destinations', 'DELETE');
    assert.equal(remove.status, 405);
    assert.equal(remove.headers.get('allow'), 'GET, POST');
  });

  it('an unknown admin path is a 404 naming it', async () => {
    const { status, body } = await call('/admin/frobs');
    assert.equal(status, 404);
    assert.match(errorOf(body), /\/admin\/frobs/);
  });
});

describe('admin: GET /admin/messages', () => {
  it('lists newest first with ISO times and deliveries; next is null on the last page', async () => {
    const { status, body } = await call('/admin/messages');
    assert.equal(status, 200);
    const page = body as {
      items: { id: string; receivedAt: string; deliveries: unknown[] }[];
      next: string | null;
    };
    assert.deepEqual(
      page.items.map((m) => m.id),
      ['m3', 'm2', 'm1'],
    );
    assert.equal(page.items[2]!.receivedAt, '2026-01-01T00:00:00.000Z');
    assert.deepEqual(page.items[2]!.deliveries, [
      { destination: 'hooks', status: 'delivered', attempts: 1 },
      { destination: 'out', status: 'pending', attempts: 0 },
    ]);
    assert.equal(page.next, null);
    assert.deepEqual(store.calls[0], ['listMessages', { limit: 100 }]);
  });

  it('passes destination, status, since and cursor through; pages with next', async () => {
    const first = await call('/admin/messages?destination=hooks&status=dead&limit=1');
    const page = first.body as { items: { id: string }[]; next: string | null };
    assert.deepEqual(
      page.items.map((m) => m.id),
      ['m3'],
    );
    assert.equal(typeof page.next, 'string');
    const second = await call(
      `/admin/messages?destination=hooks&status=dead&limit=1&cursor=${page.next}`,
    );
    assert.deepEqual(
      (second.body as { items: { id: string }[] }).items.map((m) => m.id),
      ['m2'],
    );
    await call(`/admin/messages?since=${T0 + 500}`);
    assert.deepEqual(store.calls.at(-1), ['listMessages', { limit: 100, since: T0 + 500 }]);
    await call('/admin/messages?since=2026-01-01T00:00:01Z');
    assert.deepEqual(store.calls.at(-1), ['listMessages', { limit: 100, since: T0 + 1000 }]);
  });

  it('since as a duration is back from now', async () => {
    const before = Date.now();
    await call('/admin/messages?since=1h');
    const since = (store.calls.at(-1)![1] as { since: number }).since;
    assert.ok(since >= before - 3_600_000 && since <= Date.now() - 3_600_000, String(since));
  });

  const bad: [string, RegExp][] = [
    ['limit=0', /limit: .*1 to 1000.*"0"/],
    ['limit=1001', /limit: .*"1001"/],
    ['limit=ten', /limit: .*"ten"/],
    ['status=lost', /status: .*pending, delivered, dead.*"lost"/],
    ['since=yesterday', /since: .*"yesterday"/],
    ['cursor=', /cursor: /],
    ['destination=', /destination: /],
  ];
  for (const [query, expected] of bad) {
    it(`${query} is a 400 naming it`, async () => {
      const { status, body } = await call(`/admin/messages?${query}`);
      assert.equal(status, 400);
      assert.match(errorOf(body), expected);
    });
  }

  it('an unknown destination filter is a 404', async () => {
    const { status, body } = await call('/admin/messages?destination=gone');
    assert.equal(status, 404);
    assert.match(errorOf(body), /"gone"/);
  });
});

describe('admin: GET /admin/messages/{id}', () => {
  it('shows the event and every attempt with ISO times, optional fields only when set', async () => {
    const { status, body } = await call('/admin/messages/m2');
    assert.equal(status, 200);
    assert.deepEqual(body, {
      id: 'm2',
      receivedAt: '2026-01-01T00:00:01.000Z',
      source: 'stdin',
      event: { n: 2 },
      deliveries: [
        {
          destination: 'hooks',
          status: 'dead',
          attempts: [
            {
              at: '2026-01-01T00:00:01.010Z',
              durationMs: 20,
              status: 500,
              error: 'HTTP 500',
              nextAt: '2026-01-01T00:00:02.000Z',
            },
            { at: '2026-01-01T00:00:02.000Z', durationMs: 30, status: 400, error: 'HTTP 400' },
          ],
        },
      ],
    });
  });

  it('keeps only the latest attempts of a long history and says how many it left out', async () => {
    const attempts = Array.from({ length: MAX_ATTEMPTS_SHOWN + 5 }, (_, i) => ({
      at: T0 + i,
      durationMs: 1,
      error: `try ${i}`,
    }));
    store.messages.push({
      id: 'long',
      receivedAt: T0,
      source: 'http',
      event: {},
      deliveries: [{ destination: 'hooks', status: 'pending', attempts }],
    });
    const { body } = await call('/admin/messages/long');
    const delivery = (
      body as { deliveries: { attempts: { error: string }[]; attemptsOmitted?: number }[] }
    ).deliveries[0]!;
    assert.equal(delivery.attempts.length, MAX_ATTEMPTS_SHOWN);
    assert.equal(delivery.attemptsOmitted, 5);
    assert.equal(delivery.attempts[0]!.error, 'try 5');
  });

  it('an unknown (or purged) id is a 404 naming it; a bad escape is a 400', async () => {
    const missing = await call('/admin/messages/nope');
    assert.equal(missing.status, 404);
    assert.match(errorOf(missing.body), /"nope".*purged/);
    const bad = await call('/admin/messages/%E0%A4%A');
    assert.equal(bad.status, 400);
    assert.match(errorOf(bad.body), /message id: .*%E0%A4%A/);
  });

  it('an id with reserved characters round-trips its encoding', async () => {
    store.messages.push({
      id: 'order/7 ü',
      receivedAt: T0,
      source: 'http',
      event: {},
      deliveries: [],
    });
    const { status, body } = await call(`/admin/messages/${encodeURIComponent('order/7 ü')}`);
    assert.equal(status, 200);
    assert.equal((body as { id: string }).id, 'order/7 ü');
  });
});

describe('admin: POST /admin/messages/{id}/resend', () => {
  it('202 with id and destination; the destination resends it', async () => {
    const { status, body } = await call('/admin/messages/m1/resend?destination=hooks', 'POST');
    assert.equal(status, 202);
    assert.deepEqual(body, { id: 'm1', destination: 'hooks' });
    assert.deepEqual(hooks.resent, ['m1']);
    assert.equal(store.messages[0]!.deliveries[0]!.status, 'pending');
  });

  it('400 without destination, 404 for an unknown destination or message', async () => {
    const none = await call('/admin/messages/m1/resend', 'POST');
    assert.equal(none.status, 400);
    assert.match(errorOf(none.body), /destination: required/);
    const unknown = await call('/admin/messages/m1/resend?destination=gone', 'POST');
    assert.equal(unknown.status, 404);
    assert.match(errorOf(unknown.body), /"gone"/);
    const missing = await call('/admin/messages/nope/resend?destination=hooks', 'POST');
    assert.equal(missing.status, 404);
    assert.match(errorOf(missing.body), /"nope"/);
    assert.equal(out.resent.length, 0);
  });

  it('GET is a 405 with allow: POST', async () => {
    const { status, headers } = await call('/admin/messages/m1/resend?destination=hooks');
    assert.equal(status, 405);
    assert.equal(headers.get('allow'), 'POST');
  });
});

describe('admin: the dead-letter views', () => {
  it('GET /admin/dlq/{name} lists the dead letters oldest first in the old shape', async () => {
    const { status, body } = await call('/admin/dlq/hooks');
    assert.equal(status, 200);
    assert.deepEqual(body, [
      {
        id: 'm2',
        envelope: { id: 'm2', receivedAt: T0 + 1000, source: 'stdin', event: { n: 2 } },
        error: 'HTTP 400',
        status: 400,
        attempts: 2,
        firstFailedAt: T0 + 1010,
        deadAt: T0 + 2030,
      },
      {
        id: 'm3',
        envelope: { id: 'm3', receivedAt: T0 + 2000, source: 'http', event: { n: 3 } },
        error: 'overflow: more than maxPending',
        reason: 'overflow',
        attempts: 1,
        firstFailedAt: T0 + 2100,
        deadAt: T0 + 2100,
      },
    ]);
    const limited = await call('/admin/dlq/hooks?limit=1');
    // The newest page of the log: the limit keeps the latest dead letters.
    assert.deepEqual(
      (limited.body as { id: string }[]).map((d) => d.id),
      ['m3'],
    );
  });

  it('an empty dead letter is an empty list; unknown destination 404; bad limit 400', async () => {
    assert.deepEqual((await call('/admin/dlq/out')).body, []);
    assert.equal((await call('/admin/dlq/gone')).status, 404);
    const bad = await call('/admin/dlq/hooks?limit=-1');
    assert.equal(bad.status, 400);
    assert.match(errorOf(bad.body), /limit: .*"-1"/);
  });

  it('POST /admin/dlq/{name}/replay?since= replays through the destination', async () => {
    const some = await call(`/admin/dlq/hooks/replay?since=${T0 + 2050}`, 'POST');
    assert.equal(some.status, 200);
    assert.deepEqual(some.body, { replayed: 1 });
    assert.deepEqual(hooks.replayedSince, [T0 + 2050]);
    assert.equal(store.messages[2]!.deliveries[0]!.status, 'pending');
    assert.equal(store.messages[1]!.deliveries[0]!.status, 'dead');
    const rest = await call('/admin/dlq/hooks/replay', 'POST');
    assert.deepEqual(rest.body, { replayed: 1 });
    assert.deepEqual(hooks.replayedSince, [T0 + 2050, 0]);
    const bad = await call('/admin/dlq/hooks/replay?since=soon', 'POST');
    assert.equal(bad.status, 400);
    assert.match(errorOf(bad.body), /since: .*"soon"/);
  });

  it('a store closed by the drain is a 503 with retry-after', async () => {
    store.listMessages = () => Promise.reject(new SinkClosedError());
    const { status, headers } = await call('/admin/dlq/hooks');
    assert.equal(status, 503);
    assert.equal(headers.get('retry-after'), '5');
  });
});

describe('admin: helpers', () => {
  it('parseSinceParam takes ms, ISO dates and durations back from now', () => {
    assert.equal(parseSinceParam('1767225600000'), T0);
    assert.equal(parseSinceParam('2026-01-01T00:00:00Z'), T0);
    assert.equal(parseSinceParam('30m', T0), T0 - 1_800_000);
    assert.equal(parseSinceParam('soon'), undefined);
    assert.equal(parseSinceParam('2026-13-45'), undefined);
  });

  it('replayDeadLetters pages through the store until a short page', async () => {
    const many = new MemoryStore(
      Array.from({ length: 1200 }, (_, i) => ({
        id: `d${i}`,
        receivedAt: T0,
        source: 'http',
        event: {},
        deliveries: [
          {
            destination: 'hooks',
            status: 'dead' as const,
            attempts: [{ at: T0, durationMs: 1, error: 'x' }],
          },
        ],
      })),
    );
    assert.equal(await replayDeadLetters(many, 'hooks', 0), 1200);
    assert.equal(many.calls.filter((c) => c[0] === 'replayDead').length, 3);
    assert.deepEqual(await listDeadLetters(many, 'hooks', 10), []);
  });
});
