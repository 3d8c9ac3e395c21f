// The sqlite suite (issue 6): durable write throughput and write latency of DurableQueue with 1,
// 16 and 256 concurrent writers, under both durabilities, next to the in-memory Queue and a raw
// better-sqlite3 insert-in-transaction loop (the limit) measured in the same run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { Queue, type Sink } from 'eventsinks';
import { DurableQueue, type Durability } from 'eventsinks/sqlite';
import { collect } from '../lib/measure.js';
import type { BenchOptions, BenchRow, BenchSuite } from '../types.js';

const SUITE = 'sqlite';
const WRITERS = [1, 16, 256] as const;
const DURABILITIES: readonly Durability[] = ['process', 'power'];

/** A webhook-sized event; each write gets its own id so no two stored rows are equal. */
interface Event {
  action: string;
  repository: string;
  id: number;
}

/** What one measurement round reports. */
interface Round {
  /** Writes resolved per second, from the first write to the last resolution. */
  rate: number;
  /** Per-write latency from the call to the resolution, in ms (sorted). */
  latencies: Float64Array;
  /**
   * This process's CPU time per event, in µs (every thread: GC included, waiting for an fsync
   * not). On a shared machine this is the figure other processes disturb least.
   */
  cpu: number;
}

/** CPU time this process has used so far, in µs. */
function cpuNow(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/** Something the writers write to: `write` resolves when the event is accepted. */
interface Target {
  write(event: Event): void | Promise<void>;
  close(): Promise<void>;
}

const noopSink: Sink<Event> = { write() {}, close() {} };

/** `writers` concurrent loops write `total` events, each awaiting its write before the next. */
async function drive(target: Target, writers: number, total: number): Promise<Round> {
  const latencies = new Float64Array(total);
  let next = 0;
  const writer = async (): Promise<void> => {
    while (next < total) {
      const id = next++;
      const started = performance.now();
      await target.write({ action: 'push', repository: 'library/alpine', id });
      latencies[id] = performance.now() - started;
    }
  };
  const cpu = cpuNow();
  const started = performance.now();
  await Promise.all(Array.from({ length: writers }, writer));
  const elapsed = performance.now() - started;
  // The CPU figure includes close(): delivering what is still queued is part of the cost.
  await target.close();
  const cpuPerEvent = (cpuNow() - cpu) / total;
  return { rate: (total / elapsed) * 1000, latencies: latencies.sort(), cpu: cpuPerEvent };
}

/**
 * The limit: what better-sqlite3 does alone with the same file settings, committing one
 * transaction per `writers` events (the size of a group commit with that many writers). Every
 * event of a transaction waits for its commit, so that is its latency.
 */
function rawLoop(path: string, durability: Durability, writers: number, total: number): Round {
  const db = new Database(path);
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${durability === 'power' ? 'FULL' : 'NORMAL'}`);
  db.exec('CREATE TABLE q (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL)');
  const insert = db.prepare<[string]>('INSERT INTO q (data) VALUES (?)');
  const commit = db.transaction((events: Event[]) => {
    for (const event of events) insert.run(JSON.stringify(event));
  });
  const latencies = new Float64Array(total);
  const cpu = cpuNow();
  const started = performance.now();
  for (let done = 0; done < total;) {
    const n = Math.min(writers, total - done);
    const batch = new Array<Event>(n);
    for (let i = 0; i < n; i++)
      batch[i] = { action: 'push', repository: 'library/alpine', id: done + i };
    const t0 = performance.now();
    commit(batch);
    const took = performance.now() - t0;
    for (let i = 0; i < n; i++) latencies[done + i] = took;
    done += n;
  }
  const elapsed = performance.now() - started;
  const cpuPerEvent = (cpuNow() - cpu) / total;
  db.close();
  return { rate: (total / elapsed) * 1000, latencies: latencies.sort(), cpu: cpuPerEvent };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] ?? NaN;
}

interface Figures {
  rate: number;
  cpu: number;
  p50: number;
  p99: number;
}

/** Runs `round` `rounds` times: the median rate, and percentiles over every write of every round. */
async function measureRounds(
  rounds: number,
  round: () => Promise<Round> | Round,
): Promise<Figures> {
  const rates: number[] = [];
  const cpus: number[] = [];
  const all: Float64Array[] = [];
  for (let i = 0; i < rounds; i++) {
    collect();
    const result = await round();
    rates.push(result.rate);
    cpus.push(result.cpu);
    all.push(result.latencies);
  }
  const merged = new Float64Array(all.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of all) {
    merged.set(a, offset);
    offset += a.length;
  }
  merged.sort();
  return {
    rate: median(rates),
    cpu: median(cpus),
    p50: percentile(merged, 0.5),
    p99: percentile(merged, 0.99),
  };
}

const round1 = (x: number): number => Math.round(x);
const micros = (ms: number): number => Math.round(ms * 1000 * 10) / 10;

async function run(options: BenchOptions): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'eventsinks-bench-sqlite-'));
  let files = 0;
  const fresh = (): string => join(dir, `${++files}.db`);
  const rounds = options.quick ? 1 : 3;
  const rows: BenchRow[] = [];
  try {
    // Warm up the JIT on every path before anything is measured.
    await drive(new DurableQueue(noopSink, { path: fresh() }), 16, 5_000);
    await drive(new Queue(noopSink), 16, 5_000);
    rawLoop(fresh(), 'process', 16, 5_000);

    for (const durability of DURABILITIES) {
      for (const writers of WRITERS) {
        // An fsync per commit makes 'power' with few writers slow: fewer events keep it short.
        let total = durability === 'power' ? (writers === 1 ? 3_000 : 30_000) : 100_000;
        if (options.quick) total = Math.ceil(total / 10);
        const durable = await measureRounds(rounds, () =>
          drive(new DurableQueue(noopSink, { path: fresh(), durability }), writers, total),
        );
        const raw = await measureRounds(rounds, () => rawLoop(fresh(), durability, writers, total));
        const memory =
          durability === 'process'
            ? await measureRounds(rounds, () => drive(new Queue(noopSink), writers, total))
            : undefined;
        const scenario = `DurableWrite${writers} (${durability})`;
        const notes = `${writers} concurrent writers, each awaiting its write; ${total} events × ${rounds} round(s); durability '${durability}'; the raw loop commits ${writers} inserts per transaction; Queue is in memory (no durability)`;
        const pick = (f: (x: Figures) => number, scale: (x: number) => number) => {
          const results: Record<string, number | null> = {
            eventsinks: scale(f(durable)),
            'better-sqlite3 (raw txn loop)': scale(f(raw)),
          };
          if (memory) results['Queue (in memory)'] = scale(f(memory));
          return results;
        };
        rows.push(
          {
            suite: SUITE,
            scenario,
            unit: 'events/s',
            better: 'higher',
            results: pick((x) => x.rate, round1),
            notes,
          },
          {
            suite: SUITE,
            scenario: `${scenario} CPU`,
            unit: 'µs CPU/event',
            better: 'lower',
            results: pick(
              (x) => x.cpu,
              (x) => Math.round(x * 100) / 100,
            ),
            notes:
              'CPU time of this process per event while writing (all threads; fsync waits excluded)',
          },
          {
            suite: SUITE,
            scenario: `${scenario} p50`,
            unit: 'µs/write',
            better: 'lower',
            results: pick((x) => x.p50, micros),
            notes: 'median write latency, call to resolution',
          },
          {
            suite: SUITE,
            scenario: `${scenario} p99`,
            unit: 'µs/write',
            better: 'lower',
            results: pick((x) => x.p99, micros),
            notes: '99th percentile write latency, call to resolution',
          },
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

const suite: BenchSuite = { name: SUITE, run };
export default suite;
