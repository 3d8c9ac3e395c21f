// Delivery on the PostgreSQL store (issue 15): one and three relay processes on one schema, a
// producer spreading batches of events over them while they deliver, one event per request to
// a local receiver that answers 200 after 50 ms (keep-alive), at concurrency 16 and 64 per
// relay. Next to them, in the same run and against the same receiver, one relay on the embedded
// SQLite store doing the same work: PostgreSQL delivery should be bounded by the receiver (the
// physical limit, relays × concurrency ÷ 50 ms) like SQLite's, not by the store.
//
// Two rates per run: ingest (events answered 202 per second, while delivery runs) and
// end-to-end (from the first POST until the receiver has every event). Duplicates (an event
// received twice) are counted and must be 0 here: no relay dies.
//
// Needs the local PostgreSQL (EVENTSINKS_PG_URL, default postgres://postgres@127.0.0.1:5432/test);
// every run uses a schema of its own, dropped afterwards.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ingest as postEvents, until } from '../lib/ingest.js';
import pg from 'pg';
import type { BenchOptions, BenchRow, BenchSuite } from '../types.js';

const SUITE = 'delivery-postgres';
const LATENCY_MS = 50;
const INGEST_BATCH = 100;
const INGEST_CLIENTS = 6;
const PG_URL = process.env['EVENTSINKS_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
// Overridable to compare two builds of the relay in the same conditions (e.g. before/after).
const CLI =
  process.env['EVENTSINKS_BENCH_RELAY_CLI'] ??
  fileURLToPath(new URL('../../packages/relay/dist/cli.js', import.meta.url));

interface Receiver {
  server: Server;
  url: string;
  seen: Set<number>;
  duplicates: number;
}

/** Answers every request 200 after `latency` ms, recording each event's `n`. */
async function startReceiver(latency: number): Promise<Receiver> {
  const receiver: Receiver = { server: createServer(), url: '', seen: new Set(), duplicates: 0 };
  receiver.server.on('request', (req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      setTimeout(() => {
        try {
          const body = JSON.parse(text) as { n?: unknown };
          const n = typeof body.n === 'number' ? body.n : -1;
          if (receiver.seen.has(n)) receiver.duplicates++;
          else receiver.seen.add(n);
        } catch {
          receiver.duplicates++;
        }
        res.writeHead(200, { 'content-length': '0' }).end();
      }, latency);
    });
  });
  receiver.server.keepAliveTimeout = 60_000;
  receiver.server.headersTimeout = 61_000;
  await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', 1024, resolve));
  receiver.url = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}/hook`;
  return receiver;
}

interface Relay {
  child: ChildProcess;
  url: string;
}

async function startRelay(config: string, dir: string, name: string): Promise<Relay> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, config);
  const child = spawn(process.execPath, [CLI, 'relay', '--config', file], {
    cwd: dir,
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

async function sql(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

interface Run {
  ingest: number;
  delivered: number;
  duplicates: number;
}

/**
 * `relays` relay processes on one store (a fresh PostgreSQL schema, or each its own SQLite
 * file when `store` is sqlite: then only one relay), `total` events spread over them while
 * they deliver.
 */
async function run(
  dir: string,
  receiver: Receiver,
  store: 'postgres' | 'sqlite',
  relays: number,
  concurrency: number,
  total: number,
  children: ChildProcess[],
): Promise<Run> {
  const id = `${store}_r${relays}_c${concurrency}`;
  const schema = `bench_delivery_${process.pid}_${id}`;
  const storeConfig =
    store === 'postgres'
      ? `store: { type: postgres, url: "${PG_URL}", schema: ${schema} }`
      : `store: { type: sqlite }`;
  const started: Relay[] = [];
  try {
    // One at a time: the first applies the migrations, the others find them done.
    for (let i = 0; i < relays; i++) {
      const relay = await startRelay(
        `
server: { listen: 127.0.0.1:0 }
dataDir: ${join(dir, `data-${id}-${i}`)}
${storeConfig}
log: { level: warn }
destinations:
  - { name: hooks, type: webhook, url: ${receiver.url}, concurrency: ${concurrency} }
`,
        dir,
        `${id}-${i}`,
      );
      started.push(relay);
      children.push(relay.child);
    }
    receiver.seen.clear();
    receiver.duplicates = 0;
    const t0 = performance.now();
    const ms = await postEvents(
      started.map((r) => r.url),
      total,
      { batch: INGEST_BATCH, clients: INGEST_CLIENTS },
    );
    await until(
      () => receiver.seen.size >= total,
      Math.max(120_000, (total / (relays * concurrency)) * LATENCY_MS * 40),
      () => `${id}: delivered ${receiver.seen.size} of ${total}`,
      5,
    );
    const delivered = (total / (performance.now() - t0)) * 1000;
    // A moment for duplicates still on the way to show.
    await new Promise((r) => setTimeout(r, 200));
    return { ingest: (total / ms) * 1000, delivered, duplicates: receiver.duplicates };
  } finally {
    for (const relay of started) relay.child.kill('SIGKILL');
    if (store === 'postgres') await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
}

/** The 1-minute load average, for the notes: the box may be shared. */
const load = (): string => (loadavg()[0] ?? 0).toFixed(1);

const suite: BenchSuite = {
  name: SUITE,
  async run({ quick }: BenchOptions): Promise<BenchRow[]> {
    const seconds = quick ? 3 : 8;
    const dir = mkdtempSync(join(tmpdir(), 'eventsinks-bench-delivery-pg-'));
    const receiver = await startReceiver(LATENCY_MS);
    const children: ChildProcess[] = [];
    const rows: BenchRow[] = [];
    try {
      for (const concurrency of [16, 64]) {
        const limit1 = concurrency / (LATENCY_MS / 1000);
        // The same events for every store and relay count: sized on one relay's limit, capped
        // so that three relays at 64 stay a few seconds on this box too.
        const total = Math.min(Math.round(limit1 * seconds), quick ? 4_000 : 12_000);
        const sqlite = await run(dir, receiver, 'sqlite', 1, concurrency, total, children);
        const pg1 = await run(dir, receiver, 'postgres', 1, concurrency, total, children);
        const pg3 = await run(dir, receiver, 'postgres', 3, concurrency, total, children);
        const dup = `duplicates ${sqlite.duplicates}/${pg1.duplicates}/${pg3.duplicates}`;
        rows.push(
          {
            suite: SUITE,
            scenario: `End-to-end delivery, concurrency ${concurrency} per relay, receiver 50 ms`,
            unit: 'events/s',
            better: 'higher',
            results: {
              'SQLite, 1 relay': sqlite.delivered,
              'PostgreSQL, 1 relay': pg1.delivered,
              'PostgreSQL, 3 relays': pg3.delivered,
              'physical limit, 1 relay': limit1,
              'physical limit, 3 relays': limit1 * 3,
            },
            notes:
              `${total} events in batches of ${INGEST_BATCH} from ${INGEST_CLIENTS} clients spread over ` +
              `the relays, delivered one per request while ingest runs; from the first POST ` +
              `until the receiver had every event; PG 1 relay at ` +
              `${((pg1.delivered / limit1) * 100).toFixed(0)}% of its limit, 3 relays at ` +
              `${((pg3.delivered / (3 * limit1)) * 100).toFixed(0)}%; ${dup}; load ${load()}`,
          },
          {
            suite: SUITE,
            scenario: `Ingest while delivering, concurrency ${concurrency} per relay`,
            unit: 'events/s',
            better: 'higher',
            results: {
              'SQLite, 1 relay': sqlite.ingest,
              'PostgreSQL, 1 relay': pg1.ingest,
              'PostgreSQL, 3 relays': pg3.ingest,
            },
            notes: `the same runs: events answered 202 per second; load ${load()}`,
          },
        );
      }
      return rows;
    } finally {
      for (const child of children) child.kill('SIGKILL');
      receiver.server.closeAllConnections();
      receiver.server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default suite;
