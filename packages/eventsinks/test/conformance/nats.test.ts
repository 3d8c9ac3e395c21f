// The shared conformance suite against the NATS JetStream adapter: the shared server on
// 127.0.0.1:4222 for most cases, private `nats-server -js` instances (file storage, own port and
// directory) for the broker-down and restart cases.
//
// Layout per topic: one stream named after the topic capturing exactly the subject `<topic>`
// (sources filter on it), and a dead-letter stream `<topic>_DLQ` capturing `<topic>.dlq.>`;
// each group dead-letters to `<topic>.dlq.<group>`.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  DEAD_LETTER_HEADERS,
  JetStreamSink,
  JetStreamSource,
  ensureStream,
} from '../../src/nats/index.js';
import { runConformance } from './suite.js';
import { freePort, sleep } from '../../src/test-utils.js';
import type {
  BrokerEndpoint,
  ConformanceEvent,
  ConformanceFixture,
  DeadLetterRecord,
  FixtureSource,
  PrivateBroker,
} from './types.js';

const SHARED = 'nats://127.0.0.1:4222';
const NATS_SERVER = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

const connections = new Map<string, Promise<NatsConnection>>();

/** One long-lived connection per endpoint for the fixture's own bookkeeping. */
function adminConnection(endpoint?: BrokerEndpoint): Promise<NatsConnection> {
  const url = endpoint?.url ?? SHARED;
  let connection = connections.get(url);
  if (connection === undefined) {
    connection = connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    connections.set(url, connection);
    // A failed connect must not be cached.
    connection.catch(() => connections.delete(url));
  }
  return connection;
}

async function manager(endpoint?: BrokerEndpoint): Promise<JetStreamManager> {
  return jetstreamManager(await adminConnection(endpoint));
}

const dlqStream = (topic: string): string => `${topic}_DLQ`;
const dlqSubject = (topic: string, group: string): string => `${topic}.dlq.${group}`;

function isConformanceEvent(value: unknown): value is ConformanceEvent {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.id === 'string' && typeof v.seq === 'number' && typeof v.body === 'string';
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A private nats-server with JetStream file storage, stoppable and restartable in place. */
async function startPrivateBroker(): Promise<PrivateBroker> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'eventsinks-nats-'));
  let child: ChildProcess | undefined;
  let closed = false;
  const start = async (): Promise<void> => {
    if (closed) throw new Error('private broker closed');
    const proc = spawn(NATS_SERVER, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], {
      stdio: 'ignore',
    });
    child = proc;
    let failed: Error | undefined;
    proc.once('error', (error) => (failed = error));
    const deadline = Date.now() + 20_000;
    while (!(await answers(port))) {
      if (failed) throw failed;
      if (proc.exitCode !== null) throw new Error(`nats-server exited with ${proc.exitCode}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not answer on ${port}`);
      await sleep(50);
    }
  };
  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    // SIGTERM is nats-server's graceful shutdown: the file store is flushed before exit.
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  await start();
  const endpoint = { url: `nats://127.0.0.1:${port}` };
  return {
    endpoint,
    start,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await stop();
      const admin = connections.get(endpoint.url);
      connections.delete(endpoint.url);
      if (admin) await (await admin.catch(() => undefined))?.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const fixture: ConformanceFixture = {
  name: 'nats',
  service: 'NATS JetStream on 127.0.0.1:4222',
  async check() {
    // A fresh connection without reconnects, so a missing server fails fast.
    const nc = await connect({ servers: SHARED, maxReconnectAttempts: 0, timeout: 3_000 });
    try {
      await (await jetstreamManager(nc)).getAccountInfo();
    } finally {
      await nc.close();
    }
  },
  topic: () => `conf-nats-${randomUUID().slice(0, 12)}`,
  async createSink(options) {
    const { topic, endpoint, maxInFlight, timeout } = options;
    return new JetStreamSink<ConformanceEvent>({
      // The sink opens and owns its connection: the adapter's own reconnect behaviour is tested.
      servers: endpoint?.url ?? SHARED,
      connectOptions: { reconnectTimeWait: 250 },
      subject: topic,
      idOf: (event) => event.id,
      ensureStream: { name: topic, subjects: [topic] },
      ...(maxInFlight !== undefined && { maxInFlight }),
      ...(timeout !== undefined && { timeout }),
    });
  },
  async createSource(dst, options): Promise<FixtureSource> {
    const { topic, group, endpoint, concurrency, maxDeliveries, retryDelay, redeliverAfter } =
      options;
    const url = endpoint?.url ?? SHARED;
    await ensureStream(await adminConnection(endpoint), {
      name: dlqStream(topic),
      subjects: [`${topic}.dlq.>`],
    });
    // Its own connection, so crash() can drop exactly this source's connection.
    const connection = await connect({
      servers: url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    const source = new JetStreamSource<ConformanceEvent>(dst, {
      connection,
      stream: topic,
      durable: group,
      filterSubject: topic,
      ensureStream: { name: topic, subjects: [topic] },
      deadLetterSubject: dlqSubject(topic, group),
      validate: isConformanceEvent,
      maxDeliveries: maxDeliveries ?? 20,
      retryDelay: retryDelay ?? 200,
      ackWait: redeliverAfter ?? 30_000,
      // Planned write failures are the point of several cases: keep the log readable.
      onError: () => {},
      onDeadLetter: () => {},
      ...(concurrency !== undefined && { concurrency }),
      ...(options.signal !== undefined && { signal: options.signal }),
    });
    try {
      await source.start();
    } catch (error) {
      await connection.close().catch(() => {});
      throw error;
    }
    return {
      async close(closeOptions) {
        try {
          await source.close(closeOptions);
        } finally {
          await connection.drain().catch(() => {});
        }
      },
      async crash() {
        // Drop the connection with no drain: nothing acknowledged, nothing handed back.
        await connection.close().catch(() => {});
        // Then release the source's timers; every write still pending is abandoned (never acked).
        await source.close({ signal: AbortSignal.abort() });
      },
    };
  },
  async readDeadLetters(topic, group, endpoint): Promise<DeadLetterRecord[]> {
    const jsm = await manager(endpoint);
    let info;
    try {
      info = await jsm.streams.info(dlqStream(topic));
    } catch {
      return [];
    }
    const records: DeadLetterRecord[] = [];
    const subject = dlqSubject(topic, group);
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && seq > 0; seq++) {
      const stored = await jsm.streams.getMessage(dlqStream(topic), { seq }).catch(() => null);
      if (stored === null || stored.subject !== subject) continue;
      const h = stored.header;
      const id = h.get(DEAD_LETTER_HEADERS.msgId);
      records.push({
        ...(id !== '' && { id }),
        reason: `${h.get(DEAD_LETTER_HEADERS.reason)}: ${h.get(DEAD_LETTER_HEADERS.error)}`,
        raw: new TextDecoder().decode(stored.data),
      });
    }
    return records;
  },
  async publishRaw(topic, payload, endpoint) {
    const nc = await adminConnection(endpoint);
    const js = (await jetstreamManager(nc)).jetstream();
    await ensureStream(nc, { name: topic, subjects: [topic] });
    await js.publish(topic, payload);
  },
  startPrivateBroker,
  async cleanup(topic, endpoint) {
    const jsm = await manager(endpoint);
    for (const name of [topic, dlqStream(topic)]) await jsm.streams.delete(name).catch(() => {});
  },
  async close() {
    const all = [...connections.values()];
    connections.clear();
    await Promise.all(
      all.map(async (c) => (await c.catch(() => undefined))?.close().catch(() => {})),
    );
  },
};

await runConformance(fixture);
