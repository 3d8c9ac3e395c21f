// SIGTERM ends the relay within drainTimeout (plus at most a second), whatever its destinations
// do: every destination type with its remote end down (a free port, a missing directory),
// hanging (a TCP server that accepts and never answers) and, for webhooks, answering 500. The
// relay exits 0, what it could not deliver stays on disk (not in the dead letter) and the next
// start delivers it.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  Receiver,
  closeAll,
  freePort,
  post,
  startRelay,
  storedDeliveries,
  tempDir,
  waitFor,
  writeConfig,
  type RelayProcess,
} from './harness.js';

after(closeAll);

const DRAIN_MS = 2000;
// The contract is drainTimeout + 1 s. Measured inside the relay (from 'draining' to 'stopped',
// then to the exit), so a loaded test machine's delay in delivering the signal does not count;
// the wall clock from kill() to the exit gets a generous bound that still catches a hang.
const STOP_BOUND_MS = DRAIN_MS + 1000;
const WALL_BOUND_MS = DRAIN_MS + 8000;
const RETRY = 'retry: { maxAttempts: 1000000, backoff: { base: 50ms, factor: 50ms, max: 200ms } }';

/** A TCP server that accepts every connection and never answers. */
class Hang {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  port = 0;
  constructor() {
    this.#server = createServer((socket) => {
      this.#sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }
  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as { port: number }).port;
    return this;
  }
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** The events still pending for `name` in the store of the stopped relay run in `dir`. */
async function queued(dir: string, name: string): Promise<Record<string, unknown>[]> {
  return (await storedDeliveries(join(dir, 'data'), name, 'pending')).map((d) => d.event);
}

/** The dead letters of `name` in the store of the stopped relay run in `dir`. */
async function deadLetters(dir: string, name: string): Promise<Record<string, unknown>[]> {
  return (await storedDeliveries(join(dir, 'data'), name, 'dead')).map((d) => d.event);
}

/**
 * Sends SIGTERM, waits for the exit and checks it came in time: exit code 0, the relay's own
 * drain (its 'stopped' line) within drainTimeout + 1 s, the exit soon after.
 */
async function term(relay: RelayProcess): Promise<void> {
  const started = performance.now();
  relay.child.kill('SIGTERM');
  const { code } = await relay.exited;
  const wall = performance.now() - started;
  const log = relay.stderr();
  assert.equal(code, 0, log.slice(-3000));
  const stopped = /"ms":(\d+),"leftOnDisk"[^\n]*"msg":"stopped"/.exec(log);
  assert.ok(stopped, `no 'stopped' line:\n${log.slice(-3000)}`);
  assert.ok(Number(stopped[1]) <= STOP_BOUND_MS, `the drain took ${stopped[1]} ms`);
  assert.ok(
    wall < WALL_BOUND_MS,
    `exited ${Math.round(wall)} ms after SIGTERM:\n${log.slice(-3000)}`,
  );
}

const EVENTS = 12;

async function postEvents(relay: RelayProcess): Promise<void> {
  const events = Array.from({ length: EVENTS }, (_, seq) => ({ seq }));
  const response = await post(relay.url, JSON.stringify(events));
  assert.equal(response.status, 202);
}

describe('relay shutdown', () => {
  it('SIGTERM exits 0 within drainTimeout + 1 s with every destination down, and the next start delivers', async () => {
    const dir = tempDir();
    const down = await freePort();
    const url = `http://127.0.0.1:${down}/hook`;
    const names = ['hook', 'batched', 'redis', 'nats', 'amqp', 'file'];
    const config = (hookUrl: string, filePath: string): string => `
server: { listen: 127.0.0.1:0 }
dataDir: ./data
drainTimeout: ${DRAIN_MS}ms
destinations:
  - { name: hook, type: webhook, url: "${hookUrl}", ${RETRY} }
  - { name: batched, type: webhook, url: "${hookUrl}", batch: { maxSize: 5, maxDelay: 20ms }, ${RETRY} }
  - { name: redis, type: redis, url: "redis://127.0.0.1:${down}", stream: s, ${RETRY} }
  - { name: nats, type: nats, servers: "127.0.0.1:${down}", subject: s, ${RETRY} }
  - { name: amqp, type: amqp, url: "amqp://guest:guest@127.0.0.1:${down}", queue: q, ${RETRY} }
  - { name: file, type: file, path: "${filePath}", ${RETRY} }
`;
    const file = writeConfig(dir, config(url, join(dir, 'missing', 'out.ndjson')));
    const relay = await startRelay(file, { cwd: dir });
    await postEvents(relay);
    // Attempts are failing (and being retried) before the signal.
    await waitFor(
      async () => {
        const metrics = await (await fetch(`${relay.url}/metrics`)).text();
        return names.every((n) =>
          new RegExp(`delivery_failures_total\\{destination="${n}"\\} [1-9]`).test(metrics),
        );
      },
      30_000,
      'a failed attempt on every destination',
    );
    await term(relay);
    for (const name of names) {
      assert.equal(
        (await queued(dir, name)).length,
        EVENTS,
        `${name}: undelivered events stay on disk`,
      );
      assert.equal((await deadLetters(dir, name)).length, 0, `${name}: nothing dead-lettered`);
    }

    // The next start, with the webhooks and the file reachable, delivers what was left.
    const receiver = await new Receiver().start();
    const next = await startRelay(writeConfig(dir, config(receiver.url, join(dir, 'out.ndjson'))), {
      cwd: dir,
    });
    await waitFor(() => receiver.received.length >= 2 * EVENTS, 30_000, 'the webhooks');
    assert.deepEqual(
      receiver.seqs().sort((a, b) => a - b),
      Array.from({ length: EVENTS }, (_, i) => [i, i]).flat(),
    );
    await term(next);
  });

  it('SIGTERM exits 0 within drainTimeout + 1 s with every remote end hanging', async () => {
    const hang = await new Hang().start();
    const dir = tempDir();
    const url = `http://127.0.0.1:${hang.port}/hook`;
    const file = writeConfig(
      dir,
      `
server: { listen: 127.0.0.1:0 }
dataDir: ./data
drainTimeout: ${DRAIN_MS}ms
destinations:
  - { name: hook, type: webhook, url: "${url}", timeout: 1m, ${RETRY} }
  - { name: batched, type: webhook, url: "${url}", timeout: 1m, batch: { maxSize: 5, maxDelay: 20ms }, ${RETRY} }
  - { name: redis, type: redis, url: "redis://127.0.0.1:${hang.port}", stream: s, ${RETRY} }
  - { name: nats, type: nats, servers: "127.0.0.1:${hang.port}", subject: s, ${RETRY} }
  - { name: amqp, type: amqp, url: "amqp://guest:guest@127.0.0.1:${hang.port}", queue: q, ${RETRY} }
`,
    );
    const relay = await startRelay(file, { cwd: dir });
    await postEvents(relay);
    await new Promise((r) => setTimeout(r, 500)); // every destination is attempting by now
    try {
      await term(relay);
    } finally {
      await hang.close();
    }
    for (const name of ['hook', 'batched', 'redis', 'nats', 'amqp']) {
      assert.equal(
        (await queued(dir, name)).length,
        EVENTS,
        `${name}: undelivered events stay on disk`,
      );
      assert.equal((await deadLetters(dir, name)).length, 0, `${name}: nothing dead-lettered`);
    }
  });

  it('SIGTERM exits 0 within drainTimeout + 1 s with webhooks answering 500', async () => {
    const failing = await new Receiver().start();
    failing.status = 500;
    const dir = tempDir();
    const file = writeConfig(
      dir,
      `
server: { listen: 127.0.0.1:0 }
dataDir: ./data
drainTimeout: ${DRAIN_MS}ms
destinations:
  - { name: hook, type: webhook, url: "${failing.url}", ${RETRY} }
  - { name: batched, type: webhook, url: "${failing.url}", batch: { maxSize: 5, maxDelay: 20ms }, ${RETRY} }
`,
    );
    const relay = await startRelay(file, { cwd: dir });
    await postEvents(relay);
    await waitFor(() => failing.requests >= 4, 30_000, 'failing attempts');
    await term(relay);
    for (const name of ['hook', 'batched']) {
      assert.equal(
        (await queued(dir, name)).length,
        EVENTS,
        `${name}: undelivered events stay on disk`,
      );
      assert.equal((await deadLetters(dir, name)).length, 0, `${name}: nothing dead-lettered`);
    }
  });
});

describe('relay shutdown and dead letters', () => {
  it('what is still queued at the drain deadline is never also dead-lettered', async () => {
    const failing = await new Receiver().start();
    failing.status = 500;
    const dir = tempDir();
    const config = (url: string): string => `
server: { listen: 127.0.0.1:0 }
dataDir: ./data
drainTimeout: 1s
destinations:
  - name: batched
    type: webhook
    url: "${url}"
    concurrency: 1
    batch: { maxSize: 5, maxDelay: 20ms }
    # A batch gives up after about a second: some die before the signal, one is in flight at
    # the deadline (and would die after it, while its events are still in the queue file).
    retry: { maxAttempts: 5, backoff: { base: 300ms, factor: 0ms, max: 300ms } }
`;
    const relay = await startRelay(writeConfig(dir, config(failing.url)), { cwd: dir });
    const all = Array.from({ length: 40 }, (_, seq) => ({ seq }));
    assert.equal((await post(relay.url, JSON.stringify(all))).status, 202);
    await waitFor(() => failing.requests >= 3, 30_000, 'failing attempts');
    await term(relay);
    const dead = (await deadLetters(dir, 'batched')).map((e) => (e as { seq: number }).seq);
    const left = (await queued(dir, 'batched')).map((e) => (e as { seq: number }).seq);
    assert.deepEqual(
      dead.filter((s) => left.includes(s)),
      [],
      'an event is both dead-lettered and in the queue',
    );
    assert.deepEqual(
      [...dead, ...left].sort((a, b) => a - b),
      all.map((e) => e.seq),
    );
    assert.ok(left.length > 0, 'the deadline came while events were still queued');

    // The next start delivers what was queued, and only that.
    const receiver = await new Receiver().start();
    const next = await startRelay(writeConfig(dir, config(receiver.url)), { cwd: dir });
    await waitFor(() => receiver.received.length >= left.length, 30_000, 'the queued events');
    await new Promise((r) => setTimeout(r, 300));
    await term(next);
    assert.deepEqual(receiver.seqs(), left);
    assert.equal((await deadLetters(dir, 'batched')).length, dead.length);
  });
});
