// One worker process of a Node job queue on PostgreSQL, for the postgres bench suite
// (bench/suites/postgres.ts): graphile-worker or pg-boss, each job one HTTP POST of its payload
// to a local receiver with undici, `concurrency` POSTs in flight at most. Run as a child so
// that 1 and 2 worker processes can be compared, as relays are. Prints `ready` once it works.
//
// Usage: node --import tsx bench/lib/pg-queue-worker.ts <graphile-worker|pg-boss> <url>
//        <schema> <receiver url> <concurrency>
import { Logger, run } from 'graphile-worker';
import PgBoss from 'pg-boss';
import { Agent, request } from 'undici';

const [kind, url, schema, target, concurrencyText] = process.argv.slice(2);
const concurrency = Number(concurrencyText);
if (url === undefined || schema === undefined || target === undefined || !(concurrency >= 1)) {
  console.error(
    `usage: pg-queue-worker.ts <graphile-worker|pg-boss> <url> <schema> <receiver> <n>`,
  );
  process.exit(2);
}

const agent = new Agent({ connections: concurrency, keepAliveTimeout: 60_000 });

async function deliver(payload: unknown): Promise<void> {
  const response = await request(target!, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
    dispatcher: agent,
  });
  await response.body.dump();
  // A failed job is retried by the queue, as a failed delivery is by the relay.
  if (response.statusCode >= 300) throw new Error(`receiver answered ${response.statusCode}`);
}

if (kind === 'graphile-worker') {
  // The library's own worker: one LISTEN connection, jobs taken one get_job call each.
  const quiet = new Logger(() => (level, message) => {
    if (String(level) === 'error') console.error(message);
  });
  await run({
    connectionString: url,
    schema,
    concurrency,
    noHandleSignals: true,
    pollInterval: 2000,
    logger: quiet,
    taskList: { post: (payload) => deliver(payload) },
  });
} else if (kind === 'pg-boss') {
  // pg-boss 10 has no per-worker concurrency: a worker fetches a batch, runs its handler and
  // waits out the rest of its polling interval (at least 0.5 s) before the next fetch. A batch
  // of 100 sent `concurrency` at a time is its fastest configuration for many small jobs.
  // pg-boss names its connections `pgboss` unless told: keep the bench's PGAPPNAME.
  const boss = new PgBoss({
    connectionString: url,
    schema,
    supervise: false,
    schedule: false,
    ...(process.env['PGAPPNAME'] ? { application_name: process.env['PGAPPNAME'] } : {}),
  });
  boss.on('error', (error) => console.error(error));
  await boss.start();
  await boss.work<unknown>(
    'post',
    { batchSize: 100, pollingIntervalSeconds: 0.5 },
    async (jobs): Promise<void> => {
      let next = 0;
      const lane = async (): Promise<void> => {
        while (next < jobs.length) await deliver(jobs[next++]!.data);
      };
      await Promise.all(Array.from({ length: concurrency }, lane));
    },
  );
} else {
  console.error(`unknown queue ${kind}: graphile-worker or pg-boss`);
  process.exit(2);
}
console.log('ready');
