// The broker-source engine against an in-memory driver: the option meanings every adapter shares
// (maxDeliveries counts failed writes only, retryDelay holds no write slot, SinkClosedError hands
// back and closes, close hands back what never started), without a broker.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SinkClosedError } from '../errors/SinkClosedError.js';
import type { Sink } from '../Sink.js';
import { sleep, waitFor as waitUntil } from '../test-utils.js';
import {
  BrokerSourceEngine,
  validateDeliveryOptions,
  type BrokerDriver,
  type BrokerSourceEngineOptions,
  type Recovery,
} from './BrokerSourceEngine.js';

interface Msg {
  id: string;
  body: string;
}

// Polls every 5 ms: the in-memory broker answers at once.
const waitFor = (predicate: () => boolean, what: string, ms = 10_000): Promise<void> =>
  waitUntil(predicate, what, ms, 5);

/** A broker in memory: `fetch` hands out what was published; records every verb. */
class FakeBroker implements BrokerDriver<Msg> {
  readonly queue: Msg[] = [];
  readonly acked: string[] = [];
  readonly dead: { id: string; failures: number }[] = [];
  readonly handedBack: string[] = [];
  #wake: (() => void) | undefined;
  engine!: BrokerSourceEngine<Msg, string>;

  publish(...ids: string[]): void {
    for (const id of ids) this.queue.push({ id, body: id });
    this.#wake?.();
  }

  async connect(): Promise<void> {}

  async fetch(room: number): Promise<void> {
    if (this.queue.length === 0) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 20);
      });
      this.#wake = undefined;
    }
    for (const msg of this.queue.splice(0, room)) this.engine.accept(msg);
  }

  recover(): Recovery {
    return 'report';
  }

  decode(msg: Msg): unknown {
    if (msg.body === 'poison') throw new Error('not decodable');
    return msg.body;
  }

  key(msg: Msg): string {
    return msg.id;
  }

  ack(msg: Msg): void {
    this.acked.push(msg.id);
  }

  async deadLetter(msg: Msg, _error: unknown, _event: unknown, failures: number): Promise<void> {
    this.dead.push({ id: msg.id, failures });
  }

  handBack(msgs: Msg[]): void {
    for (const msg of msgs) this.handedBack.push(msg.id);
  }

  interrupt(): void {
    this.#wake?.();
  }

  async shutdown(): Promise<void> {}
}

function start(
  dst: Sink<string>,
  options: Partial<BrokerSourceEngineOptions<string>> = {},
): { broker: FakeBroker; engine: BrokerSourceEngine<Msg, string>; errors: unknown[] } {
  const broker = new FakeBroker();
  const errors: unknown[] = [];
  const engine = new BrokerSourceEngine<Msg, string>(dst, broker, {
    name: 'test',
    concurrency: 1,
    limit: 16,
    maxDeliveries: 3,
    retryDelay: 10,
    heartbeat: 0,
    backoff: { base: 10, max: 100 },
    onError: (error) => errors.push(error),
    closedBeforeReady: () => new SinkClosedError('closed before ready'),
    ...options,
  });
  broker.engine = engine;
  engine.start();
  return { broker, engine, errors };
}

describe('BrokerSourceEngine', () => {
  it('validates maxDeliveries (Infinity allowed) and retryDelay the same way for every adapter', () => {
    assert.doesNotThrow(() => validateDeliveryOptions(Infinity, 0));
    assert.doesNotThrow(() => validateDeliveryOptions(1, () => 5));
    assert.throws(() => validateDeliveryOptions(0, 10), /`maxDeliveries`/);
    assert.throws(() => validateDeliveryOptions(1.5, 10), /`maxDeliveries`/);
    assert.throws(() => validateDeliveryOptions(3, -1), /`retryDelay`/);
  });

  it('dead-letters after exactly maxDeliveries failed writes; decode failures at once', async () => {
    const attempts = new Map<string, number>();
    const dst: Sink<string> = {
      write(event) {
        attempts.set(event, (attempts.get(event) ?? 0) + 1);
        if (event === 'bad') throw new Error('refused');
      },
      close() {},
    };
    const { broker, engine } = start(dst, { maxDeliveries: 3 });
    await engine.ready;
    broker.publish('a', 'bad', 'b');
    broker.queue.push({ id: 'p', body: 'poison' });
    await waitFor(() => broker.dead.length === 2 && broker.acked.length === 2, 'two dead letters');
    await engine.close();
    assert.equal(attempts.get('bad'), 3);
    assert.deepEqual(
      broker.dead.sort((x, y) => x.id.localeCompare(y.id)),
      [
        { id: 'bad', failures: 3 },
        { id: 'p', failures: 0 },
      ],
    );
    assert.deepEqual(broker.acked.sort(), ['a', 'b']);
  });

  it('maxDeliveries Infinity retries for ever', async () => {
    let failures = 0;
    const dst: Sink<string> = {
      write() {
        if (++failures <= 20) throw new Error('not yet');
      },
      close() {},
    };
    const { broker, engine } = start(dst, { maxDeliveries: Infinity, retryDelay: 1 });
    broker.publish('x');
    await waitFor(() => broker.acked.length === 1, 'the ack');
    await engine.close();
    assert.deepEqual(broker.dead, []);
  });

  it('a retry waits without holding a write slot: later messages go on (concurrency 1)', async () => {
    const order: string[] = [];
    let inFlight = 0;
    let peak = 0;
    let failedOnce = false;
    const dst: Sink<string> = {
      async write(event) {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await sleep(1);
        inFlight--;
        if (event === 'first' && !failedOnce) {
          failedOnce = true;
          throw new Error('once');
        }
        order.push(event);
      },
      close() {},
    };
    const { broker, engine } = start(dst, { retryDelay: 2_000 });
    broker.publish('first', 'b', 'c', 'd');
    await waitFor(() => order.length === 4, 'every message');
    await engine.close();
    assert.deepEqual(order, ['b', 'c', 'd', 'first']);
    assert.equal(peak, 1);
  });

  it('a retry still waiting when the source closes is handed back, not dropped', async () => {
    const dst: Sink<string> = {
      write() {
        throw new Error('no');
      },
      close() {},
    };
    const { broker, engine } = start(dst, { retryDelay: 60_000 });
    broker.publish('m');
    await waitFor(() => engine.active === 1 && engine.writing === 0, 'the retry to wait');
    const started = Date.now();
    await engine.close();
    assert.ok(Date.now() - started < 5_000, 'close does not wait out the retry delay');
    assert.deepEqual(broker.handedBack, ['m']);
    assert.deepEqual(broker.acked, []);
  });

  it('SinkClosedError hands the message back and closes the source', async () => {
    const dst: Sink<string> = {
      write() {
        throw new SinkClosedError();
      },
      close() {},
    };
    const { broker, engine } = start(dst);
    broker.publish('m');
    await waitFor(() => engine.stopping, 'the source to stop');
    await engine.close();
    assert.deepEqual(broker.handedBack, ['m']);
    assert.deepEqual(broker.dead, []);
    await engine.ready; // it did consume
  });

  it('ready rejects when closed before connecting; a fatal error rejects it with that error', async () => {
    const { engine } = start({ write() {}, close() {} });
    const closing = engine.close();
    await assert.rejects(engine.ready, /closed before ready/);
    await closing;

    const broker = new FakeBroker();
    broker.connect = () => Promise.reject(new Error('stream not found'));
    broker.recover = () => 'fatal';
    const failing = new BrokerSourceEngine<Msg, string>({ write() {}, close() {} }, broker, {
      name: 'test',
      concurrency: 1,
      limit: 4,
      maxDeliveries: 1,
      retryDelay: 0,
      heartbeat: 0,
      backoff: { base: 1, max: 1 },
      onError: () => {},
      closedBeforeReady: () => new Error('closed'),
    });
    failing.start();
    await assert.rejects(failing.ready, /stream not found/);
    await failing.close();
  });
});
