// The http suite (issue 5): webhook throughput of Endpoint to a local receiver, one event per
// request and batched by 100, next to a bare sequential `fetch` loop to the same receiver in the
// same run (the limit: one request at a time, no queue, no retry, no signing).
//
// The receiver runs in a child process, so it does not share the client's event loop: what is
// measured is the client side, against a receiver that answers 204 as fast as node:http can.
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { Endpoint, type EndpointOptions } from 'eventsinks/http';
import { collect } from '../lib/measure.js';
import type { BenchOptions, BenchRow, BenchSuite } from '../types.js';

const SUITE = 'http';
const BATCH = 100;
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** A webhook-sized event. */
interface Event {
  action: string;
  repository: string;
  tag: string;
  id: number;
}

const event = (id: number): Event => ({
  action: 'push',
  repository: 'library/alpine',
  tag: '3.20',
  id,
});

// Reads each body in full (as a real receiver would) and answers 204; prints its port.
const RECEIVER = `
const { createServer } = require('node:http');
let events = 0;
const server = createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => { events++; res.writeHead(204).end(); });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('disconnect', () => process.exit(0));
`;

interface Receiver {
  url: string;
  child: ChildProcess;
}

async function startReceiver(): Promise<Receiver> {
  const child = spawn(process.execPath, ['-e', RECEIVER], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const port = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', (data: Buffer) => resolve(data.toString().trim()));
  });
  return { url: `http://127.0.0.1:${port}/hook`, child };
}

/** Events per second through an Endpoint: write `total` events, then close (which drains). */
async function endpointRate(
  url: string,
  total: number,
  options: EndpointOptions<Event>,
): Promise<number> {
  const endpoint = new Endpoint<Event>(url, { timeout: 5000, ...options });
  const started = performance.now();
  for (let i = 0; i < total; i++) void endpoint.write(event(i));
  await endpoint.close();
  const elapsed = performance.now() - started;
  const { successes } = endpoint.metrics();
  if (successes !== total) throw new Error(`${successes} of ${total} delivered`);
  return (total / elapsed) * 1000;
}

/** Events per second through a bare loop: one awaited fetch after the other. */
async function fetchRate(url: string, total: number, perRequest: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < total; i += perRequest) {
    const payload =
      perRequest === 1
        ? event(i)
        : Array.from({ length: Math.min(perRequest, total - i) }, (_, j) => event(i + j));
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`status ${response.status}`);
  }
  return (total / (performance.now() - started)) * 1000;
}

/**
 * The median of `rounds` runs of each contender, after one warm-up run each. Contenders take
 * turns within every round, so a change in machine load during the run hits them all alike.
 */
async function medians<K extends string>(
  rounds: number,
  contenders: Record<K, () => Promise<number>>,
): Promise<Record<K, number>> {
  const names = Object.keys(contenders) as K[];
  const values = new Map<K, number[]>(names.map((name) => [name, []]));
  for (const name of names) await contenders[name]();
  for (let i = 0; i < rounds; i++) {
    for (const name of names) {
      collect();
      values.get(name)!.push(await contenders[name]());
    }
  }
  const result = {} as Record<K, number>;
  for (const name of names) {
    const sorted = values.get(name)!.sort((a, b) => a - b);
    result[name] = Math.round(sorted[Math.floor(sorted.length / 2)]!);
  }
  return result;
}

const suite: BenchSuite = {
  name: SUITE,
  async run({ quick }: BenchOptions): Promise<BenchRow[]> {
    const receiver = await startReceiver();
    const single = quick ? 1_000 : 5_000;
    const batched = quick ? 20_000 : 100_000;
    const rounds = quick ? 3 : 5;
    const { url } = receiver;
    try {
      const one = await medians(rounds, {
        eventsinks: () => endpointRate(url, single, {}),
        'eventsinks (signed)': () => endpointRate(url, single, { signing: { secret: SECRET } }),
        'fetch loop': () => fetchRate(url, single, 1),
      });
      const batch = { maxSize: BATCH, maxDelay: 10 };
      const many = await medians(rounds, {
        eventsinks: () => endpointRate(url, batched, { batch }),
        'eventsinks (signed)': () =>
          endpointRate(url, batched, { batch, signing: { secret: SECRET } }),
        'fetch loop': () => fetchRate(url, batched, BATCH),
      });
      const conditions =
        `median of ${rounds} interleaved runs after a warm-up; receiver: node:http in a child process on ` +
        '127.0.0.1 answering 204; Endpoint with its defaults (Breaker, queue, metrics), close() ' +
        'included; the fetch loop awaits one request at a time';
      return [
        {
          suite: SUITE,
          scenario: 'Webhook1',
          unit: 'events/s',
          better: 'higher',
          results: one,
          notes: `one event per request, ${single} events per run; ${conditions}`,
        },
        {
          suite: SUITE,
          scenario: `WebhookBatch${BATCH}`,
          unit: 'events/s',
          better: 'higher',
          results: many,
          notes: `${BATCH} events per request (JSON array), ${batched} events per run; ${conditions}`,
        },
      ];
    } finally {
      receiver.child.disconnect();
      receiver.child.kill();
    }
  },
};

export default suite;
