// Guide: The relay, `eventsinks relay` (docs/guide/relay.md).
// Run: node --import tsx examples/guide-relay.ts
//
// Runs the relay's command line (packages/relay/src/cli.ts) as a child process, as `npx eventsinks`
// would, on a temp directory: a config with HTTP ingest on a free port, a stdout destination
// and a signed webhook to a receiver on 127.0.0.1. It POSTs an event, sees it printed and
// delivered (signed, with the id the relay answered), stops the relay with SIGTERM and checks
// that it exits 0.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { verifyWebhook } from 'eventsinks/http';

const CLI = fileURLToPath(new URL('../packages/relay/src/cli.ts', import.meta.url));
// Resolved here: the relay runs in its temp dir, where `--import tsx` would not resolve.
const TSX = import.meta.resolve('tsx');

const secret = `whsec_${randomBytes(32).toString('base64')}`;
const env = { ...process.env, HOOK_SECRET: secret };

// The webhook receiver: verifies each request's signature and records its id and body.
const received: { id: string; body: unknown }[] = [];
const server = createServer((req, res) => {
  const chunks: Uint8Array[] = [];
  req.on('data', (chunk: Uint8Array) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    verifyWebhook(secret, req.headers, body).then(
      ({ id }) => {
        received.push({ id, body: JSON.parse(body.toString()) as unknown });
        res.writeHead(204).end();
      },
      () => res.writeHead(401).end(),
    );
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;

const dir = mkdtempSync(join(tmpdir(), 'eventsinks-guide-relay-'));
writeFileSync(
  join(dir, 'relay.yaml'),
  `
server: { listen: 127.0.0.1:0 } # a free port: the relay prints the one it got
dataDir: ./data
drainTimeout: 5s
log: { level: warn }
sources:
  - { type: http, path: /events }
destinations:
  - { name: out, type: stdout }
  - name: hooks
    type: webhook
    url: ${hookUrl}
    signing: { secret: "\${HOOK_SECRET}" }
    ignore: { test: true }
    retry: { maxAttempts: 3, backoff: { base: 100ms, factor: 100ms, max: 1s } }
`,
);
// The same file with a bare number where a duration belongs.
writeFileSync(join(dir, 'bad.yaml'), 'drainTimeout: 5\n');

/** Runs `eventsinks <args>` in the temp dir; resolves when it exits. */
function eventsinks(args: string[]) {
  const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (output.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output.stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output, exited };
}

async function waitFor(what: string, condition: () => boolean, ms = 8_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const relay = eventsinks(['relay', '--config', 'relay.yaml']);
try {
  // 1. `eventsinks validate` accepts the config, and rejects a bare-number duration (exit 78).
  const valid = eventsinks(['validate', '--config', 'relay.yaml']);
  const invalid = eventsinks(['validate', '--config', 'bad.yaml']);
  assert.equal((await valid.exited).code, 0, valid.output.stderr);
  assert.match(valid.output.stdout, /ok \(2 destinations, 1 source\)/);
  assert.equal((await invalid.exited).code, 78);
  assert.match(invalid.output.stderr, /drainTimeout.*a bare number is not a duration/);
  console.log('validate: relay.yaml ok; a bare number as a duration: exit 78');

  // 2. The relay starts and says where it listens (on stderr).
  let url = '';
  await waitFor('the relay to listen', () => {
    assert.equal(relay.child.exitCode, null, `the relay exited:\n${relay.output.stderr}`);
    url = /listening on (http:\/\/\S+)/.exec(relay.output.stderr)?.[1] ?? '';
    return url !== '';
  });
  assert.equal((await fetch(`${url}/readyz`)).status, 200);

  // 3. POST /events: 202 once the event is in the store, with a delivery per matching destination.
  // As `curl -d '{"hello":"world"}' localhost:8080/events` sends it: the relay goes by the
  // body's shape, not by the form content type curl puts on it.
  const post = (body: string) =>
    fetch(`${url}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
  const accepted = await post('{"hello":"world"}');
  assert.equal(accepted.status, 202);
  const { accepted: count, ids } = (await accepted.json()) as { accepted: number; ids: string[] };
  assert.equal(count, 1);
  // `ignore: { test: true }`: stored for stdout only, never sent to the webhook.
  assert.equal((await post('{"hello":"test","test":true}')).status, 202);
  assert.equal((await post('{"hello":')).status, 400); // malformed: nothing stored

  // 4. Delivered: printed on stdout, and POSTed to the webhook, signed, with the event's id
  // as webhook-id.
  await waitFor('stdout', () => relay.output.stdout.split('\n').length > 2);
  await waitFor('the webhook', () => received.length === 1);
  assert.deepEqual(relay.output.stdout.trim().split('\n'), [
    '{"hello":"world"}',
    '{"hello":"test","test":true}',
  ]);
  assert.deepEqual(received, [{ id: ids[0], body: { hello: 'world' } }]);
  console.log(`POST /events → 202, id ${ids[0]}; printed on stdout and delivered, signed`);

  const metrics = await (await fetch(`${url}/metrics`)).text();
  assert.match(metrics, /eventsinks_relay_delivered_events_total\{destination="hooks"\} 1\b/);
  assert.match(metrics, /eventsinks_relay_delivered_events_total\{destination="out"\} 2\b/);

  // 5. The message log: the event with a delivery per destination and each attempt.
  const message = (await (await fetch(`${url}/admin/messages/${ids[0]}`)).json()) as {
    deliveries: { destination: string; status: string; attempts: { status?: number }[] }[];
  };
  const hooks = message.deliveries.find((d) => d.destination === 'hooks');
  assert.equal(hooks?.status, 'delivered');
  assert.equal(hooks.attempts[0]?.status, 204); // what the receiver above answers
  assert.equal(message.deliveries.find((d) => d.destination === 'out')?.status, 'delivered');
  console.log(`GET /admin/messages/${ids[0]} → delivered to hooks (204) and out`);

  // 6. SIGTERM: stop accepting, drain, exit 0. Everything is in one store, data/relay.db.
  relay.child.kill('SIGTERM');
  const { code, signal } = await relay.exited;
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, relay.output.stderr);
  assert.deepEqual(
    readdirSync(join(dir, 'data'))
      .filter((f) => f.endsWith('.db'))
      .sort(),
    ['relay.db'],
  );
  console.log('SIGTERM → exit 0; data/ holds one store, relay.db');
} finally {
  if (relay.child.exitCode === null && relay.child.signalCode === null) {
    relay.child.kill('SIGKILL');
  }
  server.closeAllConnections();
  server.close();
  rmSync(dir, { recursive: true, force: true });
}
