// The postgres suite (issue 15): relays sharing one PostgreSQL store against the Node job
// queues that do the same on PostgreSQL, graphile-worker and pg-boss, in one run on one server.
// The work is the same for all three: N events enqueued (the relay: POST /events, batches of
// 100 from 8 keep-alive clients; the queues: their bulk insert, batches of 100 from 8
// concurrent callers), each delivered as one HTTP POST to a local receiver that answers after
// 2 ms, at most 10 POSTs in flight per process, with 1, 2 and 3 processes (relays or workers)
// on the same database.
//
// Measured: ingest (enqueue) events/s while delivery runs, end-to-end events/s from the first
// enqueue until the receiver has all N, and the CPU seconds the processes, this bench process
// (the clients) and the PostgreSQL server spent meanwhile: on this 2-core machine they share
// two cores, which is what bounds every figure.
//
// Needs the PostgreSQL of the tests (postgres://postgres@127.0.0.1:5432/test, or
// EVENTSINKS_PG_URL); each scenario uses a schema of its own, dropped afterwards.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeWorkerUtils, type WorkerUtils } from 'graphile-worker';
import pg from 'pg';
import PgBoss from 'pg-boss';
import type { BenchOptions, BenchRow, BenchSuite } from '../types.js';

const SUITE = 'postgres';
const PG_URL = process.env['EVENTSINKS_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const BATCH = 100;
const CLIENTS = 8;
/** POSTs in flight per process, the same for relays and workers. */
const CONCURRENCY = 10;
/** The receiver's answer time, ms: "a receiver answering in a few ms". */
const RECEIVER_DELAY = 2;
const CLI = fileURLToPath(new URL('../../packages/relay/dist/cli.js', import.meta.url));
const WORKER = fileURLToPath(new URL('../lib/pg-queue-worker.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSX = import.meta.resolve('tsx');

type System = 'eventsinks' | 'graphile-worker' | 'pg-boss';

interface Receiver {
  server: Server;
  url: string;
  count: number;
}

async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = { server: createServer(), url: '', count: 0 };
  receiver.server.on('request', (req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const body = JSON.parse(text) as unknown;
      receiver.count += Array.isArray(body) ? body.length : 1;
      setTimeout(() => res.writeHead(204).end(), RECEIVER_DELAY);
    });
  });
  receiver.server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}/hook`;
  return receiver;
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

/** A child process, resolved once a line of its output matches `ready`. */
function spawnReady(
  args: string[],
  ready: RegExp,
  stream: 'stdout' | 'stderr',
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} not ready after 60 s:\n${err}`));
    }, 60_000);
    const check = (): void => {
      const match = ready.exec(stream === 'stdout' ? out : err);
      if (match) {
        clearTimeout(timer);
        resolve({ child, match });
      }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited (${code}):\n${err}`));
    });
  });
}

// CPU time from /proc (Linux), in clock ticks of 10 ms: utime + stime of a process.
function ticksOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Every process named `postgres` (the server and its backends, of every client). */
function postgresPids(): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'postgres') pids.push(+entry);
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

interface CpuSnapshot {
  children: number;
  self: number;
  postgres: Map<number, number>;
}

function cpuSnapshot(children: readonly ChildProcess[]): CpuSnapshot {
  return {
    children: children.reduce((sum, c) => sum + (c.pid === undefined ? 0 : ticksOf(c.pid)), 0),
    self: ticksOf(process.pid),
    postgres: new Map(postgresPids().map((pid) => [pid, ticksOf(pid)])),
  };
}

/**
 * The backends serving the connections named `application` (PGAPPNAME): this scenario's own,
 * not those of other clients of a shared server.
 */
async function backendsOf(application: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: PG_URL, application_name: 'eventsinks-bench' });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
      [application],
    );
    return rows.map((r) => r.pid);
  } finally {
    await client.end();
  }
}

/** CPU seconds since `before`: the processes, this bench process, their PostgreSQL backends. */
function cpuSince(
  before: CpuSnapshot,
  children: readonly ChildProcess[],
  backends: readonly number[],
): { children: number; self: number; postgres: number } {
  const now = cpuSnapshot(children);
  let postgres = 0;
  // A backend that started meanwhile counts from 0; one that ended is lost (pools keep theirs).
  for (const pid of backends) {
    const ticks = now.postgres.get(pid);
    if (ticks !== undefined) postgres += ticks - (before.postgres.get(pid) ?? 0);
  }
  return {
    children: (now.children - before.children) / 100,
    self: (now.self - before.self) / 100,
    postgres: postgres / 100,
  };
}

/** Runs `send(batchOfIndexes)` from CLIENTS concurrent callers until `total`; ms taken. */
async function enqueue(
  total: number,
  send: (client: number, events: { n: number; t: number }[]) => Promise<void>,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  const client = async (i: number): Promise<void> => {
    while (next < total) {
      const from = next;
      const size = Math.min(BATCH, total - next);
      next += size;
      const t = Date.now();
      await send(
        i,
        Array.from({ length: size }, (_, k) => ({ n: from + k, t })),
      );
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i)));
  return performance.now() - started;
}

interface Measured {
  ingest: number;
  delivered: number;
  /** CPU ms per event of the processes and their PostgreSQL backends. */
  cpu: number;
  note: string;
}

/** One system with `processes` workers: starts them, enqueues `total`, waits, cleans up. */
async function scenario(
  system: System,
  processes: number,
  total: number,
  receiver: Receiver,
  deadlineMs: number,
  dir: string,
): Promise<Measured> {
  const schema = `eventsinks_bench_${system.replace('-', '_')}_${randomBytes(4).toString('hex')}`;
  const children: ChildProcess[] = [];
  let teardown = async (): Promise<void> => {};
  receiver.count = 0;
  // Every connection of this scenario carries its schema as application_name (pg reads
  // PGAPPNAME), so its backends' CPU can be told from other clients'.
  const application = schema;
  const env = { ...process.env, PGAPPNAME: application };
  const savedAppName = process.env['PGAPPNAME'];
  process.env['PGAPPNAME'] = application;
  try {
    let send: (client: number, events: { n: number; t: number }[]) => Promise<void>;
    if (system === 'eventsinks') {
      const file = join(dir, `${schema}.yaml`);
      writeFileSync(
        file,
        `
server: { listen: 127.0.0.1:0 }
log: { level: warn }
store: { type: postgres, url: "${PG_URL}", schema: ${schema} }
destinations:
  - { name: hooks, type: webhook, url: ${receiver.url}, concurrency: ${CONCURRENCY} }
`,
      );
      const urls: string[] = [];
      // One after the other: the first migrates (concurrent starts are the tests' business).
      for (let i = 0; i < processes; i++) {
        const { child, match } = await spawnReady(
          [CLI, 'relay', '--config', file],
          /listening on (http:\/\/\S+)/,
          'stderr',
          env,
        );
        children.push(child);
        urls.push(`${match[1]!}/events`);
      }
      send = async (client, events) => {
        const response = await fetch(urls[client % urls.length]!, {
          method: 'POST',
          body: JSON.stringify(events),
          headers: { 'content-type': 'application/json' },
        });
        await response.arrayBuffer();
        if (response.status !== 202) throw new Error(`ingest answered ${response.status}`);
      };
    } else if (system === 'graphile-worker') {
      const utils: WorkerUtils = await makeWorkerUtils({ connectionString: PG_URL, schema });
      teardown = async () => {
        await utils.release();
      };
      await utils.migrate();
      for (let i = 0; i < processes; i++) {
        const { child } = await spawnReady(
          ['--import', TSX, WORKER, system, PG_URL, schema, receiver.url, String(CONCURRENCY)],
          /^ready$/m,
          'stdout',
          env,
        );
        children.push(child);
      }
      send = async (_client, events) => {
        await utils.addJobs(events.map((payload) => ({ identifier: 'post', payload })));
      };
    } else {
      const boss = new PgBoss({
        connectionString: PG_URL,
        schema,
        supervise: false,
        schedule: false,
        application_name: application,
      });
      boss.on('error', (error) => console.error(`pg-boss: ${String(error)}`));
      await boss.start();
      teardown = () => boss.stop({ graceful: false, wait: true });
      await boss.createQueue('post');
      for (let i = 0; i < processes; i++) {
        const { child } = await spawnReady(
          ['--import', TSX, WORKER, system, PG_URL, schema, receiver.url, String(CONCURRENCY)],
          /^ready$/m,
          'stdout',
          env,
        );
        children.push(child);
      }
      send = async (_client, events) => {
        await boss.insert(events.map((data) => ({ name: 'post', data })));
      };
    }

    const before = cpuSnapshot(children);
    const started = performance.now();
    const ingestMs = await enqueue(total, send);
    const deadline = started + deadlineMs;
    while (receiver.count < total && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const deliveredMs = performance.now() - started;
    const cpu = cpuSince(before, children, await backendsOf(application));
    const done = receiver.count >= total;
    const delivered = Math.min(receiver.count, total);
    return {
      ingest: (total / ingestMs) * 1000,
      delivered: (delivered / deliveredMs) * 1000,
      cpu: ((cpu.children + cpu.postgres) * 1000) / Math.max(1, delivered),
      note:
        `${system}: ${done ? '' : `DID NOT FINISH, ${delivered} of ${total} in ${(deliveredMs / 1000).toFixed(0)} s; `}` +
        `CPU s ${cpu.children.toFixed(1)} processes, ${cpu.self.toFixed(1)} clients, ` +
        `${cpu.postgres.toFixed(1)} postgres backends`,
    };
  } finally {
    if (savedAppName === undefined) delete process.env['PGAPPNAME'];
    else process.env['PGAPPNAME'] = savedAppName;
    for (const child of children) child.kill('SIGKILL');
    await Promise.all(
      children.map((c) =>
        c.exitCode === null && c.signalCode === null
          ? new Promise((r) => c.once('exit', r))
          : undefined,
      ),
    );
    await teardown().catch((error: unknown) => console.error(`${system}: ${String(error)}`));
    await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  }
}

const SYSTEMS: readonly System[] = ['eventsinks', 'graphile-worker', 'pg-boss'];

const suite: BenchSuite = {
  name: SUITE,
  async run({ quick }: BenchOptions): Promise<BenchRow[]> {
    // --quick (CI, well under a minute): one process each, a few hundred events, so that the
    // suite cannot rot; the figures of a quick run say little.
    const total = quick ? 400 : 5_000;
    const processCounts = quick ? [1] : [1, 2, 3];
    const deadlineMs = quick ? 6_000 : 300_000;
    await sql('SELECT 1').catch((error: unknown) => {
      throw new Error(`the postgres suite needs PostgreSQL at ${PG_URL}: ${String(error)}`, {
        cause: error,
      });
    });
    const dir = mkdtempSync(join(tmpdir(), 'eventsinks-bench-pg-'));
    const receiver = await startReceiver();
    const rows: BenchRow[] = [];
    try {
      for (const processes of processCounts) {
        const measured = new Map<System, Measured>();
        for (const system of SYSTEMS) {
          measured.set(system, await scenario(system, processes, total, receiver, deadlineMs, dir));
        }
        const of = (pick: (m: Measured) => number): Record<string, number | null> =>
          Object.fromEntries(
            SYSTEMS.map((s) => [s, measured.get(s) ? pick(measured.get(s)!) : null]),
          );
        const label = `${processes} process${processes === 1 ? '' : 'es'}`;
        rows.push(
          {
            suite: SUITE,
            scenario: `Ingest / enqueue on PostgreSQL, ${label}`,
            unit: 'events/s',
            better: 'higher',
            results: of((m) => m.ingest),
            notes: `${total} events, batches of ${BATCH} from ${CLIENTS} concurrent clients, while delivering`,
          },
          {
            suite: SUITE,
            scenario: `End-to-end, one POST per event, ${label}`,
            unit: 'events/s',
            better: 'higher',
            results: of((m) => m.delivered),
            notes:
              `first enqueue until the receiver (${RECEIVER_DELAY} ms per answer) had all ${total}; ` +
              `${CONCURRENCY} in flight per process; ` +
              SYSTEMS.map((s) => measured.get(s)?.note ?? '').join('; '),
          },
          {
            suite: SUITE,
            scenario: `CPU per event delivered (processes + their PostgreSQL backends), ${label}`,
            unit: 'ms/event',
            better: 'lower',
            results: of((m) => m.cpu),
            notes:
              'from /proc: steadier than the rates on a shared machine; 2 cores ÷ this = the ' +
              'rate the work could reach on this machine alone (the clients excluded)',
          },
        );
      }
      return rows;
    } finally {
      receiver.server.closeAllConnections();
      receiver.server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default suite;
