// The relay end to end: a child process on temp dirs and free ports, real HTTP receivers.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  FAST_RETRY,
  closeAll,
  freePort,
  Receiver,
  post,
  runCli,
  startRelay,
  tempDir,
  waitFor,
  writeConfig,
  type RelayProcess,
} from './harness.js';

after(closeAll);

async function relayWith(
  yaml: string,
  dir = tempDir(),
  stdin = false,
): Promise<RelayProcess & { dir: string }> {
  const file = writeConfig(dir, yaml);
  const relay = await startRelay(file, { cwd: dir, stdin });
  return Object.assign(relay, { dir });
}

async function stop(relay: RelayProcess): Promise<void> {
  relay.child.kill('SIGTERM');
  const { code } = await relay.exited;
  assert.equal(code, 0, relay.stderr());
}

describe('relay end to end', () => {
  it('events over HTTP and stdin reach two webhooks and a file, in order', async () => {
    const a = await new Receiver().start();
    const b = await new Receiver().start();
    const dir = tempDir();
    const relay = await relayWith(
      `
server: { listen: 127.0.0.1:0 }
sources: [{ type: http }, { type: stdin }]
destinations:
  - name: a
    type: webhook
    url: ${a.url}
    # Strict order is what concurrency 1 promises (the default, 16, promises none).
    concurrency: 1
    signing: { secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }
  - { name: b, type: webhook, url: ${b.url}, concurrency: 1, batch: { maxSize: 10, maxDelay: 20ms } }
  - { name: archive, type: file, path: ${join(dir, 'out.ndjson')} }
`,
      dir,
      true,
    );
    const first = await post(relay.url, JSON.stringify([{ seq: 1 }, { seq: 2 }]));
    assert.equal(first.status, 202);
    assert.equal((first.json as { accepted: number }).accepted, 2);
    assert.equal(
      (await post(relay.url, '{"seq":3}\n{"seq":4}\n', { 'content-type': 'application/x-ndjson' }))
        .status,
      202,
    );
    relay.child.stdin!.write('{"seq":5}\n{"seq":6}\n');
    await waitFor(() => a.received.length === 6 && b.received.length === 6, 20_000, 'deliveries');
    const file = join(dir, 'out.ndjson');
    await waitFor(
      () => existsSync(file) && readFileSync(file, 'utf8').trim().split('\n').length === 6,
      10_000,
      'the file',
    );
    assert.deepEqual(a.seqs(), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(b.seqs(), [1, 2, 3, 4, 5, 6]);
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { seq: number }).seq);
    assert.deepEqual(lines, [1, 2, 3, 4, 5, 6]);
    // Each event has its own webhook-id; a batch request carries one id for the batch.
    assert.equal(new Set(a.received.map((r) => r.id)).size, 6);
    await stop(relay);
    await a.close();
    await b.close();
  });

  it('a receiver down for 5 s does not delay the other; it gets everything afterwards', async () => {
    const up = await new Receiver().start();
    const down = await new Receiver().start();
    down.status = 503;
    const relay = await relayWith(`
server: { listen: 127.0.0.1:0 }
destinations:
  - { name: up, type: webhook, url: ${up.url} }
  - name: down
    type: webhook
    concurrency: 1
    url: ${down.url}${FAST_RETRY}
`);
    const started = Date.now();
    for (let i = 0; i < 20; i++)
      assert.equal((await post(relay.url, JSON.stringify({ seq: i }))).status, 202);
    await waitFor(() => up.received.length === 20, 10_000, 'the healthy receiver');
    const healthyAfter = Date.now() - started;
    assert.ok(healthyAfter < 4_000, `healthy receiver took ${healthyAfter} ms`);
    assert.equal(down.received.length, 0);
    await new Promise((r) => setTimeout(r, Math.max(0, 5_000 - (Date.now() - started))));
    down.status = 200;
    await waitFor(() => down.received.length === 20, 20_000, 'the recovered receiver');
    assert.deepEqual(
      down.seqs(),
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.ok(down.requests > 20, 'the down receiver was retried');
    await stop(relay);
    await up.close();
    await down.close();
  });

  it('bad requests get 413 / 400 / 401 and store nothing', async () => {
    const receiver = await new Receiver().start();
    const relay = await relayWith(`
server: { listen: 127.0.0.1:0 }
sources: [{ type: http, token: s3cret, maxBodySize: 1kb }]
destinations: [{ name: a, type: webhook, url: ${receiver.url} }]
`);
    const auth = { authorization: 'Bearer s3cret' };
    assert.equal((await post(relay.url, '{"seq":1}')).status, 401);
    assert.equal(
      (await post(relay.url, '{"seq":1}', { authorization: 'Bearer wrong' })).status,
      401,
    );
    const big = JSON.stringify({ seq: 1, pad: 'x'.repeat(5000) });
    assert.equal((await post(relay.url, big, auth)).status, 413);
    const malformed = await post(relay.url, '{"seq":1}\n{"seq":2}\n{oops}\n', auth);
    assert.equal(malformed.status, 400);
    assert.match(String((malformed.json as { error: string }).error), /line 3/);
    assert.equal((await post(relay.url, '[{"seq":1}, 5]', auth)).status, 400);
    assert.equal((await post(relay.url, '', auth)).status, 400);
    assert.equal((await post(relay.url, '{"seq":42}', auth)).status, 202);
    await waitFor(() => receiver.received.length === 1, 10_000, 'the one good event');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(receiver.seqs(), [42]);
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    assert.match(
      metrics,
      /eventsinks_relay_rejected_requests_total\{source="http",status="401",reason="unauthorized"\} 2/,
    );
    assert.match(metrics, /eventsinks_relay_received_events_total\{source="http"\} 1\b/);
    await stop(relay);
    await receiver.close();
  });

  it('/metrics matches what the receivers counted; /healthz and /readyz answer', async () => {
    const a = await new Receiver().start();
    const b = await new Receiver().start();
    const relay = await relayWith(`
server: { listen: 127.0.0.1:0 }
destinations:
  - { name: a, type: webhook, url: ${a.url} }
  - { name: b, type: webhook, url: ${b.url}, match: { kind: keep } }
`);
    for (let i = 0; i < 30; i++) {
      await post(relay.url, JSON.stringify({ seq: i, kind: i % 3 === 0 ? 'keep' : 'other' }));
    }
    await waitFor(() => a.received.length === 30 && b.received.length === 10, 15_000, 'deliveries');
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    const value = (name: string): number =>
      Number(
        new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(metrics)?.[1],
      );
    assert.equal(
      value('eventsinks_relay_delivered_events_total{destination="a"}'),
      a.received.length,
    );
    assert.equal(
      value('eventsinks_relay_delivered_events_total{destination="b"}'),
      b.received.length,
    );
    assert.equal(value('eventsinks_relay_received_events_total{source="http"}'), 30);
    assert.equal(value('eventsinks_relay_queue_depth{destination="a"}'), 0);
    assert.equal(value('eventsinks_relay_delivery_latency_seconds_count{destination="a"}'), 30);
    assert.equal((await fetch(`${relay.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${relay.url}/readyz`)).status, 200);
    await stop(relay);
    await a.close();
    await b.close();
  });

  it('a 4xx destination fills the dead letter; dlq replay delivers it once the receiver is fixed', async () => {
    const receiver = await new Receiver().start();
    receiver.status = 400;
    const dir = tempDir();
    // A fixed port: `dlq` finds the running relay through the configured address.
    const yaml = `
server: { listen: 127.0.0.1:${await freePort()} }
destinations:
  - name: hooks
    type: webhook
    concurrency: 1
    url: ${receiver.url}${FAST_RETRY}
`;
    const relay = await relayWith(yaml, dir);
    for (let i = 0; i < 5; i++) await post(relay.url, JSON.stringify({ seq: i }));
    // 400 is not retryable: each event is tried once and dead-lettered.
    await waitFor(() => receiver.requests === 5, 10_000, 'five refused requests');
    await stop(relay);
    assert.equal(receiver.requests, 5);
    const listed = await runCli(['dlq', 'list', 'hooks', '--json', '--config', 'relay.yaml'], {
      cwd: dir,
    });
    assert.equal(listed.code, 0, listed.stderr);
    const entries = listed.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { status: number; envelope: { event: { seq: number } } });
    assert.deepEqual(
      entries.map((e) => e.envelope.event.seq),
      [0, 1, 2, 3, 4],
    );
    assert.ok(entries.every((e) => e.status === 400));

    receiver.status = 200;
    // Replay while the relay runs (through its admin endpoint) …
    const relay2 = await relayWith(yaml, dir);
    const replayed = await runCli(['dlq', 'replay', 'hooks', '--config', 'relay.yaml'], {
      cwd: dir,
    });
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.match(replayed.stdout, /replayed 5/);
    await waitFor(() => receiver.received.length === 5, 10_000, 'replayed deliveries');
    assert.deepEqual(receiver.seqs(), [0, 1, 2, 3, 4]);
    const empty = await runCli(['dlq', 'list', 'hooks', '--json', '--config', 'relay.yaml'], {
      cwd: dir,
    });
    assert.equal(empty.stdout.trim(), '');
    await stop(relay2);
    await receiver.close();
  });

  it('SIGTERM drains within the deadline, exits 0 and leaves the rest on disk for next time', async () => {
    const receiver = await new Receiver().start();
    receiver.delay = 100;
    const dir = tempDir();
    const yaml = `
server: { listen: 127.0.0.1:0 }
drainTimeout: 1s
destinations: [{ name: slow, type: webhook, concurrency: 1, url: ${receiver.url} }]
`;
    const relay = await relayWith(yaml, dir);
    const events = Array.from({ length: 60 }, (_, seq) => ({ seq }));
    assert.equal((await post(relay.url, JSON.stringify(events))).status, 202);
    const started = Date.now();
    relay.child.kill('SIGTERM');
    const { code } = await relay.exited;
    const took = Date.now() - started;
    assert.equal(code, 0, relay.stderr());
    assert.ok(took < 8_000, `drain took ${took} ms`);
    const deliveredBefore = receiver.received.length;
    assert.ok(deliveredBefore < 60, 'the deadline cut the drain short');
    receiver.delay = 0;
    const relay2 = await relayWith(yaml, dir);
    await waitFor(() => new Set(receiver.seqs()).size === 60, 20_000, 'the rest after restart');
    await stop(relay2);
    const seqs = receiver.seqs();
    // In order across the restart; an event in flight at the deadline may come twice.
    for (let i = 1; i < seqs.length; i++)
      assert.ok(seqs[i]! >= seqs[i - 1]! - 1, `order: ${seqs.join(',')}`);
    await receiver.close();
  });
});

describe('relay configuration', () => {
  const cases: [string, string, RegExp][] = [
    [
      'unknown key',
      'destinations: [{ name: a, type: stdout, colour: red }]',
      /destinations\[0\]\.colour: unknown key "colour"/,
    ],
    ['bare duration', 'drainTimeout: 20', /:1:\d+ drainTimeout: a bare number is not a duration/],
    [
      'missing env var',
      'sources: [{ type: http, token: "${NO_SUCH_VAR_EVER}" }]',
      /sources\[0\]\.token: environment variable NO_SUCH_VAR_EVER is not set/,
    ],
    [
      'bad URL',
      'destinations: [{ name: a, type: webhook, url: "ftp://x" }]',
      /destinations\[0\]\.url: expected an http:\/\/ or https:\/\/ URL/,
    ],
    [
      'required message',
      'dataDir: "${NO_SUCH_DIR:?set NO_SUCH_DIR to the data folder}"',
      /dataDir: \$\{NO_SUCH_DIR\}: set NO_SUCH_DIR to the data folder/,
    ],
  ];
  for (const [name, yaml, expected] of cases) {
    it(`${name}: exit 78 with the path`, async () => {
      const dir = tempDir();
      writeConfig(dir, `${yaml}\n`);
      for (const command of ['validate', 'relay']) {
        const result = await runCli([command, '--config', 'relay.yaml'], { cwd: dir });
        assert.equal(result.code, 78, `${command}: ${result.stderr}`);
        assert.match(result.stderr, expected);
      }
    });
  }

  it('validate accepts the example configuration', async () => {
    const result = await runCli(['validate', '--config', 'examples/relay.yaml'], {
      env: {
        RELAY_TOKEN: 't',
        BILLING_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        AUDIT_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      },
    });
    assert.equal(result.code, 0, result.stderr);
  });
});
