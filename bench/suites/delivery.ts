// The delivery engine (issue 14): the relay as a child process delivering one event per request
// to a local receiver that answers 200 after 50 ms (keep-alive), at concurrency 16, 64 and 256.
// Next to it, in the same run and against the same receiver, the physical limit (concurrency ÷
// 50 ms), a raw `fetch` pool, a raw undici `request` pool (what the webhook target uses) and
// undici's own `fetch` on a dedicated Agent, all of the same concurrency: what a client with
// nothing to store or record reaches. Then ingest with the attempt log: the ingest rate with `retention: 0s`
// (delivered rows deleted at once) and `24h` (every message, delivery and attempt kept).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, fetch as undiciFetch, request } from 'undici';
import { ingest as postEvents, until } from '../lib/ingest.js';
import type { BenchOptions, BenchRow, BenchSuite } from '../types.js';

const SUITE = 'delivery';
const LATENCY_MS = 50;
const INGEST_BATCH = 100;
const INGEST_CLIENTS = 8;
const INGEST = { batch: INGEST_BATCH, clients: INGEST_CLIENTS };
const CLI = fileURLToPath(new URL('../../packages/relay/dist/cli.js', import.meta.url));

interface Receiver {
  server: Server;
  url: string;
  count: number;
}

/** Answers every request 200 after `latency` ms, counting the events it got. */
async function startReceiver(latency: number): Promise<Receiver> {
  const receiver: Receiver = { server: createServer(), url: '', count: 0 };
  receiver.server.on('request', (req, res) => {
    req.resume();
    req.on('end', () => {
      const answer = (): void => {
        receiver.count++;
        res.writeHead(200, { 'content-length': '0' }).end();
      };
      if (latency > 0) setTimeout(answer, latency);
      else answer();
    });
  });
  receiver.server.keepAliveTimeout = 60_000;
  receiver.server.headersTimeout = 61_000;
  await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', 1024, resolve));
  receiver.url = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}/hook`;
  return receiver;
}

function closeServer(server: Server): void {
  server.closeAllConnections();
  server.close();
}

interface Relay {
  child: ChildProcess;
  url: string;
}

async function startRelay(config: string, cwd: string): Promise<Relay> {
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
    child.once('exit', (code) => reject(new Error(`relay exited (${code}): ${err.slice(-2000)}`)));
  });
  return { child, url };
}

async function adminPost(relay: Relay, path: string): Promise<void> {
  const response = await fetch(`${relay.url}${path}`, { method: 'POST' });
  const text = await response.text();
  if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${text}`);
}

/** `concurrency` workers sending one event per request with fetch; events/s. */
async function fetchPool(url: string, concurrency: number, total: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < total) {
      const n = next++;
      const response = await fetch(url, {
        method: 'POST',
        body: JSON.stringify({ n, type: 'order.created' }),
        headers: { 'content-type': 'application/json' },
      });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`receiver answered ${response.status}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (total / (performance.now() - started)) * 1000;
}

/** The same pool with undici's `request` on an Agent of `concurrency` connections; events/s. */
async function requestPool(url: string, concurrency: number, total: number): Promise<number> {
  const agent = new Agent({ connections: concurrency, pipelining: 1 });
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < total) {
      const n = next++;
      const response = await request(url, {
        method: 'POST',
        body: JSON.stringify({ n, type: 'order.created' }),
        headers: { 'content-type': 'application/json' },
        dispatcher: agent,
      });
      await response.body.dump();
      if (response.statusCode !== 200) throw new Error(`receiver answered ${response.statusCode}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
    return (total / (performance.now() - started)) * 1000;
  } finally {
    await agent.close();
  }
}

/** The fetch pool with undici's own `fetch` on a dedicated Agent (option a); events/s. */
async function undiciFetchPool(url: string, concurrency: number, total: number): Promise<number> {
  const agent = new Agent({ connections: concurrency, pipelining: 1 });
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < total) {
      const n = next++;
      const response = await undiciFetch(url, {
        method: 'POST',
        body: JSON.stringify({ n, type: 'order.created' }),
        headers: { 'content-type': 'application/json' },
        dispatcher: agent,
      });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`receiver answered ${response.status}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
    return (total / (performance.now() - started)) * 1000;
  } finally {
    await agent.close();
  }
}

/**
 * The relay's delivery rate at `concurrency`: the destination is disabled while `total`
 * events are ingested, then enabled; timed from the enable until the receiver has them all.
 */
async function relayDelivery(
  dir: string,
  receiver: Receiver,
  concurrency: number,
  total: number,
  relays: ChildProcess[],
): Promise<number> {
  const relay = await startRelay(
    `
server: { listen: 127.0.0.1:0 }
dataDir: ${join(dir, `data-c${concurrency}`)}
log: { level: warn }
destinations:
  - { name: hooks, type: webhook, url: ${receiver.url}, concurrency: ${concurrency} }
`,
    dir,
  );
  relays.push(relay.child);
  try {
    await adminPost(relay, '/admin/destinations/hooks/disable');
    await postEvents([relay.url], total, INGEST);
    receiver.count = 0;
    const started = performance.now();
    await adminPost(relay, '/admin/destinations/hooks/enable');
    await until(
      () => receiver.count >= total,
      Math.max(60_000, (total / concurrency) * LATENCY_MS * 20),
      () => `delivered ${receiver.count} of ${total} at concurrency ${concurrency}`,
    );
    return (total / (performance.now() - started)) * 1000;
  } finally {
    relay.child.kill('SIGKILL');
  }
}

/** The ingest rate with a given retention, delivering to a receiver that answers at once. */
async function ingestWith(
  dir: string,
  receiver: Receiver,
  retention: string,
  total: number,
  relays: ChildProcess[],
): Promise<{ ingest: number; delivered: number }> {
  const relay = await startRelay(
    `
server: { listen: 127.0.0.1:0 }
dataDir: ${join(dir, `data-retention-${retention}`)}
retention: ${retention}
log: { level: warn }
destinations:
  - { name: hooks, type: webhook, url: ${receiver.url}, concurrency: 64 }
`,
    dir,
  );
  relays.push(relay.child);
  try {
    receiver.count = 0;
    const started = performance.now();
    const ms = await postEvents([relay.url], total, INGEST);
    await until(
      () => receiver.count >= total,
      300_000,
      () => `delivered ${receiver.count} of ${total} with retention ${retention}`,
    );
    return {
      ingest: (total / ms) * 1000,
      delivered: (total / (performance.now() - started)) * 1000,
    };
  } finally {
    relay.child.kill('SIGKILL');
  }
}

/** The 1-minute load average, for the notes: the box may be shared. */
const load = (): string => (loadavg()[0] ?? 0).toFixed(1);

const suite: BenchSuite = {
  name: SUITE,
  async run({ quick }: BenchOptions): Promise<BenchRow[]> {
    // About 2 s (quick) or 8 s (full) of delivery at the physical limit per row.
    const seconds = quick ? 2 : 8;
    const dir = mkdtempSync(join(tmpdir(), 'eventsinks-bench-delivery-'));
    const slow = await startReceiver(LATENCY_MS);
    const fast = await startReceiver(0);
    const relays: ChildProcess[] = [];
    const rows: BenchRow[] = [];
    try {
      for (const concurrency of [16, 64, 256]) {
        const limit = concurrency / (LATENCY_MS / 1000);
        const total = Math.round(limit * seconds);
        const relay = await relayDelivery(dir, slow, concurrency, total, relays);
        const raw = await fetchPool(slow.url, concurrency, total);
        const undiciRequest = await requestPool(slow.url, concurrency, total);
        const undiciFetch = await undiciFetchPool(slow.url, concurrency, total);
        rows.push({
          suite: SUITE,
          scenario: `Webhook delivery, concurrency ${concurrency}, receiver 50 ms`,
          unit: 'events/s',
          better: 'higher',
          results: {
            eventsinks: relay,
            'raw fetch pool': raw,
            'raw undici.request pool': undiciRequest,
            'undici fetch pool, own Agent': undiciFetch,
            'physical limit': limit,
          },
          notes:
            `${total} events, one per request, keep-alive; relay at ${((relay / limit) * 100).toFixed(0)}% ` +
            `of the limit (concurrency ÷ 50 ms), fetch pool at ${((raw / limit) * 100).toFixed(0)}%, ` +
            `undici.request pool at ${((undiciRequest / limit) * 100).toFixed(0)}%; ` +
            `timed from enabling the destination with all events stored; load ${load()}`,
        });
      }
      const total = quick ? 4_000 : 30_000;
      const none = await ingestWith(dir, fast, '0s', total, relays);
      const kept = await ingestWith(dir, fast, '24h', total, relays);
      rows.push(
        {
          suite: SUITE,
          scenario: 'Ingest while delivering, attempt log kept (retention 24h vs 0s)',
          unit: 'events/s',
          better: 'higher',
          results: { eventsinks: kept.ingest, 'eventsinks, retention 0s': none.ingest },
          notes:
            `${total} events, batches of ${INGEST_BATCH} from ${INGEST_CLIENTS} clients, one webhook ` +
            `(concurrency 64, receiver answers at once); 24h at ` +
            `${((kept.ingest / none.ingest) * 100).toFixed(0)}% of 0s; load ${load()}`,
        },
        {
          suite: SUITE,
          scenario: 'End-to-end, ingest to the last delivery (retention 24h vs 0s)',
          unit: 'events/s',
          better: 'higher',
          results: { eventsinks: kept.delivered, 'eventsinks, retention 0s': none.delivered },
          notes: 'the same runs: from the first POST until the receiver had every event',
        },
      );
      return rows;
    } finally {
      for (const child of relays) child.kill('SIGKILL');
      closeServer(slow.server);
      closeServer(fast.server);
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default suite;
