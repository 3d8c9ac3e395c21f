// Nothing the AMQP adapters leave behind after close may keep the process alive: run a sink and
// a source in a child process and time its exit.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { AMQP_URL, IN_CI, brokerUnavailable, deleteTopology, uniqueName } from './test-utils.js';

const unavailable = await brokerUnavailable();

describe('AMQP process exit', { skip: IN_CI ? false : (unavailable ?? false) }, () => {
  const queue = uniqueName('exit');
  before(() => {
    if (unavailable) throw new Error(`${unavailable} (CI=true: a missing service is a failure)`);
  });
  after(async () => {
    await deleteTopology([queue, `${queue}.retry`, `${queue}.dlq`], [`${queue}.dlx`]);
  });

  it('a sink and a source exit promptly after close, with a retry pending', async () => {
    const program = `
import { AmqpSink, AmqpSource } from './src/amqp/index.ts';
const queue = ${JSON.stringify(queue)};
let seen = 0;
const source = new AmqpSource({
  // The first write fails: its retry waits in the retry queue (60 s) when we close.
  write(event) { if (event.n === 0) throw new Error('later'); seen++; },
  close() {},
}, { url: ${JSON.stringify(AMQP_URL)}, queue, retryDelay: 60_000, onError() {} });
await source.ready;
const sink = new AmqpSink({ url: ${JSON.stringify(AMQP_URL)}, queue, maxInFlight: 4, confirmTimeout: 60_000 });
await Promise.all([0, 1, 2, 3, 4].map((n) => sink.write({ n })));
while (seen < 4) await new Promise((r) => setTimeout(r, 10));
const started = Date.now();
await Promise.all([sink.close(), source.close()]);
console.log('closed in', Date.now() - started, 'ms');
`;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', program],
      { cwd: new URL('../..', import.meta.url), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const started = Date.now();
    const code = await new Promise<number | null>((resolve) => {
      const killer = setTimeout(() => child.kill('SIGKILL'), 40_000);
      child.on('exit', (c) => {
        clearTimeout(killer);
        resolve(c);
      });
    });
    const elapsed = Date.now() - started;
    assert.equal(code, 0, output);
    assert.match(output, /closed in \d+ ms/);
    // The confirm timeout and the retry delay were 60 s: exiting well under that proves that
    // no timer or socket outlived close().
    assert.ok(elapsed < 30_000, `took ${elapsed} ms: ${output}`);
  });
});
