// The README's canonical pipeline: Broadcaster → Queue → RetryingSink → sink, three times over.
// One sink fails 30% of its writes at random, one is slow; every event must still arrive at
// every sink exactly once and in order. Run with `npm start` (or `npx tsx examples/pipeline.ts`).
import {
  Breaker,
  Broadcaster,
  ExponentialBackoff,
  Queue,
  RetryingSink,
  type Sink,
} from 'eventsinks';

interface OrderEvent {
  id: number;
  kind: 'order.created';
  total: number;
}

/** A destination that records what it received, optionally failing or slow. */
class Destination implements Sink<OrderEvent> {
  readonly received: number[] = [];
  failures = 0;
  constructor(
    readonly name: string,
    private readonly behaviour: { failRate?: number; delayMs?: number } = {},
  ) {}
  async write(event: OrderEvent): Promise<void> {
    const { failRate = 0, delayMs = 0 } = this.behaviour;
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (Math.random() < failRate) {
      this.failures++;
      throw new Error(`${this.name}: transient failure on event ${event.id}`);
    }
    this.received.push(event.id);
  }
  close(): void {}
}

const total = Number(process.env.EVENTS ?? 3000);
const destinations = [
  new Destination('fast'),
  new Destination('flaky (30% failures)', { failRate: 0.3 }),
  new Destination('slow (1 ms/event)', { delayMs: 1 }),
];

const broadcaster = new Broadcaster<OrderEvent>(
  destinations.map(
    (destination, i) =>
      new Queue(
        new RetryingSink(
          destination,
          i === 1 ? new ExponentialBackoff({ base: 1, factor: 1, max: 10 }) : new Breaker(5, 10),
        ),
      ),
  ),
);

const interactive = process.stdout.isTTY;
function progress(final = false): void {
  const parts = destinations.map((d) => `${d.name}: ${d.received.length}/${total}`);
  const line = `delivered — ${parts.join(' · ')}`;
  if (interactive) process.stdout.write(`\r${line}${final ? '\n' : ''}`);
  else if (final) console.log(line);
}
const ticker = setInterval(progress, interactive ? 100 : 1000);

const started = performance.now();
for (let id = 1; id <= total; id++) {
  await broadcaster.write({ id, kind: 'order.created', total: id * 10 });
}
await broadcaster.close(); // flushes every queue, then closes every sink
clearInterval(ticker);
progress(true);

const elapsed = performance.now() - started;
let ok = true;
console.log(`\n${total} events to ${destinations.length} sinks in ${elapsed.toFixed(0)} ms`);
for (const d of destinations) {
  const once = new Set(d.received).size === d.received.length;
  const inOrder = d.received.every((id, i) => id === i + 1);
  const complete = d.received.length === total;
  const verdict = once && inOrder && complete ? 'OK' : 'FAILED';
  if (verdict !== 'OK') ok = false;
  console.log(
    `  ${d.name.padEnd(22)} received ${String(d.received.length).padStart(5)}  ` +
      `exactly once: ${once ? 'yes' : 'NO'}  in order: ${inOrder ? 'yes' : 'NO'}  ` +
      `failures retried: ${d.failures}  ${verdict}`,
  );
}
if (!ok) {
  console.error('some events were lost, duplicated or reordered');
  process.exit(1);
}
console.log('every event arrived once, in order, at every sink');
