// Guide: The durable queue and its durability levels (docs/guide/durable-queue.md).
// Run: node --import tsx examples/guide-durable-queue.ts
//
// The destination is a real HttpSink posting to a webhook receiver on 127.0.0.1 (a free port)
// that can be taken "down" (it then answers 503). The page's queue files are relative paths:
// the example runs in a fresh temp directory, removed at the end.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ExponentialBackoff,
  RetryingSink,
  maxAttempts,
  type DeadLetter,
  type Sink,
} from 'eventsinks';
import { HttpSink } from 'eventsinks/http';
import { DurableQueue, QueueFile, isQueueLockedError } from 'eventsinks/sqlite';

interface Hook {
  action: string;
  repository: string;
}

// The receiver: records every hook it accepts; while `down`, answers 503 to everything.
const received: Hook[] = [];
let down = false;
const server = createServer((req, res) => {
  let text = '';
  req.on('data', (chunk: Buffer) => (text += chunk.toString()));
  req.on('end', () => {
    if (down) return void res.writeHead(503).end();
    received.push(JSON.parse(text) as Hook);
    res.writeHead(204).end();
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;

const home = process.cwd();
const dir = mkdtempSync(join(tmpdir(), 'eventsinks-guide-durable-'));
process.chdir(dir);

// 1. The page's first block: write resolves once the event is on disk; close delivers.
{
  const httpSink = new HttpSink<Hook>(url);

  const queue = new DurableQueue(new RetryingSink(httpSink, new ExponentialBackoff()), {
    path: './hooks.db', // created if missing; the directory must exist
    durability: 'process', // the default; 'power' survives a power cut too
  });

  await queue.write({ action: 'push', repository: 'library/alpine' }); // resolves once on disk

  // On shutdown: deliver for up to 10 s; whatever is left stays in the file for the next start.
  await queue.close({ signal: AbortSignal.timeout(10_000) });

  assert.deepEqual(received, [{ action: 'push', repository: 'library/alpine' }]);
  console.log('write resolved once on disk; close delivered it:', received[0]);
}

// 2. What a deadline leaves behind stays in the file, and the next queue on it delivers it
// first, in order. One owner per file: a second opener gets QueueLockedError.
{
  down = true;
  received.length = 0;
  const queue = new DurableQueue(
    new RetryingSink(new HttpSink<Hook>(url), new ExponentialBackoff()),
    { path: './hooks.db' },
  );
  for (const repository of ['a', 'b', 'c']) await queue.write({ action: 'push', repository });
  assert.throws(() => new QueueFile<Hook>({ path: './hooks.db' }), isQueueLockedError);
  // The receiver is down: give up after 200 ms. What was undelivered stays in the file.
  await queue.close({ signal: AbortSignal.timeout(200) });
  assert.equal(received.length, 0);

  const file = new QueueFile<Hook>({ path: './hooks.db' });
  const left = file.list().map(({ event }) => event.repository);
  file.close();
  assert.deepEqual(left, ['a', 'b', 'c']);

  down = false;
  const next = new DurableQueue(new HttpSink<Hook>(url), { path: './hooks.db' });
  assert.equal(next.size, 3);
  await next.write({ action: 'push', repository: 'd' });
  await next.close();
  // At-least-once: a request already on the wire at the deadline may still be processed once
  // the receiver is back, so an event can arrive twice; never zero times, never out of order.
  assert.deepEqual([...new Set(received.map((hook) => hook.repository))], ['a', 'b', 'c', 'd']);
  console.log(
    `deadline passed with [${left.join(',')}] undelivered: kept in the file,`,
    'delivered first by the next queue, then d',
  );
}

// 3. Dead letters in a QueueFile, listed, then replayed (the page's last block).
{
  const httpSink = new HttpSink<Hook>(url);
  received.length = 0;

  const dead = new QueueFile<DeadLetter<Hook>>({ path: './dead.db' });
  const queue = new DurableQueue(
    new RetryingSink(httpSink, maxAttempts(new ExponentialBackoff({ base: 100, factor: 100 }), 3), {
      deadLetter: dead,
    }),
    { path: './hooks.db' },
  );

  // The receiver is down for long enough: both hooks are given up on after 3 attempts.
  down = true;
  await queue.write({ action: 'push', repository: 'library/redis' });
  await queue.write({ action: 'delete', repository: 'library/redis' });
  while (dead.size < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(queue.size, 0); // given up on: out of the queue, into the dead-letter file
  down = false;

  // dlq list
  for (const { id, event } of dead.list({ limit: 50 })) console.log(id, event.error);
  dead.close();

  // dlq replay: a DurableQueue on the dead-letter file delivers what it holds, then closes.
  const replay: Sink<DeadLetter<Hook>> = {
    write: (letter) => httpSink.write(letter.event),
    close() {},
  };
  await new DurableQueue(replay, { path: './dead.db' }).close();

  await queue.close();
  assert.deepEqual(received, [
    { action: 'push', repository: 'library/redis' },
    { action: 'delete', repository: 'library/redis' },
  ]);
  const after = new QueueFile<DeadLetter<Hook>>({ path: './dead.db' });
  assert.equal(after.size, 0);
  after.close();
  console.log('2 hooks dead-lettered after 3 attempts each, listed, replayed in order; dlq empty');
}

process.chdir(home);
rmSync(dir, { recursive: true, force: true });
server.closeAllConnections();
await new Promise((resolve) => server.close(resolve));
