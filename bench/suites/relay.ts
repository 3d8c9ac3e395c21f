// The relay suite (issue 8): the relay as a child process, ingesting batches of 100 events over
// keep-alive from 8 concurrent clients, and delivering them through two batched webhook
// destinations to two local receivers. Next to it, in the same run, a bare node:http server
// that reads each body and answers 202 without storing anything: the limit of the HTTP layer.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchOptions, BenchRow, BenchSuite } from '../types.js';

const SUITE = 'relay';
const BATCH = 100;
const CLIENTS = 8;
const CLI = fileURLToPath(new URL('../../packages/relay/dist/cli.js', import.meta.url));

interface Receiver {
  server: Server;
  url: string;
  count: number;
  latencies: number[];
}

async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = { server: createServer(), url: '', count: 0, latencies: [] };
  receiver.server.on('request', (req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const now = Date.now();
      const events = JSON.parse(text) as { t: number }[];
      for (const e of Array.isArray(events) ? events : [events]) receiver.latencies.push(now - e.t);
      receiver.count += Array.isArray(events) ? events.length : 1;
      res.writeHead(204).end();
    });
  });
  receiver.server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}/hook`;
  return receiver;
}

async function startRelay(
  config: string,
  cwd: string,
): Promise<{ child: ChildProcess; url: string }> {
  const file = join(cwd, 'relay.yaml');
  writeFileSync(file, config);
  const child = spawn(process.execPath, [CLI, 'relay', '--config', file], {
    cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const match = /listening on (http:\/\/\S+)/.exec(err);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`relay exited (${code}): ${err}`)));
  });
  return { child, url };
}

/** Posts `total` events in batches from CLIENTS concurrent clients; resolves with the ms taken. */
async function load(url: string, total: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  const client = async (): Promise<void> => {
    while (next < total) {
      const size = Math.min(BATCH, total - next);
      next += size;
      const t = Date.now();
      const body = JSON.stringify(
        Array.from({ length: size }, (_, i) => ({ t, n: i, type: 'order.created' })),
      );
      const response = await fetch(url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      });
      await response.arrayBuffer();
      if (response.status !== 202) throw new Error(`ingest answered ${response.status}`);
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, client));
  return performance.now() - started;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function bareServer(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    req.on('data', () => {});
    req.on('end', () =>
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":100}'),
    );
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events` };
}

const suite: BenchSuite = {
  name: SUITE,
  async run({ quick }: BenchOptions): Promise<BenchRow[]> {
    const total = quick ? 20_000 : 200_000;
    const dir = mkdtempSync(join(tmpdir(), 'eventsinks-bench-relay-'));
    const a = await startReceiver();
    const b = await startReceiver();
    const bare = await bareServer();
    const relays: ChildProcess[] = [];
    try {
      const bareMs = await load(bare.url, total);
      const rows: BenchRow[] = [];
      // Destination batches of 100 (the ingest batch size) and of 500.
      for (const batch of [100, 500]) {
        a.count = b.count = 0;
        a.latencies.length = b.latencies.length = 0;
        const relay = await startRelay(
          `
server: { listen: 127.0.0.1:0 }
dataDir: ${join(dir, `data-${batch}`)}
log: { level: warn }
destinations:
  - { name: a, type: webhook, url: ${a.url}, batch: { maxSize: ${batch}, maxDelay: 20ms } }
  - { name: b, type: webhook, url: ${b.url}, batch: { maxSize: ${batch}, maxDelay: 20ms } }
`,
          dir,
        );
        relays.push(relay.child);
        const started = performance.now();
        const ingestMs = await load(`${relay.url}/events`, total);
        const deadline = Date.now() + (quick ? 120_000 : 600_000);
        while (a.count < total || b.count < total) {
          if (Date.now() > deadline)
            throw new Error(`delivered only ${a.count} / ${b.count} of ${total}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        const deliveredMs = performance.now() - started;
        relay.child.kill('SIGKILL');
        const latencies = [...a.latencies, ...b.latencies];
        const tag = `destination batches of ${batch}`;
        rows.push(
          {
            suite: SUITE,
            scenario: `Ingest, 202 after commit to 2 queues (${tag})`,
            unit: 'events/s',
            better: 'higher',
            results: {
              eventsinks: (total / ingestMs) * 1000,
              'bare node:http 202 (no storage)': (total / bareMs) * 1000,
            },
            notes: `${total} events, batches of ${BATCH} from ${CLIENTS} keep-alive clients, durability 'process'`,
          },
          {
            suite: SUITE,
            scenario: `End-to-end delivery to 2 webhooks (${tag})`,
            unit: 'events/s',
            better: 'higher',
            results: { eventsinks: (total / deliveredMs) * 1000 },
            notes: `time from the first POST until both receivers had all ${total} events`,
          },
          {
            suite: SUITE,
            scenario: `Ingest→delivery latency p50 (${tag})`,
            unit: 'ms',
            better: 'lower',
            results: { eventsinks: percentile(latencies, 50) },
            notes:
              'client stamps each batch; receiver reads it; both destinations; under full ingest load',
          },
          {
            suite: SUITE,
            scenario: `Ingest→delivery latency p99 (${tag})`,
            unit: 'ms',
            better: 'lower',
            results: { eventsinks: percentile(latencies, 99) },
          },
        );
      }
      return rows;
    } finally {
      for (const child of relays) child.kill('SIGKILL');
      for (const server of [a.server, b.server, bare.server]) {
        server.closeAllConnections();
        server.close();
      }
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default suite;
