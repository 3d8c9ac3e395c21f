// Draining end to end (issue 12, item 4): after SIGTERM the listener stays open until the end;
// every client, kept-alive or new, gets an answer saying so instead of a refused connection or
// a reset.
import assert from 'node:assert/strict';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { after, describe, it } from 'node:test';
import {
  FAST_RETRY,
  closeAll,
  post,
  Receiver,
  runCli,
  startRelay,
  tempDir,
  waitFor,
  writeConfig,
} from './harness.js';

after(closeAll);

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  reused: boolean;
}

function call(
  agent: Agent,
  url: string,
  method: 'GET' | 'POST' = 'GET',
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      agent,
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: text,
          reused: req.reusedSocket,
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('drain', () => {
  it('while draining: ingest 503 + Retry-After, /readyz 503, /healthz /metrics 200, admin answers; connection: close on kept-alive connections', async () => {
    const down = await new Receiver().start();
    down.status = 503;
    const dir = tempDir();
    const yaml = (listen: string): string => `
server: { listen: ${listen} }
drainTimeout: 10s
destinations:
  - name: hook
    type: webhook
    url: ${down.url}${FAST_RETRY}
`;
    const relay = await startRelay(writeConfig(dir, yaml('127.0.0.1:0')), { cwd: dir });
    // For `dlq list`: the same configuration, with the port the relay got.
    const file = writeConfig(dir, yaml(new URL(relay.url).host));
    assert.equal((await post(relay.url, '{"n":1}')).status, 202);

    // One kept-alive connection per kind of request, opened before the signal.
    const paths = {
      healthz: '/healthz',
      metrics: '/metrics',
      readyz: '/readyz',
      ingest: '/events',
    };
    const agents = Object.fromEntries(
      Object.keys(paths).map((k) => [k, new Agent({ keepAlive: true, maxSockets: 1 })]),
    ) as Record<keyof typeof paths, Agent>;
    for (const [kind, path] of Object.entries(paths) as [keyof typeof paths, string][]) {
      const before = await call(
        agents[kind],
        `${relay.url}${path}`,
        kind === 'ingest' ? 'POST' : 'GET',
        kind === 'ingest' ? '{"n":2}' : undefined,
      );
      assert.ok(before.status === 200 || before.status === 202, `${kind}: ${before.status}`);
      assert.notEqual(before.headers.connection, 'close');
    }

    relay.child.kill('SIGTERM');
    await waitFor(() => /"msg":"draining"/.test(relay.stderr()), 10_000, 'the drain to start');

    const ingest = await call(agents.ingest, `${relay.url}/events`, 'POST', '{"n":3}');
    assert.equal(ingest.status, 503, ingest.body);
    assert.ok(ingest.reused, 'the kept-alive connection was still open');
    assert.equal(ingest.headers.connection, 'close');
    assert.ok(Number(ingest.headers['retry-after']) > 0);
    assert.match(ingest.body, /nothing was accepted/);

    const readyz = await call(agents.readyz, `${relay.url}/readyz`);
    assert.equal(readyz.status, 503);
    assert.ok(readyz.reused);
    assert.equal(readyz.headers.connection, 'close');

    for (const kind of ['healthz', 'metrics'] as const) {
      const answer = await call(agents[kind], `${relay.url}${paths[kind]}`);
      assert.equal(answer.status, 200, `${kind} while draining`);
      assert.ok(answer.reused, `${kind}: the kept-alive connection was still open`);
      assert.equal(answer.headers.connection, 'close');
    }

    // New connections are answered too, not refused.
    const fresh = await post(relay.url, '{"n":4}');
    assert.equal(fresh.status, 503);
    const admin = await fetch(`${relay.url}/admin/dlq/hook`);
    assert.equal(admin.status, 200);
    assert.deepEqual(await admin.json(), []);
    const cli = await runCli(['dlq', 'list', 'hook', '--config', file], { cwd: dir });
    assert.equal(cli.code, 0, cli.stderr);
    assert.doesNotMatch(cli.stderr, /in use/);

    const { code } = await relay.exited;
    assert.equal(code, 0, relay.stderr());
    for (const agent of Object.values(agents)) agent.destroy();
    await down.close();
  });
});
