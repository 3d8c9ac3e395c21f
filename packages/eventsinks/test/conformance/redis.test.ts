// Runs the shared broker conformance suite against RedisStreamSink / RedisStreamSource on the
// Redis at 127.0.0.1:6379 (override with REDIS_URL); the broker-down and restart cases run a
// private redis-server (appendonly yes) on a free port in a temporary directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import type { CloseOptions, Sink } from '../../src/Sink.js';
import {
  RedisStreamSink,
  RedisStreamSource,
  type RedisStreamClient,
} from '../../src/redis/index.js';
import { runConformance } from './suite.js';
import { freePort } from '../../src/test-utils.js';
import type {
  BrokerEndpoint,
  ConformanceEvent,
  ConformanceFixture,
  DeadLetterRecord,
  PrivateBroker,
} from './types.js';

const SHARED_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

// Connection and write errors are expected in this suite (failing sinks, broker restarts): count
// them instead of printing each, and print the count at the end.
const quiet = { clientErrors: 0, sourceErrors: 0 };

function newClient(url: string): RedisStreamClient & { close(): Promise<void> } {
  const client = createClient({
    url,
    socket: {
      connectTimeout: 2_000,
      // Reconnect fast: the restart cases measure loss, not patience.
      reconnectStrategy: (retries: number) => Math.min(50 + retries * 50, 500),
    },
  });
  client.on('error', () => quiet.clientErrors++);
  return client;
}

async function connected(url: string): Promise<RedisStreamClient & { close(): Promise<void> }> {
  const client = newClient(url);
  await client.connect();
  return client;
}

async function closeQuietly(client: RedisStreamClient & { close(): Promise<void> }): Promise<void> {
  try {
    if (client.isReady) await client.close();
    else if (client.isOpen) client.destroy();
  } catch {
    if (client.isOpen) client.destroy();
  }
}

function isConformanceEvent(value: unknown): value is ConformanceEvent {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Partial<ConformanceEvent>;
  return typeof e.id === 'string' && typeof e.seq === 'number' && typeof e.body === 'string';
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** A redis-server of our own: free port, AOF on (fsync always), data in a temporary dir. */
async function startRedisServer(): Promise<PrivateBroker> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'eventsinks-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
    '--daemonize',
    'no',
    '--logfile',
    join(dir, 'log'),
  ];
  let child: ChildProcess | undefined;

  const answers = async (): Promise<boolean> => {
    const probe = createClient({ url, socket: { connectTimeout: 500, reconnectStrategy: false } });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.ping();
      await probe.close();
      return true;
    } catch {
      if (probe.isOpen) probe.destroy();
      return false;
    }
  };
  const start = async (): Promise<void> => {
    const proc = spawn('redis-server', args, { stdio: 'ignore' });
    children.add(proc);
    proc.on('exit', () => children.delete(proc));
    child = proc;
    const spawned = new Promise<void>((resolve, reject) => {
      proc.once('spawn', resolve);
      proc.once('error', reject);
    });
    await spawned;
    const deadline = Date.now() + 15_000;
    while (!(await answers())) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}`);
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    // SIGTERM is Redis's graceful shutdown: the AOF is flushed before it exits.
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  let closed = false;
  await start();
  return {
    endpoint: { url },
    stop,
    start,
    async restart() {
      await stop();
      await start();
    },
    async close() {
      if (closed) return;
      closed = true;
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let admin: (RedisStreamClient & { close(): Promise<void> }) | undefined;
const admins = new Map<string, RedisStreamClient & { close(): Promise<void> }>();

/** A long-lived client for reading dead letters, raw publishes and cleanup, per endpoint. */
async function adminFor(endpoint?: BrokerEndpoint): Promise<RedisStreamClient> {
  const url = endpoint?.url ?? SHARED_URL;
  if (url === SHARED_URL) {
    admin ??= await connected(SHARED_URL);
    return admin;
  }
  let client = admins.get(url);
  if (!client) {
    client = await connected(url);
    admins.set(url, client);
  }
  return client;
}

const fixture: ConformanceFixture = {
  name: 'redis',
  service: `Redis on ${SHARED_URL.replace(/^redis:\/\//, '')}`,

  async check() {
    const probe = createClient({
      url: SHARED_URL,
      socket: { connectTimeout: 2_000, reconnectStrategy: false },
    });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.ping();
    } finally {
      if (probe.isOpen) probe.destroy();
    }
  },

  topic: () => `eventsinks:conformance:${randomUUID()}`,

  async createSink({ topic, maxInFlight, timeout, endpoint }) {
    const client = await connected(endpoint?.url ?? SHARED_URL);
    const sink = new RedisStreamSink<ConformanceEvent>(client, {
      stream: topic,
      idOf: (event) => event.id,
      timeout: timeout ?? 5_000,
      ...(maxInFlight === undefined ? {} : { maxInFlight }),
    });
    const wrapped: Sink<ConformanceEvent> = {
      write: (event) => sink.write(event),
      async close() {
        await sink.close({ signal: AbortSignal.timeout(5_000) });
        await closeQuietly(client);
      },
    };
    return wrapped;
  },

  async createSource(dst, options) {
    const url = options.endpoint?.url ?? SHARED_URL;
    const client = await connected(url);
    const blocking = await connected(url);
    const source = new RedisStreamSource<ConformanceEvent>(dst, {
      client,
      stream: options.topic,
      group: options.group,
      blockingClient: blocking,
      block: 500,
      minIdle: options.redeliverAfter ?? 30_000,
      maxDeliveries: options.maxDeliveries ?? 20,
      retryDelay: options.retryDelay ?? 100,
      validate: isConformanceEvent,
      onError: () => quiet.sourceErrors++,
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    await source.ready;
    let released = false;
    const release = async (): Promise<void> => {
      if (released) return;
      released = true;
      await Promise.all([closeQuietly(client), closeQuietly(blocking)]);
    };
    return {
      async close(closeOptions?: CloseOptions) {
        await source.close(closeOptions);
        await release();
      },
      async crash() {
        released = true;
        // No goodbye: both connections drop at once, nothing is acknowledged or handed back.
        if (blocking.isOpen) blocking.destroy();
        if (client.isOpen) client.destroy();
      },
    };
  },

  async readDeadLetters(topic, _group, endpoint) {
    const client = await adminFor(endpoint);
    const reply = await client.sendCommand(['XRANGE', `${topic}:dlq`, '-', '+']);
    const records: DeadLetterRecord[] = [];
    for (const entry of (reply as [string, string[]][] | null) ?? []) {
      const fields = entry[1];
      const get = (name: string): string | undefined => {
        for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
        return undefined;
      };
      const id = get('id');
      const raw = get('data');
      records.push({
        reason: get('reason') ?? '',
        ...(id ? { id } : {}),
        ...(raw === undefined ? {} : { raw }),
      });
    }
    return records;
  },

  async publishRaw(topic, payload, endpoint) {
    const client = await adminFor(endpoint);
    await client.sendCommand(['XADD', topic, '*', 'data', payload]);
  },

  async startPrivateBroker() {
    const broker = await startRedisServer();
    const { url } = broker.endpoint;
    return {
      endpoint: broker.endpoint,
      stop: () => broker.stop(),
      start: () => broker.start(),
      restart: () => broker.restart(),
      async close() {
        // The admin client of this endpoint goes with it, or it would reconnect for ever.
        const client = admins.get(url);
        admins.delete(url);
        if (client) await closeQuietly(client);
        await broker.close();
      },
    };
  },

  async cleanup(topic, endpoint) {
    const client = await adminFor(endpoint);
    await client.sendCommand(['DEL', topic, `${topic}:dlq`]);
  },

  async close() {
    if (admin) await closeQuietly(admin);
    for (const client of admins.values()) await closeQuietly(client);
    admins.clear();
    console.log(
      `[conformance redis] expected errors absorbed: ${quiet.clientErrors} connection, ${quiet.sourceErrors} source (failing sinks, restarts)`,
    );
  },
};

await runConformance(fixture);
