import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type ChannelModel } from 'amqplib';
import { SinkClosedError } from '../errors/SinkClosedError.js';
import type { Sink } from '../Sink.js';
import { sleep, waitFor } from '../test-utils.js';
import { AmqpSink } from './AmqpSink.js';
import { AmqpSource, ATTEMPTS_HEADER, REASON_HEADER, type AmqpDeadLetter } from './AmqpSource.js';
import { isAmqpConnectionError, isAmqpDecodeError } from './errors.js';
import {
  AMQP_URL,
  IN_CI,
  brokerUnavailable,
  cut,
  deleteTopology,
  openCuttable,
  peekQueue,
  uniqueName,
} from './test-utils.js';

interface Item {
  n: number;
}

/** Records events; can fail or hold writes on demand. */
class Recorder implements Sink<Item> {
  readonly events: number[] = [];
  inFlight = 0;
  maxInFlight = 0;
  readonly held: (() => void)[] = [];
  constructor(
    private readonly behaviour: {
      fail?: (item: Item, attempt: number) => boolean;
      hold?: (item: Item) => boolean;
      error?: () => Error;
    } = {},
  ) {}
  readonly attempts = new Map<number, number>();
  async write(item: Item): Promise<void> {
    const attempt = (this.attempts.get(item.n) ?? 0) + 1;
    this.attempts.set(item.n, attempt);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.behaviour.hold?.(item)) {
        await new Promise<void>((resolve) => this.held.push(resolve));
      } else {
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (this.behaviour.fail?.(item, attempt)) {
        throw this.behaviour.error?.() ?? new Error(`planned failure of ${item.n}`);
      }
      this.events.push(item.n);
    } finally {
      this.inFlight--;
    }
  }
  release(): void {
    for (const resolve of this.held.splice(0)) resolve();
  }
  close(): void {}
}

const isItem = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && typeof (value as Item).n === 'number';

describe('AmqpSource: options (no broker)', () => {
  const sink: Sink<Item> = { write() {}, close() {} };
  it('validates options, naming the option and the value', () => {
    assert.throws(() => new AmqpSource(sink, {} as never), /`queue`.*string/);
    assert.throws(() => new AmqpSource(sink, { queue: '' }), /`queue`/);
    assert.throws(() => new AmqpSource(sink, { queue: 'q', concurrency: 0 }), /`concurrency`/);
    assert.throws(() => new AmqpSource(sink, { queue: 'q', maxDeliveries: 1.5 }), RangeError);
    assert.throws(
      () => new AmqpSource(sink, { queue: 'q', queueType: 'stream' as never }),
      /`queueType`/,
    );
    assert.throws(() => new AmqpSource(sink, { queue: 'q', retryDelay: -1 }), /`retryDelay`/);
    assert.throws(() => new AmqpSource({} as never, { queue: 'q' }), /`sink`/);
  });

  it('ready rejects when closed before it ever consumed', async () => {
    const errors: unknown[] = [];
    const source = new AmqpSource(sink, {
      queue: 'q',
      url: 'amqp://127.0.0.1:1',
      onError: (error) => errors.push(error),
    });
    await waitFor(() => errors.length > 0, 'the failed connection to be reported');
    await source.close();
    await assert.rejects(source.ready, isAmqpConnectionError);
    assert.ok(errors.every(isAmqpConnectionError));
  });
});

const unavailable = await brokerUnavailable();

describe('AmqpSource against RabbitMQ', { skip: IN_CI ? false : (unavailable ?? false) }, () => {
  const queues: string[] = [];
  const exchanges: string[] = [];
  const sources: AmqpSource<Item>[] = [];
  const sinks: AmqpSink<Item>[] = [];
  let raw: ChannelModel | undefined;

  before(() => {
    if (unavailable) throw new Error(`${unavailable} (CI=true: a missing service is a failure)`);
  });
  after(async () => {
    await Promise.all(sources.map((s) => s.close({ signal: AbortSignal.timeout(2_000) })));
    await Promise.all(sinks.map((s) => s.close()));
    await raw?.close().catch(() => {});
    await deleteTopology(
      queues.flatMap((q) => [q, `${q}.retry`, `${q}.dlq`]),
      [...exchanges, ...queues.map((q) => `${q}.dlx`)],
    );
  });

  function names(label: string): { queue: string; exchange: string } {
    const queue = uniqueName(label);
    queues.push(queue);
    exchanges.push(`${queue}.x`);
    return { queue, exchange: `${queue}.x` };
  }

  async function start(
    dst: Sink<Item>,
    options: Omit<ConstructorParameters<typeof AmqpSource<Item>>[1], 'onError'> & {
      onError?: (error: unknown) => void;
    },
  ): Promise<AmqpSource<Item>> {
    const source = new AmqpSource<Item>(dst, {
      validate: isItem,
      retryDelay: 20,
      onError: () => {},
      ...options,
    });
    sources.push(source);
    await source.ready;
    return source;
  }

  async function publish(exchange: string, items: number[]): Promise<void> {
    const sink = new AmqpSink<Item>({ exchange, routingKey: 'k', maxInFlight: 32 });
    sinks.push(sink);
    await Promise.all(items.map((n) => sink.write({ n })));
  }

  async function publishRaw(exchange: string, payload: string): Promise<void> {
    raw ??= await connect(AMQP_URL);
    const channel = await raw.createConfirmChannel();
    channel.publish(exchange, 'k', Buffer.from(payload), { persistent: true, messageId: 'raw' });
    await channel.waitForConfirms();
    await channel.close();
  }

  const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => i + from);

  it('writes every event in order and acknowledges it (concurrency 1)', async () => {
    const { queue, exchange } = names('src-order');
    const recorder = new Recorder();
    await start(recorder, { queue, exchange });
    await publish(exchange, range(100));
    await waitFor(() => recorder.events.length >= 100, '100 events');
    assert.deepEqual(recorder.events, range(100));
    assert.equal(recorder.maxInFlight, 1);
    await sleep(100);
    assert.deepEqual(await peekQueue(queue), [], 'everything was acknowledged');
  });

  it('concurrency n writes up to n events at once', async () => {
    const { queue, exchange } = names('src-conc');
    const recorder = new Recorder({ hold: () => true });
    const source = await start(recorder, { queue, exchange, concurrency: 4 });
    await publish(exchange, range(10));
    await waitFor(() => recorder.held.length === 4, '4 writes at once');
    await sleep(100);
    assert.equal(recorder.held.length, 4, 'more writes than the prefetch');
    assert.equal(source.inFlight, 4);
    while (recorder.events.length < 10) {
      recorder.release();
      await sleep(10);
    }
    assert.equal(recorder.maxInFlight, 4);
  });

  it('acknowledges only after the write resolved: an aborted write stays in the queue', async () => {
    const { queue, exchange } = names('src-abort');
    const recorder = new Recorder({ hold: () => true });
    const source = await start(recorder, { queue, exchange });
    await publish(exchange, [1]);
    await waitFor(() => recorder.held.length === 1, 'the write to start');
    await source.close({ signal: AbortSignal.timeout(50) });
    recorder.release(); // completes after the source gave up: must not be acknowledged
    await sleep(100);
    const left = await peekQueue(queue);
    assert.equal(left.length, 1);
    assert.equal(left[0]?.redelivered, true);
  });

  it('close waits for writes in progress and acknowledges them', async () => {
    const { queue, exchange } = names('src-close');
    const recorder = new Recorder({ hold: () => true });
    const source = await start(recorder, { queue, exchange, concurrency: 2 });
    await publish(exchange, [1, 2, 3]);
    await waitFor(() => recorder.held.length === 2, 'two writes');
    const closing = source.close();
    await sleep(50);
    recorder.release();
    await closing;
    assert.deepEqual(recorder.events.sort(), [1, 2]);
    const left = await peekQueue(queue);
    assert.deepEqual(
      left.map((m) => m.content),
      ['{"n":3}'],
    );
  });

  it('retries a failed write after retryDelay, counting attempts in x-attempts', async () => {
    const { queue, exchange } = names('src-retry');
    const recorder = new Recorder({ fail: (item, attempt) => item.n === 2 && attempt <= 2 });
    await start(recorder, { queue, exchange, maxDeliveries: 5, retryDelay: 30 });
    await publish(exchange, range(5));
    await waitFor(() => recorder.events.length >= 5, '5 events');
    assert.equal(recorder.attempts.get(2), 3);
    assert.deepEqual(await peekQueue(`${queue}.dlq`), []);
  });

  it('dead-letters a message after maxDeliveries failed writes, with the reason', async () => {
    const { queue, exchange } = names('src-dlq');
    const errors: unknown[] = [];
    const recorder = new Recorder({ fail: (item) => item.n === 1 });
    await start(recorder, {
      queue,
      exchange,
      maxDeliveries: 3,
      retryDelay: 0,
      onError: (e) => errors.push(e),
    });
    await publish(exchange, [0, 1, 2]);
    await waitFor(() => recorder.events.length >= 2, 'the good events');
    let dead = await peekQueue(`${queue}.dlq`);
    for (let i = 0; i < 100 && dead.length === 0; i++) {
      await sleep(50);
      dead = await peekQueue(`${queue}.dlq`);
    }
    assert.equal(dead.length, 1);
    assert.equal(dead[0]?.content, '{"n":1}');
    assert.equal(dead[0]?.headers[ATTEMPTS_HEADER], 3);
    assert.match(String(dead[0]?.headers[REASON_HEADER]), /maxDeliveries \(3\).*planned failure/);
    assert.equal(recorder.attempts.get(1), 3);
    assert.equal(errors.length, 3, 'each failed write was reported');
  });

  it('tells onDeadLetter of each dead letter, with the raw body and the failed writes', async () => {
    const { queue, exchange } = names('src-dlq-hook');
    const letters: AmqpDeadLetter[] = [];
    const recorder = new Recorder({ fail: (item) => item.n === 1 });
    await start(recorder, {
      queue,
      exchange,
      maxDeliveries: 2,
      retryDelay: 0,
      onDeadLetter: (letter) => letters.push(letter),
    });
    await publish(exchange, [0, 1]);
    await publishRaw(exchange, 'not JSON');
    await waitFor(() => letters.length === 2, 'two dead letters');
    const failed = letters.find((l) => !isAmqpDecodeError(l.error));
    assert.ok(failed);
    assert.deepEqual(failed.event, { n: 1 });
    assert.equal(failed.deliveries, 2);
    assert.equal(failed.data.toString(), '{"n":1}');
    assert.equal(failed.queue, queue);
    assert.equal(failed.deadLetterExchange, `${queue}.dlx`);
    const undecodable = letters.find((l) => isAmqpDecodeError(l.error));
    assert.ok(undecodable);
    assert.equal(undecodable.event, undefined);
    assert.equal(undecodable.deliveries, 0);
    assert.equal(undecodable.messageId, 'raw');
    assert.equal(undecodable.data.toString(), 'not JSON');
  });

  it('dead-letters undecodable and wrongly shaped messages at once and goes on', async () => {
    const { queue, exchange } = names('src-poison');
    const errors: unknown[] = [];
    const recorder = new Recorder();
    await start(recorder, { queue, exchange, onError: (e) => errors.push(e) });
    await publish(exchange, [1]);
    await publishRaw(exchange, 'not json');
    await publishRaw(exchange, '{"m":1}');
    await publish(exchange, [2]);
    await waitFor(() => recorder.events.length >= 2, 'the good events');
    let dead = await peekQueue(`${queue}.dlq`);
    for (let i = 0; i < 100 && dead.length < 2; i++) {
      await sleep(50);
      dead = await peekQueue(`${queue}.dlq`);
    }
    assert.deepEqual(
      dead.map((d) => d.content),
      ['not json', '{"m":1}'],
    );
    assert.match(String(dead[0]?.headers[REASON_HEADER]), /cannot decode/);
    assert.match(String(dead[1]?.headers[REASON_HEADER]), /invalid event/);
    assert.equal(errors.filter(isAmqpDecodeError).length, 2);
    assert.deepEqual(recorder.events, [1, 2]);
  });

  it('sources on one queue share the work (competing consumers)', async () => {
    const { queue, exchange } = names('src-group');
    const a = new Recorder();
    const b = new Recorder();
    await start(a, { queue, exchange, concurrency: 2 });
    await start(b, { queue, exchange, concurrency: 2 });
    await publish(exchange, range(400));
    await waitFor(() => a.events.length + b.events.length >= 400, '400 events');
    assert.ok(a.events.length > 0 && b.events.length > 0, 'both sources took a share');
    assert.equal(new Set([...a.events, ...b.events]).size, 400);
  });

  it('a crashed consumer’s unacknowledged messages go to a peer', async () => {
    const { queue, exchange } = names('src-crash');
    const stuck = new Recorder({ hold: () => true });
    const peer = new Recorder();
    const models: ChannelModel[] = [];
    let crashed = false;
    const crashing = await start(stuck, {
      queue,
      exchange,
      concurrency: 3,
      connect: async () => {
        if (crashed) throw new Error('crashed');
        const model = await openCuttable();
        models.push(model);
        return model;
      },
    });
    await publish(exchange, range(3));
    await waitFor(() => stuck.held.length === 3, 'the doomed source to take 3');
    await start(peer, { queue, exchange });
    crashed = true;
    for (const model of models) cut(model);
    await waitFor(() => peer.events.length >= 3, 'redelivery to the peer');
    stuck.release();
    await crashing.close();
    assert.deepEqual(peer.events.sort(), [0, 1, 2]);
  });

  it('reconnects after losing its connection and resumes consuming', async () => {
    const { queue, exchange } = names('src-reconnect');
    const recorder = new Recorder();
    const models: ChannelModel[] = [];
    const errors: unknown[] = [];
    const source = await start(recorder, {
      queue,
      exchange,
      reconnectDelay: 20,
      onError: (e) => errors.push(e),
      connect: async () => {
        const model = await openCuttable();
        models.push(model);
        return model;
      },
    });
    await publish(exchange, range(10));
    await waitFor(() => recorder.events.length >= 10, 'the first 10');
    cut(models[0]!);
    await waitFor(() => models.length === 2 && source.consuming, 'a new connection');
    await publish(exchange, range(10, 10));
    await waitFor(() => new Set(recorder.events).size >= 20, 'the next 10');
    assert.ok(errors.some(isAmqpConnectionError), 'the loss was reported');
  });

  it('a destination that is closed stops the source without acknowledging', async () => {
    const { queue, exchange } = names('src-closed-dst');
    const recorder = new Recorder({ fail: () => true, error: () => new SinkClosedError() });
    const source = await start(recorder, { queue, exchange, maxDeliveries: 1 });
    await publish(exchange, [1]);
    await waitFor(() => !source.consuming, 'the source to stop');
    await source.close();
    await sleep(100);
    assert.equal((await peekQueue(queue)).length, 1, 'the message is still in the queue');
    assert.deepEqual(await peekQueue(`${queue}.dlq`), []);
  });

  it('ready resolves when the destination is closed on the very first delivery', async () => {
    const { queue } = names('src-ready-closed');
    // The message waits in the queue before the source exists, so it is delivered right with
    // the consume-ok, and the destination refuses it at once (synchronously).
    const filler = new AmqpSink<Item>({ queue });
    sinks.push(filler);
    await filler.write({ n: 1 });
    let writes = 0;
    const closed: Sink<Item> = {
      write() {
        writes++;
        throw new SinkClosedError();
      },
      close() {},
    };
    const source = new AmqpSource<Item>(closed, { queue, validate: isItem, onError: () => {} });
    sources.push(source);
    await source.ready; // it did consume: the first delivery reached the destination
    await waitFor(() => !source.consuming, 'the source to stop');
    await source.close();
    assert.equal(writes, 1);
    await sleep(100);
    assert.equal((await peekQueue(queue)).length, 1, 'the message is still in the queue');
  });

  it('the signal option closes the source', async () => {
    const { queue, exchange } = names('src-signal');
    const controller = new AbortController();
    const recorder = new Recorder();
    const source = await start(recorder, { queue, exchange, signal: controller.signal });
    assert.equal(source.consuming, true);
    controller.abort();
    await waitFor(() => !source.consuming, 'the source to stop');
    await source.close();
  });

  it('consumes a quorum queue, which a sink declaring the queue its own way uses as it is', async () => {
    const { queue, exchange } = names('src-quorum');
    const recorder = new Recorder();
    await start(recorder, { queue, exchange, queueType: 'quorum' });
    // The sink declares `queue` as a plain durable queue: the broker refuses that declaration
    // (406, inequivalent x-queue-type) and the sink publishes to the existing queue anyway.
    const sink = new AmqpSink<Item>({ queue, maxInFlight: 8 });
    sinks.push(sink);
    await Promise.all(range(20).map((n) => sink.write({ n })));
    await waitFor(() => recorder.events.length >= 20, '20 events');
    assert.deepEqual(recorder.events, range(20));
  });
});
