// Soak: 10M events through Broadcaster → 4 × Queue(capacity) → RetryingSink over flaky sinks.
// Prints the heap every second and, at the end, start/peak/end; exits non-zero if any event was
// lost or the heap did not come back down. Usage: npm run soak [-- --events 10000000]
import { Breaker, Broadcaster, Queue, RetryingSink, type Sink } from 'eventsinks';

const argIndex = process.argv.indexOf('--events');
const total = argIndex > 0 ? Number(process.argv[argIndex + 1]) : 10_000_000;
const gc = (globalThis as { gc?: () => void }).gc;

/** Fails ~10% of writes (synchronously), counts the rest; every 64th success is async. */
class FlakySink implements Sink<number> {
  delivered = 0;
  failures = 0;
  last = -1;
  outOfOrder = 0;
  write(event: number): void | Promise<void> {
    if (Math.random() < 0.1) {
      this.failures++;
      throw new Error('flaky');
    }
    if (event <= this.last) this.outOfOrder++;
    this.last = event;
    this.delivered++;
    if ((event & 63) === 0) return Promise.resolve();
  }
  close(): void {}
}

const sinks = Array.from({ length: 4 }, () => new FlakySink());
let dropped = 0;
const broadcaster = new Broadcaster<number>(
  sinks.map(
    (sink) =>
      new Queue(new RetryingSink(sink, new Breaker(50, 1)), {
        capacity: 10_000,
        overflow: 'block',
        onDrop: () => dropped++,
      }),
  ),
);

const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
gc?.();
const startHeap = process.memoryUsage().heapUsed;
let peakHeap = startHeap;
const samples: number[] = [];
const started = performance.now();
let written = 0;
const timer = setInterval(() => {
  const heap = process.memoryUsage().heapUsed;
  peakHeap = Math.max(peakHeap, heap);
  samples.push(heap);
  const rate = written / ((performance.now() - started) / 1000);
  console.log(
    `t=${String(samples.length).padStart(3)}s written=${written} heap=${mb(heap)} MB ` +
      `rate=${(rate / 1e6).toFixed(2)} M events/s`,
  );
}, 1000);

for (let i = 0; i < total; i++) {
  const result = broadcaster.write(i);
  if (result !== undefined) await result;
  written++;
  // The pipeline only ever waits on microtasks; yield now and then so the sampler can run.
  if ((i & 0xffff) === 0) {
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
await broadcaster.close();
clearInterval(timer);
gc?.();
const endHeap = process.memoryUsage().heapUsed;
const seconds = (performance.now() - started) / 1000;

console.log(`\n${total} events × 4 sinks in ${seconds.toFixed(1)} s`);
console.log(`heap: start ${mb(startHeap)} MB, peak ${mb(peakHeap)} MB, end ${mb(endHeap)} MB`);
let ok = dropped === 0;
for (const [i, sink] of sinks.entries()) {
  console.log(
    `sink ${i}: delivered ${sink.delivered}, retried failures ${sink.failures}, out of order ${sink.outOfOrder}`,
  );
  if (sink.delivered !== total || sink.outOfOrder !== 0) ok = false;
}
// Flat: the heap after close is back within a few MB of where it started.
if (endHeap - startHeap > 16 * 1024 * 1024) {
  console.log('heap did not come back down');
  ok = false;
}
console.log(ok ? 'soak OK: nothing lost, nothing reordered, heap flat' : 'soak FAILED');
process.exit(ok ? 0 : 1);
