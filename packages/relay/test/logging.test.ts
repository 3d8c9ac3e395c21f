// What an operator sees in the relay's log: a destination's state changes at warn/info with the
// last error (said once, not repeated through its causes), failing attempts summarised instead
// of flooding, poison messages from broker sources, readable lines on a terminal, and the level
// from --log-level or EVENTSINKS_LOG_LEVEL.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { createClient } from 'redis';
import { DeliveryHealth } from '../src/health.js';
import { describeError } from '../src/logger.js';
import {
  FAST_RETRY,
  PACKAGE,
  closeAll,
  freePort,
  post,
  startRelay,
  tempDir,
  waitFor,
  writeConfig,
} from './harness.js';

after(closeAll);

interface Line {
  level: number;
  msg: string;
  destination?: string;
  lastError?: string;
  failedAttempts?: number;
  [key: string]: unknown;
}

function jsonLines(text: string): Line[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
}

function capture(): { lines: Line[]; logger: pino.Logger } {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n')) {
        if (text) lines.push(JSON.parse(text) as Line);
      }
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, stream) };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('DeliveryHealth', () => {
  it('warns once when failing, at most once per interval with counts, info on recovery', async () => {
    const { lines, logger } = capture();
    let now = 1_000_000;
    const health = new DeliveryHealth(logger, { interval: 10_000, now: () => now });
    const refused = new Error('connect ECONNREFUSED 127.0.0.1:1');
    for (let i = 0; i < 50; i++) {
      health.failed(refused);
      now += 100; // 50 failures in 5 s: only the first one is a line
    }
    await flush();
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 40);
    assert.match(lines[0]!.msg, /destination failing: Error: connect ECONNREFUSED/);
    now += 5_000;
    health.failed(refused); // 10 s after the first line: one summary with the count
    health.failed(refused);
    await flush();
    assert.equal(lines.length, 2);
    assert.equal(lines[1]!.level, 40);
    assert.equal(lines[1]!.failedAttempts, 50);
    assert.match(lines[1]!.msg, /still failing: 50 failed attempts in the last 10s/);
    health.succeeded();
    health.succeeded();
    await flush();
    assert.equal(lines.length, 3);
    assert.equal(lines[2]!.level, 30);
    assert.equal(lines[2]!.failedAttempts, 52);
    assert.match(lines[2]!.msg, /healthy again after 52 failed attempts/);
    assert.equal(health.failing, false);
  });
});

describe('describeError', () => {
  it('says each cause once', () => {
    const inner = new Error('connect ECONNREFUSED 127.0.0.1:9');
    const fetchFailed = new TypeError('fetch failed', { cause: inner });
    const outer = new Error('fetch failed (connect ECONNREFUSED 127.0.0.1:9)', {
      cause: fetchFailed,
    });
    assert.equal(describeError(outer), 'fetch failed (connect ECONNREFUSED 127.0.0.1:9)');
    assert.equal(describeError(fetchFailed), 'fetch failed: connect ECONNREFUSED 127.0.0.1:9');
  });
});

function listenOn(port: number): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200).end());
  });
  // A port taken meanwhile by another process fails the test with its reason, not uncaught.
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('relay log', () => {
  it('a failing webhook is a warn line with the error said once; recovery is an info line', async () => {
    const port = await freePort();
    const dir = tempDir();
    const file = writeConfig(
      dir,
      `server: { listen: 127.0.0.1:0 }\ndataDir: ./data\ndestinations:\n  - name: hooks\n    type: webhook\n    url: http://127.0.0.1:${port}/hook${FAST_RETRY}\n`,
    );
    const relay = await startRelay(file, { cwd: dir });
    assert.equal((await post(relay.url, '{"n":1}')).status, 202);
    await waitFor(
      () => jsonLines(relay.stderr()).some((l) => /destination failing/.test(l.msg)),
      15_000,
      'a warn line for the failing destination',
    );
    // Retries every 20–300 ms for a while: still one line (the interval is 10 s).
    await new Promise((r) => setTimeout(r, 1500));
    const failing = jsonLines(relay.stderr()).filter((l) => /failing/.test(l.msg));
    assert.equal(failing.length, 1, relay.stderr());
    const [line] = failing;
    assert.equal(line!.level, 40);
    assert.equal(line!.destination, 'hooks');
    assert.match(line!.lastError!, /ECONNREFUSED/);
    assert.equal(line!.lastError!.split('ECONNREFUSED').length, 2, `said once: ${line!.lastError}`);
    assert.equal(line!.msg.split('ECONNREFUSED').length, 2, `said once: ${line!.msg}`);
    assert.ok(!jsonLines(relay.stderr()).some((l) => l.level < 30), 'no debug lines at info');

    const server = await listenOn(port);
    try {
      await waitFor(
        () => jsonLines(relay.stderr()).some((l) => /healthy again/.test(l.msg)),
        15_000,
        'an info line for the recovery',
      );
      const recovered = jsonLines(relay.stderr()).find((l) => /healthy again/.test(l.msg))!;
      assert.equal(recovered.level, 30);
      assert.ok(recovered.failedAttempts! >= 2, String(recovered.failedAttempts));
      relay.child.kill('SIGTERM');
      assert.equal((await relay.exited).code, 0);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('--log-level and EVENTSINKS_LOG_LEVEL set the level (the flag wins)', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, 'server: { listen: 127.0.0.1:0 }\ndataDir: ./data\n');
    const quiet = await startRelay(file, { cwd: dir, env: { EVENTSINKS_LOG_LEVEL: 'warn' } });
    quiet.child.kill('SIGTERM');
    await quiet.exited;
    assert.ok(!/relay ready/.test(quiet.stderr()), quiet.stderr());

    const port = await freePort();
    const file2 = writeConfig(
      dir,
      `server: { listen: 127.0.0.1:0 }\ndataDir: ./data2\ndestinations:\n  - name: hooks\n    type: webhook\n    url: http://127.0.0.1:${port}/hook${FAST_RETRY}\n`,
    );
    const child = spawn(
      process.execPath,
      [
        '--import',
        import.meta.resolve('tsx'),
        new URL('src/cli.ts', PACKAGE).pathname,
        'relay',
        '--config',
        file2,
        '--log-level',
        'debug',
      ],
      { cwd: dir, env: { ...process.env, EVENTSINKS_LOG_LEVEL: 'warn' } },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    try {
      await waitFor(() => /listening on (http:\/\/\S+)/.test(stderr), 30_000, 'the relay');
      const url = /listening on (http:\/\/\S+)/.exec(stderr)![1]!;
      await post(url, '{"n":1}');
      await waitFor(
        () => jsonLines(stderr).some((l) => l.level === 20 && /attempt failed/.test(l.msg)),
        15_000,
        'a debug line per failed attempt',
      );
      assert.ok(/relay ready/.test(stderr));
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('on a terminal the log is readable lines, not JSON', async (t) => {
    // `script` runs the relay on a pseudo-terminal.
    const dir = tempDir();
    writeConfig(dir, 'server: { listen: 127.0.0.1:0 }\ndataDir: ./data\n');
    const cli = new URL('src/cli.ts', PACKAGE).pathname;
    const command = `${process.execPath} --import ${import.meta.resolve('tsx')} ${cli} relay`;
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => {
      child.on('error', () => resolve(null));
      child.on('exit', resolve);
    });
    const relayFile = join(dir, 'data', 'relay.json');
    await Promise.race([
      exited,
      waitFor(() => existsSync(relayFile) && /listening on/.test(out), 30_000, 'the relay'),
    ]);
    if (existsSync(relayFile)) {
      const { pid } = JSON.parse(readFileSync(relayFile, 'utf8')) as { pid: number };
      process.kill(pid, 'SIGINT');
    }
    const code = await exited;
    if (code === null) return t.skip('no `script` command to make a terminal');
    assert.match(out, /INFO.*relay ready/, out);
    assert.doesNotMatch(out, /"level":30/);
  });
});

describe('relay log: poison messages from broker sources', () => {
  it('an undecodable redis entry is a warn line', async (t) => {
    const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const client = createClient({
      url,
      socket: { reconnectStrategy: false, connectTimeout: 2000 },
    });
    client.on('error', () => {});
    try {
      await client.connect();
    } catch {
      if (process.env.CI) throw new Error(`Redis is required in CI (${url})`);
      return t.skip('Redis is not running');
    }
    const stream = `relay-poison-${process.pid}-${Date.now()}`;
    try {
      const dir = tempDir();
      const file = writeConfig(
        dir,
        `server: { listen: 127.0.0.1:0 }\ndataDir: ./data\nsources: [{ type: redis, url: "${url}", stream: ${stream} }]\ndestinations: [{ name: out, type: file, path: ./out.ndjson }]\n`,
      );
      const relay = await startRelay(file, { cwd: dir });
      await client.xAdd(stream, '*', { data: 'not json {' });
      await waitFor(
        () => jsonLines(relay.stderr()).some((l) => /poison message/.test(l.msg)),
        15_000,
        'a poison message line',
      );
      const line = jsonLines(relay.stderr()).find((l) => /poison message/.test(l.msg))!;
      assert.equal(line.level, 40);
      assert.equal(line.deadLetterStream, `${stream}:dlq`);
      relay.child.kill('SIGTERM');
      await relay.exited;
    } finally {
      await client.del([stream, `${stream}:dlq`]);
      client.destroy();
    }
  });
});
