// Nothing a pipeline leaves behind after close may keep the process alive: run one in a child
// process and time its exit.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';

const program = `
import { Broadcaster, Queue, RetryingSink, Breaker, ExponentialBackoff, Channel, Filter } from './packages/eventsinks/src/index.ts';
const failing = { write() { throw new Error('always fails'); }, close() {} };
const ok = { events: 0, write() { this.events++; }, close() {} };
const b = new Broadcaster([
  new Queue(new RetryingSink(failing, new Breaker(1, 60_000)), { onError() {} }),
  new Queue(new RetryingSink(failing, new ExponentialBackoff({ base: 30_000, max: 60_000 })), { onError() {} }),
  new Filter(new Queue(ok), () => true),
  new Channel(8),
]);
for (let i = 0; i < 5; i++) b.write(i);
await new Promise((r) => setTimeout(r, 50));
// Close the retrying sinks first so the queues' flush does not wait out a backoff.
const started = Date.now();
await b.close({ signal: AbortSignal.timeout(100) });
console.log('closed in', Date.now() - started, 'ms');
`;

describe('process exit', () => {
  it('a pipeline with pending retry timers exits promptly after close', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', program],
      {
        cwd: new URL('..', import.meta.url),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const started = Date.now();
    const code = await new Promise<number | null>((resolve) => {
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('exit', (c) => {
        clearTimeout(killer);
        resolve(c);
      });
    });
    const elapsed = Date.now() - started;
    assert.equal(code, 0, output);
    assert.match(output, /closed in \d+ ms/);
    // Retry timers were 30–60 s long: exiting well under that proves they were cancelled.
    assert.ok(elapsed < 15_000, `took ${elapsed} ms: ${output}`);
  });
});
