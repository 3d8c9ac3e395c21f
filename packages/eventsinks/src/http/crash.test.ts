// Issue 12, items 8 and 9: the durable, signed fan-out a user builds from the guides, SIGKILLed.
// A child process writes events through DurableQueue → WebhookSink (or → RetryingSink →
// HttpSink) to a receiver in this process, is killed, and is started again on the same file.
// Every acknowledged event must reach the receiver with a valid signature (checked with the
// official `standardwebhooks` package), and every request for one event must carry the same
// webhook-id, before the kill and after the restart, so a receiver that drops duplicates by
// webhook-id processes each event once.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { reply, sleep, startServer, type TestServer } from './test-utils.js';

const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
type Composition = 'webhook-sink' | 'retrying-http-sink' | 'endpoint';

// Acks ('A n') go to a log file with writeSync, so a line written before the kill survives it.
const program = `
import { openSync, writeSync } from 'node:fs';
import { Breaker, RetryingSink } from './src/index.ts';
import { Endpoint, HttpSink, WebhookSink, httpRetryStrategy } from './src/http/index.ts';
import { DurableQueue } from './src/sqlite/index.ts';
const { CRASH_PATH: path, CRASH_LOG, CRASH_URL: url, CRASH_SECRET: secret, CRASH_COMPOSITION,
  CRASH_MODE, CRASH_START, CRASH_COUNT } = process.env;
const log = openSync(CRASH_LOG, 'a');
const dst = CRASH_COMPOSITION === 'webhook-sink'
  ? new WebhookSink(url, { signing: { secret }, threshold: 1, backoff: 20 })
  : CRASH_COMPOSITION === 'endpoint'
    ? new Endpoint(url, { signing: { secret }, threshold: 1, backoff: 20 })
    : new RetryingSink(new HttpSink(url, { signing: { secret } }), httpRetryStrategy(new Breaker(1, 20)));
const queue = new DurableQueue(dst, { path });
process.stdout.write('R\\n');
if (CRASH_MODE === 'drain') {
  await queue.close();
  writeSync(log, 'X\\n');
} else {
  const start = Number(CRASH_START);
  for (let n = start; n < start + Number(CRASH_COUNT); n++) {
    await queue.write({ n, payload: 'x'.repeat(n % 50) });
    writeSync(log, 'A ' + n + '\\n');
  }
  process.stdout.write('ACKED\\n');
  setInterval(() => {}, 1000); // stays up, delivering, until killed
}
`;

interface Request {
  n: number;
  id: string;
  status: number;
  run: number;
}

interface Child {
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  stdout: () => string;
  acked: () => number[];
  kill(): void;
}

let logs = 0;

function start(
  path: string,
  url: string,
  composition: Composition,
  mode: 'write' | 'drain',
  first = 0,
  count = 0,
): Child {
  const logPath = `${path}.${++logs}.log`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], {
    cwd: new URL('../..', import.meta.url),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      CRASH_PATH: path,
      CRASH_LOG: logPath,
      CRASH_URL: url,
      CRASH_SECRET: secret,
      CRASH_COMPOSITION: composition,
      CRASH_MODE: mode,
      CRASH_START: String(first),
      CRASH_COUNT: String(count),
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // A child that hangs (it never should) is killed, and then fails the checks.
  const watchdog = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve) =>
      child.on('close', (code, signal) => {
        clearTimeout(watchdog);
        resolve({ code, signal, stderr });
      }),
  );
  return {
    exit,
    stdout: () => stdout,
    acked: () => {
      let text = '';
      try {
        text = readFileSync(logPath, 'utf8');
      } catch {
        // No log yet: nothing acknowledged.
      }
      return text
        .split('\n')
        .filter((line) => line.startsWith('A '))
        .map((line) => Number(line.slice(2)));
    },
    kill: () => child.kill('SIGKILL'),
  };
}

async function until(condition: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('durable, signed fan-out crash test', () => {
  let server: TestServer;
  const root = mkdtempSync(join(tmpdir(), 'eventsinks-webhook-crash-'));
  const requests: Request[] = [];
  let run = 0;
  // Decides the status of each request; replaced per scenario.
  let decide: (n: number) => number | Promise<number> = () => 200;
  const webhook = new Webhook(secret);
  let badSignatures = 0;

  before(async () => {
    server = await startServer(async (received, res) => {
      const headers: Record<string, string> = {};
      for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
        headers[name] = String(received.headers[name]);
      }
      let n: number;
      try {
        n = (webhook.verify(received.body.toString('utf8'), headers) as { n: number }).n;
      } catch {
        badSignatures++;
        reply(res, 400);
        return;
      }
      const status = await decide(n);
      requests.push({ n, id: headers['webhook-id']!, status, run });
      reply(res, status);
    });
  });
  after(async () => {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** Every acked event delivered, each event under one id, distinct events under distinct ids. */
  function check(acked: Set<number>, label: string): void {
    assert.equal(badSignatures, 0, `${label}: requests whose signature did not verify`);
    const idsOf = new Map<number, Set<string>>();
    for (const r of requests) {
      const ids = idsOf.get(r.n) ?? new Set<string>();
      ids.add(r.id);
      idsOf.set(r.n, ids);
    }
    const delivered = new Set(requests.filter((r) => r.status === 200).map((r) => r.n));
    const lost = [...acked].filter((n) => !delivered.has(n));
    assert.deepEqual(lost, [], `${label}: acknowledged events never delivered`);
    for (const [n, ids] of idsOf) {
      assert.equal(ids.size, 1, `${label}: event ${n} was sent under ${[...ids].join(', ')}`);
    }
    const all = [...idsOf.values()].map((ids) => [...ids][0]);
    assert.equal(new Set(all).size, all.length, `${label}: two events shared a webhook-id`);
  }

  for (const composition of ['webhook-sink', 'retrying-http-sink'] as const) {
    it(`${composition}: an event attempted before SIGKILL arrives after the restart under the same webhook-id`, async () => {
      requests.length = 0;
      badSignatures = 0;
      run = 1;
      const path = join(root, `${composition}.db`);
      const url = `${server.origin}/${composition}`;
      // Run 1: events 1–3 are taken, event 4 is answered 500 every time, so it is retried
      // (and 5–20 wait behind it in the file) when the kill comes.
      decide = (n) => (n < 4 ? 200 : 500);
      const child = start(path, url, composition, 'write', 1, 20);
      await until(
        () => child.stdout().includes('ACKED') && requests.filter((r) => r.n === 4).length >= 2,
        'every write acknowledged and event 4 attempted twice',
      );
      child.kill();
      const killed = await child.exit;
      assert.equal(killed.signal, 'SIGKILL', `the child ended on its own: ${killed.stderr}`);
      const before = requests.find((r) => r.n === 4)!.id;

      run = 2;
      decide = () => 200;
      const drain = start(path, url, composition, 'drain');
      const drained = await drain.exit;
      assert.equal(drained.code, 0, `the restarted child failed: ${drained.stderr}`);
      const afterRestart = requests.filter((r) => r.run === 2 && r.n === 4);
      assert.ok(afterRestart.length > 0, 'event 4 was delivered after the restart');
      assert.equal(afterRestart[0]!.id, before, 'event 4 kept its webhook-id across the restart');
      check(new Set(child.acked()), composition);
    });
  }

  it('endpoint: new DurableQueue(new Endpoint(url)) is refused, instead of losing events at a SIGKILL', async () => {
    requests.length = 0;
    badSignatures = 0;
    run = 1;
    const path = join(root, 'endpoint.db');
    const url = `${server.origin}/endpoint`;
    // Before the fix: the Endpoint's memory queue took the three events at once, the file let
    // them go, and after the kill (the receiver down meanwhile) nothing was left to deliver.
    decide = () => 503;
    const child = start(path, url, 'endpoint', 'write', 1, 3);
    const timer = setTimeout(() => child.kill(), 5_000);
    const exit = await child.exit;
    clearTimeout(timer);
    if (exit.signal === 'SIGKILL') {
      run = 2;
      decide = () => 200;
      await start(path, url, 'webhook-sink', 'drain').exit;
      check(new Set(child.acked()), 'endpoint');
    }
    assert.equal(exit.code, 1, 'the DurableQueue constructor refused the Endpoint');
    assert.match(exit.stderr, /TypeError: Expected `dst` to settle each write on delivery/);
    assert.match(exit.stderr, /WebhookSink/);
  });

  it('webhook-sink: killed at random moments 4 times, every acknowledged event arrives once by id', async () => {
    requests.length = 0;
    badSignatures = 0;
    const path = join(root, 'random.db');
    const url = `${server.origin}/random`;
    // A flaky, slow receiver: a backlog builds up, and attempts are in flight at the kills.
    decide = async () => {
      await sleep(Math.random() * 20);
      return Math.random() < 0.3 ? 503 : 200;
    };
    const acked = new Set<number>();
    for (run = 1; run <= 4; run++) {
      const child = start(path, url, 'webhook-sink', 'write', run * 1000, 40);
      await until(() => child.stdout().includes('R'), 'the child to open the queue');
      await sleep(100 + Math.random() * 500);
      child.kill();
      const killed = await child.exit;
      assert.equal(killed.signal, 'SIGKILL', `run ${run} ended on its own: ${killed.stderr}`);
      for (const n of child.acked()) acked.add(n);
    }
    decide = () => 200;
    const drain = start(path, url, 'webhook-sink', 'drain');
    const drained = await drain.exit;
    assert.equal(drained.code, 0, `the final drain failed: ${drained.stderr}`);
    const across = new Set(
      requests.filter((r) => requests.some((s) => s.n === r.n && s.run !== r.run)).map((r) => r.n),
    );
    console.log(
      `webhook crash test: acknowledged=${acked.size} requests=${requests.length} events-sent-in-two-runs=${across.size}`,
    );
    assert.ok(acked.size > 0, 'nothing was acknowledged: the test means nothing');
    check(acked, 'random kills');
  });
});
