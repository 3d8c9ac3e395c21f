import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { MemoryStore, type MemoryMessage } from '../test/MemoryStore.js';
import {
  MAX_ATTEMPTS_SHOWN,
  createAdminHandler,
  replayDeadLetters,
  type AdminDestination,
  type DestinationStatus,
  type MessageDetailJson,
} from './admin.js';
import {
  EX_NOINPUT,
  EX_UNAVAILABLE,
  EX_USAGE,
  formatMessage,
  formatMessageList,
  formatResend,
  main,
  type MainOptions,
} from './main.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function fixture(): MemoryMessage[] {
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
          attempts: [{ at: T0 + 1010, durationMs: 20, status: 400, error: 'HTTP 400' }],
        },
        { destination: 'out', status: 'pending', attempts: [] },
      ],
    },
  ];
}

/** A directory with a relay.yaml whose relay (port 1) never answers. */
function project(): string {
  const dir = mkdtempSync(join(tmpdir(), 'eventsinks-main-'));
  dirs.push(dir);
  writeFileSync(
    join(dir, 'relay.yaml'),
    'server: { listen: 127.0.0.1:1 }\ndataDir: ./data\ndestinations: [{ name: hooks, type: stdout }, { name: out, type: stdout }]\n',
  );
  return dir;
}

async function cli(
  dir: string,
  args: string[],
  options: MainOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(
    args[0] === 'help' ? args : [...args, '--config', join(dir, 'relay.yaml')],
    { out: (t) => (stdout += t), err: (t) => (stderr += t) },
    {},
    options,
  );
  return { code, stdout, stderr };
}

describe('formatMessageList', () => {
  it('one line per message (time, id, source, destination:status(attempts)) and the next page', () => {
    const text = formatMessageList(
      {
        items: [
          {
            id: 'm2',
            receivedAt: '2026-01-01T00:00:01.000Z',
            source: 'stdin',
            deliveries: [
              { destination: 'hooks', status: 'dead', attempts: 3 },
              { destination: 'out', status: 'pending', attempts: 0 },
            ],
          },
          { id: 'm1', receivedAt: '2026-01-01T00:00:00.000Z', source: 'http', deliveries: [] },
        ],
        next: "c'2",
      },
      'eventsinks messages list --status dead',
    );
    assert.equal(
      text,
      '2026-01-01T00:00:01.000Z  m2  stdin  hooks:dead(3) out:pending(0)\n' +
        '2026-01-01T00:00:00.000Z  m1  http  (no destination)\n' +
        "more: eventsinks messages list --status dead --cursor 'c'\\''2'\n",
    );
  });

  it('an empty page says so, and no next line without a cursor', () => {
    assert.equal(formatMessageList({ items: [], next: null }), 'no messages\n');
  });
});

describe('formatMessage', () => {
  it('the message, then per destination its attempts with status, error, response, nextAt', () => {
    const message: MessageDetailJson = {
      id: 'm2',
      receivedAt: '2026-01-01T00:00:01.000Z',
      source: 'stdin',
      event: { n: 2 },
      deliveries: [
        {
          destination: 'hooks',
          status: 'pending',
          attempts: [
            {
              at: '2026-01-01T00:00:01.010Z',
              durationMs: 20,
              status: 503,
              error: 'HTTP 503',
              response: 'busy\nlater',
              nextAt: '2026-01-01T00:00:02.000Z',
            },
            { at: '2026-01-01T00:00:02.000Z', durationMs: 7, error: 'connect ECONNREFUSED' },
          ],
          attemptsOmitted: 4,
        },
        {
          destination: 'out',
          status: 'delivered',
          attempts: [{ at: '2026-01-01T00:00:01.001Z', durationMs: 1 }],
        },
      ],
    };
    assert.equal(
      formatMessage(message),
      [
        'message m2',
        '  received 2026-01-01T00:00:01.000Z from stdin',
        '  event {"n":2}',
        '',
        'hooks: pending, 6 attempts',
        '  (4 earlier attempts not shown)',
        '  2026-01-01T00:00:01.010Z  20ms  503  HTTP 503  next attempt 2026-01-01T00:00:02.000Z',
        '    response "busy\\nlater"',
        '  2026-01-01T00:00:02.000Z  7ms  connect ECONNREFUSED',
        '',
        'out: delivered, 1 attempt',
        '  2026-01-01T00:00:01.001Z  1ms  ok',
        '',
      ].join('\n'),
    );
  });

  it('a large event is cut, and says where to get it whole', () => {
    const text = formatMessage({
      id: 'big',
      receivedAt: '2026-01-01T00:00:00.000Z',
      source: 'http',
      event: { blob: 'x'.repeat(5000) },
      deliveries: [],
    });
    assert.match(text, /… \(5011 characters; --json prints it whole\)/);
    assert.ok(text.length < 2500, String(text.length));
    assert.match(text, /no destination took it/);
  });

  it('formatResend says whether the running relay has it', () => {
    assert.match(formatResend({ id: 'm1', destination: 'hooks' }, true), /m1 .*hooks.*running/);
    assert.match(formatResend({ id: 'm1', destination: 'hooks' }, false), /when the relay starts/);
  });
});

describe('eventsinks messages: usage errors exit 64 naming the value', () => {
  const cases: [string[], RegExp][] = [
    [['messages', 'list', '--status', 'lost'], /--status: .*"lost"/],
    [['messages', 'list', '--limit', '0'], /--limit: .*1 to 1000.*"0"/],
    [['messages', 'list', '--limit', '1001'], /--limit: .*"1001"/],
    [['messages', 'list', '--since', 'yesterday'], /--since: .*"yesterday"/],
    [['messages', 'list', '--cursor', ''], /--cursor: /],
    [['messages', 'list', '--destination', 'gone'], /no destination named "gone".*hooks, out/],
    [['messages', 'list', '--colour'], /--colour/],
    [['messages', 'show'], /missing <id>/],
    [['messages', 'show', 'a', 'b'], /unexpected argument "b"/],
    [['messages', 'resend', 'm1'], /--destination: required .*"m1"/],
    [['messages', 'resend', 'm1', '--destination', 'gone'], /no destination named "gone"/],
    [['messages', 'frob'], /unknown action "frob"/],
    [['messages'], /needs an action/],
    [['dlq', 'list', 'hooks', '--limit', '5000'], /--limit: .*"5000"/],
  ];
  for (const [args, expected] of cases) {
    it(args.join(' '), async () => {
      const result = await cli(project(), args);
      assert.equal(result.code, EX_USAGE, result.stderr);
      const [first] = result.stderr.split('\n');
      assert.match(first!, /^eventsinks messages|^eventsinks dlq/);
      assert.match(first!, expected);
      assert.match(result.stderr, /Usage:/);
      assert.equal(result.stdout, '');
    });
  }
});

describe('eventsinks messages: help', () => {
  it('the top-level help, help messages and each --help list the commands and options', async () => {
    const dir = project();
    const top = await cli(dir, ['help']);
    for (const c of ['messages list', 'messages show', 'messages resend']) {
      assert.match(top.stdout, new RegExp(`eventsinks ${c}`));
    }
    assert.match(top.stdout, /66 no such message/);
    const topic = await cli(dir, ['help', 'messages']);
    assert.equal(topic.code, 0);
    assert.match(topic.stdout, /messages list .*\n.*\n.*messages show .*\n.*\n.*messages resend/);
    const list = await cli(dir, ['messages', 'list', '--help']);
    for (const flag of ['--destination', '--status', '--since', '--limit', '--cursor', '--json']) {
      assert.match(list.stdout, new RegExp(flag));
    }
    const resend = await cli(dir, ['messages', 'resend', '--help']);
    assert.match(resend.stdout, /--destination <name> .*required/);
    assert.equal((await cli(dir, ['messages', '--help'])).code, 0);
  });
});

describe('eventsinks messages and dlq with no relay running: the store', () => {
  let store: MemoryStore;
  let opened: number;
  const options: MainOptions = {
    openStore: () => {
      opened++;
      return Promise.resolve(store);
    },
  };
  beforeEach(() => {
    store = new MemoryStore(fixture());
    opened = 0;
  });
  function withDb(): string {
    const dir = project();
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data', 'relay.db'), '');
    return dir;
  }

  it('before any relay ran: nothing listed, nothing found, nothing created', async () => {
    const dir = project();
    const list = await cli(dir, ['messages', 'list'], options);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout, 'no messages\n');
    const json = await cli(dir, ['messages', 'list', '--json'], options);
    assert.equal(json.stdout, '{"items":[],"next":null}\n');
    const show = await cli(dir, ['messages', 'show', 'm1'], options);
    assert.equal(show.code, EX_NOINPUT);
    assert.match(show.stderr, /no message "m1"/);
    const resend = await cli(dir, ['messages', 'resend', 'm1', '--destination', 'hooks'], options);
    assert.equal(resend.code, EX_NOINPUT);
    assert.equal(
      (await cli(dir, ['dlq', 'list', 'hooks'], options)).stdout,
      'hooks: no dead letters\n',
    );
    assert.equal(opened, 0);
    assert.equal(existsSync(join(dir, 'data')), false);
  });

  it('list reads the store with the filters, and closes it', async () => {
    const dir = withDb();
    const list = await cli(
      dir,
      [
        'messages',
        'list',
        '--destination',
        'hooks',
        '--status',
        'dead',
        '--limit',
        '5',
        '--since',
        '2026-01-01T00:00:00Z',
      ],
      options,
    );
    assert.equal(list.code, 0, list.stderr);
    assert.equal(
      list.stdout,
      '2026-01-01T00:00:01.000Z  m2  stdin  hooks:dead(1) out:pending(0)\n',
    );
    assert.deepEqual(store.calls[0], [
      'listMessages',
      { limit: 5, status: 'dead', since: T0, destination: 'hooks' },
    ]);
    assert.equal(store.closed, true);
  });

  it('list --json prints the API shape; the next hint repeats the filters', async () => {
    const dir = withDb();
    const json = await cli(dir, ['messages', 'list', '--json', '--limit', '1'], options);
    assert.deepEqual(JSON.parse(json.stdout), {
      items: [
        {
          id: 'm2',
          receivedAt: '2026-01-01T00:00:01.000Z',
          source: 'stdin',
          deliveries: [
            { destination: 'hooks', status: 'dead', attempts: 1 },
            { destination: 'out', status: 'pending', attempts: 0 },
          ],
        },
      ],
      next: '1',
    });
    const human = await cli(
      dir,
      ['messages', 'list', '--limit', '1', '--since', '2026-01-01'],
      options,
    );
    assert.match(
      human.stdout,
      /\nmore: eventsinks messages list --config \S+relay\.yaml --since 2026-01-01T00:00:00\.000Z --limit 1 --cursor 1\n$/,
    );
    const next = await cli(dir, ['messages', 'list', '--limit', '1', '--cursor', '1'], options);
    assert.match(next.stdout, /^2026-01-01T00:00:00.000Z {2}m1 {2}http {2}hooks:delivered\(1\)\n$/);
  });

  it('show prints the message and its attempts; --json the API shape; unknown: 66', async () => {
    const dir = withDb();
    const show = await cli(dir, ['messages', 'show', 'm2'], options);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^message m2\n/);
    assert.match(
      show.stdout,
      /hooks: dead, 1 attempt\n {2}2026-01-01T00:00:01.010Z {2}20ms {2}400 {2}HTTP 400\n/,
    );
    const json = await cli(dir, ['messages', 'show', 'm2', '--json'], options);
    const detail = JSON.parse(json.stdout) as MessageDetailJson;
    assert.equal(detail.deliveries[0]!.attempts[0]!.at, '2026-01-01T00:00:01.010Z');
    assert.deepEqual(detail.event, { n: 2 });
    const missing = await cli(dir, ['messages', 'show', 'nope'], options);
    assert.equal(missing.code, EX_NOINPUT);
    assert.match(missing.stderr, /^eventsinks: no message "nope"/);
  });

  it('resend sets the delivery pending in the store for the next start', async () => {
    const dir = withDb();
    const resend = await cli(
      dir,
      ['messages', 'resend', 'm1', '--destination', 'hooks', '--json'],
      options,
    );
    assert.equal(resend.code, 0, resend.stderr);
    assert.deepEqual(JSON.parse(resend.stdout), { id: 'm1', destination: 'hooks' });
    assert.deepEqual(store.calls.at(-1), ['resend', 'm1', 'hooks']);
    assert.equal(store.messages[0]!.deliveries[0]!.status, 'pending');
    const missing = await cli(
      dir,
      ['messages', 'resend', 'nope', '--destination', 'hooks'],
      options,
    );
    assert.equal(missing.code, EX_NOINPUT);
  });

  it('dlq list and replay are views of the same log', async () => {
    const dir = withDb();
    const list = await cli(dir, ['dlq', 'list', 'hooks', '--json'], options);
    assert.equal(list.code, 0, list.stderr);
    const entries = list.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; status: number; deadAt: number });
    assert.deepEqual(
      entries.map((e) => [e.id, e.status, e.deadAt]),
      [['m2', 400, T0 + 1030]],
    );
    const human = await cli(dir, ['dlq', 'list', 'hooks'], options);
    assert.match(
      human.stdout,
      /hooks: 1 dead letter, oldest first\n\nm2 {2}given up 2026-01-01T00:00:01.030Z after 1 attempt, status 400/,
    );
    const replay = await cli(dir, ['dlq', 'replay', 'hooks', '--json'], options);
    assert.deepEqual(JSON.parse(replay.stdout), { replayed: 1, relay: 'stopped' });
    assert.equal(store.messages[1]!.deliveries[0]!.status, 'pending');
  });

  it('a store that cannot be opened is a one-line 69 naming the file', async () => {
    const dir = withDb();
    const result = await cli(dir, ['messages', 'list'], {
      openStore: () => Promise.reject(new Error('database is locked')),
    });
    assert.equal(result.code, EX_UNAVAILABLE);
    assert.match(result.stderr, /^eventsinks: cannot open \S+relay\.db \(database is locked\)/);
    assert.equal(result.stderr.split('\n').length, 2);
  });

  it('a running relay (relay.json, its process alive) that does not answer is a 69, not the store', async () => {
    const dir = withDb();
    // This test's own process is alive; a port just closed refuses the connection.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    writeFileSync(
      join(dir, 'data', 'relay.json'),
      JSON.stringify({ pid: process.pid, url: `http://127.0.0.1:${port}` }),
    );
    for (const args of [
      ['dlq', 'list', 'hooks'],
      ['dlq', 'replay', 'hooks'],
      ['messages', 'list'],
    ]) {
      const result = await cli(dir, args, options);
      assert.equal(result.code, EX_UNAVAILABLE, `${args.join(' ')}: ${result.stderr}`);
      assert.match(
        result.stderr,
        /^eventsinks: the relay at http:\/\/127\.0\.0\.1:\d+ \(pid \d+, from \S+relay\.json\) did not answer \(.*ECONNREFUSED.*\)/,
      );
      assert.equal(result.stderr.split('\n').length, 2, result.stderr);
    }
    assert.equal(opened, 0, 'the store of a running relay is not touched');
  });
});

describe('eventsinks messages and dlq with a relay running: the admin API', () => {
  let store: MemoryStore;
  let server: Server;
  let url: string;
  const names = ['hooks', 'out'];
  const destinations: AdminDestination[] = names.map((name) => ({
    name,
    status: (): DestinationStatus => ({
      name,
      type: 'stdout',
      state: 'healthy',
      pending: 0,
      inFlight: 0,
      delivered: 0,
      failed: 0,
      deadLetters: 0,
      lastError: null,
      lastSuccessAt: null,
    }),
    enable: () => Promise.resolve(),
    disable: () => Promise.resolve(),
    resend: async (id) => (await store.resend(id, name)) !== undefined,
    replay: (since) => replayDeadLetters(store, name, since),
  }));
  const noStore: MainOptions = {
    openStore: () => Promise.reject(new Error('the store must not be opened while a relay runs')),
  };

  beforeEach(async () => {
    store = new MemoryStore(fixture());
    if (!server) {
      server = createServer((req, res) => {
        const handler = createAdminHandler({
          store,
          destinations,
          logger: pino({ level: 'silent' }),
        });
        void handler(req, res, new URL(req.url ?? '/', 'http://x'), (r, status, body, headers) => {
          r.writeHead(status, { 'content-type': 'application/json', ...headers });
          r.end(`${JSON.stringify(body)}\n`);
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  function running(): string {
    const dir = project();
    mkdirSync(join(dir, 'data'));
    // As a relay writes it; this process stands in for the relay (its pid is alive).
    writeFileSync(join(dir, 'data', 'relay.json'), JSON.stringify({ pid: process.pid, url }));
    return dir;
  }

  it('list --json and show --json print exactly the API answer', async () => {
    const dir = running();
    const api = await (await fetch(`${url}/admin/messages?status=dead&limit=100`)).text();
    const list = await cli(dir, ['messages', 'list', '--status', 'dead', '--json'], noStore);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout, api);
    const detail = await (await fetch(`${url}/admin/messages/m2`)).text();
    const show = await cli(dir, ['messages', 'show', 'm2', '--json'], noStore);
    assert.equal(show.stdout, detail);
  });

  it('resend goes through the API; a message the relay does not know is 66', async () => {
    const dir = running();
    const resend = await cli(dir, ['messages', 'resend', 'm2', '--destination', 'out'], noStore);
    assert.equal(resend.code, 0, resend.stderr);
    assert.equal(resend.stdout, 'message m2 will be delivered to out again (relay running)\n');
    assert.deepEqual(store.calls.at(-1), ['resend', 'm2', 'out']);
    const missing = await cli(dir, ['messages', 'resend', 'nope', '--destination', 'out'], noStore);
    assert.equal(missing.code, EX_NOINPUT);
    assert.match(missing.stderr, /"nope"/);
    const show = await cli(dir, ['messages', 'show', 'nope'], noStore);
    assert.equal(show.code, EX_NOINPUT);
  });

  it('dlq list and replay through the API', async () => {
    const dir = running();
    const list = await cli(dir, ['dlq', 'list', 'hooks'], noStore);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /hooks: 1 dead letter/);
    const replay = await cli(dir, ['dlq', 'replay', 'hooks', '--json'], noStore);
    assert.deepEqual(JSON.parse(replay.stdout), { replayed: 1, relay: 'running' });
  });

  it('a message with many attempts stays bounded through the CLI', async () => {
    store.messages.push({
      id: 'long',
      receivedAt: T0,
      source: 'http',
      event: {},
      deliveries: [
        {
          destination: 'hooks',
          status: 'pending',
          attempts: Array.from({ length: MAX_ATTEMPTS_SHOWN * 3 }, (_, i) => ({
            at: T0 + i,
            durationMs: 1,
            error: 'x',
          })),
        },
      ],
    });
    const show = await cli(running(), ['messages', 'show', 'long'], noStore);
    assert.match(
      show.stdout,
      /hooks: pending, 300 attempts\n {2}\(200 earlier attempts not shown\)/,
    );
    assert.equal(show.stdout.trim().split('\n').length, 4 + 2 + MAX_ATTEMPTS_SHOWN);
  });
});
