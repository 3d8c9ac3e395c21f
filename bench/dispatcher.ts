// `node --import tsx bench/dispatcher.ts [events]`: the relay's Dispatcher against a fake
// target answering every request after 50 ms and an in-memory store, at concurrency 16, 64
// and 256. Prints events/s and the share of the ideal (concurrency / latency); issue 14 asks
// for ≥ 4,000/s at 256 and ≥ 90 % of the ideal at 16 and 64. A standalone script, not a
// bench/suites entry, because it measures wall-clock throughput under timers.
import { pino } from 'pino';
import { Dispatcher } from '../packages/relay/src/delivery/Dispatcher.js';
import type { Target } from '../packages/relay/src/delivery/Target.js';
import type { AttemptRecord, PendingDelivery, Store } from '../packages/relay/src/store/Store.js';

const LATENCY_MS = 50;
const events = Number(process.argv[2] ?? 20_000);

function memoryStore(count: number): {
  store: Pick<
    Store,
    'pending' | 'seal' | 'record' | 'destination' | 'updateDestination' | 'overflow'
  >;
  recordCalls: () => number;
} {
  const rows: PendingDelivery[] = Array.from({ length: count }, (_, i) => ({
    seq: i + 1,
    id: `m${i + 1}`,
    receivedAt: 0,
    source: 'bench',
    event: { n: i + 1 },
    key: undefined,
    attempts: 0,
    nextAt: 0,
    batchId: undefined,
  }));
  const done = new Set<number>();
  let calls = 0;
  return {
    store: {
      pending: (_d, after, limit) =>
        Promise.resolve(rows.filter((r) => r.seq > after && !done.has(r.seq)).slice(0, limit)),
      seal: () => Promise.resolve(),
      record: (attempts: readonly AttemptRecord[]) => {
        calls++;
        for (const a of attempts) for (const s of a.seqs) done.add(s);
        return Promise.resolve();
      },
      destination: () => Promise.resolve({}),
      updateDestination: () => Promise.resolve(),
      overflow: () => Promise.resolve([]),
    },
    recordCalls: () => calls,
  };
}

async function run(concurrency: number): Promise<void> {
  const { store, recordCalls } = memoryStore(events);
  const target: Target = {
    send: () =>
      new Promise((resolve) =>
        setTimeout(() => resolve({ ok: true, retryable: true }), LATENCY_MS),
      ),
    close: () => Promise.resolve(),
  };
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let delivered = 0;
  const dispatcher = new Dispatcher({
    name: 'bench',
    store,
    target,
    concurrency,
    retry: { maxAttempts: 3, backoff: { base: 100, factor: 100, max: 1000 } },
    maxRetryAfter: 60_000,
    enabled: true,
    logger: pino({ level: 'silent' }),
    hooks: {
      delivered(envelopes) {
        delivered += envelopes.length;
        if (delivered >= events) finish();
      },
    },
  });
  const started = performance.now();
  await dispatcher.start(events);
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await dispatcher.close();
  const rate = events / seconds;
  const ideal = (concurrency * 1000) / LATENCY_MS;
  console.log(
    `concurrency ${String(concurrency).padStart(3)}: ${Math.round(rate)} events/s ` +
      `(${((rate / ideal) * 100).toFixed(1)} % of ${ideal}/s), ${recordCalls()} record calls`,
  );
}

for (const concurrency of [16, 64, 256]) await run(concurrency);
