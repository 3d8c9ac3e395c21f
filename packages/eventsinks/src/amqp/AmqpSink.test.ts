import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { ChannelModel } from 'amqplib';
import { isSinkClosedError } from '../errors/SinkClosedError.js';
import { settlesWithin, sleep } from '../test-utils.js';
import { AmqpSink } from './AmqpSink.js';
import {
  isAmqpConnectionError,
  isAmqpNackError,
  isAmqpTimeoutError,
  isAmqpUnroutableError,
} from './errors.js';
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

type ConfirmCallback = (error: unknown) => void;

/** A stand-in for amqplib's connection and confirm channel: publishes wait for `confirm()`. */
class FakeBroker {
  readonly published: { routingKey: string; content: string; options: Record<string, unknown> }[] =
    [];
  readonly callbacks: ConfirmCallback[] = [];
  connections = 0;
  channel: EventEmitter | undefined;
  model: EventEmitter | undefined;

  connect = (): Promise<ChannelModel> => {
    this.connections++;
    const model = new EventEmitter();
    this.model = model;
    const createConfirmChannel = (): Promise<EventEmitter> => {
      const channel = Object.assign(new EventEmitter(), {
        publish: (
          _exchange: string,
          routingKey: string,
          content: Buffer,
          options: Record<string, unknown>,
          callback: ConfirmCallback,
        ) => {
          this.published.push({ routingKey, content: content.toString(), options });
          this.callbacks.push(callback);
          return true;
        },
        close: () => Promise.resolve(),
      });
      this.channel = channel;
      return Promise.resolve(channel);
    };
    const createChannel = (): Promise<EventEmitter> =>
      Promise.resolve(
        Object.assign(new EventEmitter(), {
          assertExchange: () => Promise.resolve({}),
          assertQueue: () => Promise.resolve({}),
          bindQueue: () => Promise.resolve({}),
          close: () => Promise.resolve(),
        }),
      );
    Object.assign(model, { createConfirmChannel, createChannel, close: () => Promise.resolve() });
    return Promise.resolve(model as unknown as ChannelModel);
  };

  /** Answers the oldest unanswered publish: ack (no argument) or nack/close (an error). */
  confirm(error: unknown = null): void {
    const callback = this.callbacks.shift();
    assert.ok(callback, 'no publish waiting for a confirm');
    callback(error);
  }

  /** The channel closes with every publish unconfirmed, as amqplib reports it. */
  closeChannel(): void {
    for (const callback of this.callbacks.splice(0)) callback(new Error('channel closed'));
    this.channel?.emit('close');
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected a rejection');
}

describe('AmqpSink: options and confirms (no broker)', () => {
  it('validates options, naming the option and the value', () => {
    assert.throws(() => new AmqpSink({ maxInFlight: 0 }), /`maxInFlight`.*`0` \(number\)/);
    assert.throws(() => new AmqpSink({ exchange: 5 as never }), /`exchange`.*string/);
    assert.throws(() => new AmqpSink({ url: 5 as never }), TypeError);
    assert.throws(() => new AmqpSink({ confirmTimeout: -1 }), RangeError);
    assert.throws(() => new AmqpSink({ encode: 'json' as never }), /`encode`/);
  });

  it('write resolves only on the publisher confirm, with a persistent message and its id', async () => {
    const broker = new FakeBroker();
    const sink = new AmqpSink<{ n: number }>({ connect: broker.connect, queue: 'q' });
    const written = sink.write({ n: 1 });
    await tick();
    assert.equal(broker.published.length, 1);
    assert.equal(await settlesWithin(written, 30), false, 'resolved before the confirm');
    broker.confirm();
    await written;
    const [message] = broker.published;
    assert.equal(message?.content, '{"n":1}');
    assert.equal(message?.routingKey, 'q');
    assert.equal(message?.options.persistent, true);
    assert.equal(message?.options.mandatory, true);
    assert.equal(typeof message?.options.messageId, 'string');
    await sink.close();
  });

  it('a nack rejects with AmqpNackError carrying the messageId', async () => {
    const broker = new FakeBroker();
    const sink = new AmqpSink<string>({ connect: broker.connect, messageId: (e) => `id-${e}` });
    const written = sink.write('a');
    await tick();
    broker.confirm(new Error('message nacked'));
    const error = await rejection(written);
    assert.ok(isAmqpNackError(error));
    assert.equal(error.messageId, 'id-a');
    await sink.close();
  });

  it('`timeout` (the name every sink uses) bounds the wait for the confirm', async () => {
    const broker = new FakeBroker();
    const sink = new AmqpSink<string>({ connect: broker.connect, timeout: 30 });
    const error = await rejection(sink.write('a'));
    assert.ok(isAmqpTimeoutError(error));
    assert.equal(error.timeout, 30);
    assert.equal(error.reason, 'timeout');
    assert.equal(error.retryable, true);
    broker.confirm();
    await sink.close();
  });

  it('no confirm within confirmTimeout rejects with AmqpTimeoutError', async () => {
    const broker = new FakeBroker();
    const sink = new AmqpSink<string>({ connect: broker.connect, confirmTimeout: 30 });
    const error = await rejection(sink.write('a'));
    assert.ok(isAmqpTimeoutError(error));
    assert.equal(error.timeout, 30);
    // A late confirm is ignored, and the slot it held was freed by the timeout.
    broker.confirm();
    const next = sink.write('b');
    await tick();
    broker.confirm();
    await next;
    await sink.close();
  });

  it('a channel closing before the confirm rejects; the next write opens a new one', async () => {
    const broker = new FakeBroker();
    const sink = new AmqpSink<string>({ connect: broker.connect, maxInFlight: 4 });
    const writes = [sink.write('a'), sink.write('b')];
    await tick();
    broker.closeChannel();
    broker.model?.emit('close');
    for (const write of writes) assert.ok(isAmqpConnectionError(await rejection(write)));
    const next = sink.write('c');
    await tick();
    broker.confirm();
    await next;
    assert.equal(broker.connections, 2);
    await sink.close();
  });

  it('maxInFlight 1 publishes the next event only after the previous confirm', async () => {
    const broker = new FakeBroker();
    const sink = new AmqpSink<number>({ connect: broker.connect });
    const writes = [1, 2, 3].map((n) => sink.write(n));
    await tick();
    assert.deepEqual(
      broker.published.map((m) => m.content),
      ['1'],
    );
    broker.confirm();
    await writes[0];
    await tick();
    assert.deepEqual(
      broker.published.map((m) => m.content),
      ['1', '2'],
    );
    broker.confirm();
    await tick();
    broker.confirm();
    await Promise.all(writes);
    assert.deepEqual(
      broker.published.map((m) => m.content),
      ['1', '2', '3'],
    );
    await sink.close();
  });

  it('maxInFlight n keeps n publishes waiting for confirms at once', async () => {
    const broker = new FakeBroker();
    const sink = new AmqpSink<number>({ connect: broker.connect, maxInFlight: 3 });
    const writes = [1, 2, 3, 4, 5].map((n) => sink.write(n));
    await tick();
    assert.equal(broker.published.length, 3);
    assert.equal(sink.inFlight, 3);
    broker.confirm();
    await tick();
    await tick();
    assert.equal(broker.published.length, 4);
    while (broker.callbacks.length > 0) {
      broker.confirm();
      await tick();
    }
    await Promise.all(writes);
    await sink.close();
  });

  it('close waits for outstanding confirms; a later write throws SinkClosedError', async () => {
    const broker = new FakeBroker();
    const sink = new AmqpSink<number>({ connect: broker.connect, maxInFlight: 2 });
    const writes = [1, 2, 3].map((n) => sink.write(n));
    await tick();
    const closing = sink.close();
    assert.equal(await settlesWithin(closing, 30), false, 'closed with confirms outstanding');
    assert.throws(() => sink.write(4), isSinkClosedError);
    broker.confirm();
    broker.confirm();
    await tick();
    broker.confirm();
    await closing;
    await Promise.all(writes);
    await sink.close(); // idempotent
  });

  it('close with an aborted signal rejects unpublished writes with SinkClosedError', async () => {
    const broker = new FakeBroker();
    const sink = new AmqpSink<number>({ connect: broker.connect });
    const first = sink.write(1);
    const second = sink.write(2);
    await tick();
    const controller = new AbortController();
    const closing = sink.close({ signal: controller.signal });
    controller.abort();
    await closing;
    assert.ok(isSinkClosedError(await rejection(second)));
    broker.closeChannel();
    assert.ok(isAmqpConnectionError(await rejection(first)));
  });

  it('the default messageId is stable per event object, so a retried write keeps its id', async () => {
    const broker = new FakeBroker();
    const sink = new AmqpSink<object | number>({ connect: broker.connect, maxInFlight: 8 });
    const event = { n: 1 };
    const writes = [sink.write(event), sink.write(event), sink.write(7), sink.write(7)];
    await tick();
    for (let i = 0; i < 4; i++) broker.confirm();
    await Promise.all(writes);
    const ids = broker.published.map((m) => m.options.messageId);
    assert.equal(ids[0], ids[1]);
    assert.notEqual(ids[2], ids[3]);
    await sink.close();
  });

  it('headersOf sends its headers with the message; a bad result rejects that write only', async () => {
    assert.throws(() => new AmqpSink({ headersOf: {} as never }), /`headersOf`/);
    const broker = new FakeBroker();
    const sink = new AmqpSink<{ n: number; trace?: unknown }>({
      connect: broker.connect,
      maxInFlight: 4,
      headersOf: (e) => (e.trace === undefined ? undefined : { traceparent: e.trace as string }),
    });
    const traced = sink.write({
      n: 1,
      trace: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    const bad = sink.write({ n: 2, trace: 42 });
    const plain = sink.write({ n: 3 });
    const error = await rejection(bad);
    assert.ok(error instanceof TypeError);
    assert.match(error.message, /`headersOf`.*"traceparent".*42/);
    await tick();
    broker.confirm();
    broker.confirm();
    await Promise.all([traced, plain]);
    assert.deepEqual(
      broker.published.map((m) => m.options.headers),
      [{ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }, undefined],
    );
    await sink.close();
  });

  it('an encode that throws rejects that write only', async () => {
    const broker = new FakeBroker();
    const sink = new AmqpSink<bigint | number>({ connect: broker.connect, maxInFlight: 2 });
    const bad = sink.write(1n);
    const good = sink.write(2);
    assert.ok((await rejection(bad)) instanceof TypeError);
    await tick();
    broker.confirm();
    await good;
    await sink.close();
  });
});

const unavailable = await brokerUnavailable();

describe('AmqpSink against RabbitMQ', { skip: IN_CI ? false : (unavailable ?? false) }, () => {
  const queues: string[] = [];
  const exchanges: string[] = [];
  before(() => {
    if (unavailable) throw new Error(`${unavailable} (CI=true: a missing service is a failure)`);
  });
  after(async () => {
    await deleteTopology(queues, exchanges);
  });

  it('delivers in write order as persistent JSON messages with messageId (maxInFlight 1)', async () => {
    const queue = uniqueName('sink-order');
    queues.push(queue);
    const sink = new AmqpSink<{ n: number }>({ url: AMQP_URL, queue });
    const writes: Promise<void>[] = [];
    for (let n = 0; n < 200; n++) writes.push(sink.write({ n }));
    await Promise.all(writes);
    await sink.close();
    const messages = await peekQueue(queue);
    assert.deepEqual(
      messages.map((m) => (JSON.parse(m.content) as { n: number }).n),
      Array.from({ length: 200 }, (_, n) => n),
    );
    for (const message of messages) {
      assert.equal(message.deliveryMode, 2);
      assert.equal(message.contentType, 'application/json');
      assert.equal(typeof message.messageId, 'string');
    }
    assert.equal(new Set(messages.map((m) => m.messageId)).size, 200);
  });

  it('headersOf reaches the consumer as the message headers', async () => {
    const queue = uniqueName('sink-headers');
    queues.push(queue);
    const sink = new AmqpSink<{ n: number }>({
      url: AMQP_URL,
      queue,
      headersOf: (e) => ({
        traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(15)}${e.n}-01`,
        tenant: 'a',
      }),
    });
    await Promise.all([sink.write({ n: 1 }), sink.write({ n: 2 })]);
    await sink.close();
    const messages = await peekQueue(queue);
    assert.deepEqual(
      messages.map((m) => m.headers),
      [1, 2].map((n) => ({
        traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(15)}${n}-01`,
        tenant: 'a',
      })),
    );
  });

  it('pipelines with maxInFlight 64 and loses nothing', async () => {
    const queue = uniqueName('sink-pipe');
    const exchange = `${queue}.x`;
    queues.push(queue);
    exchanges.push(exchange);
    const sink = new AmqpSink<{ n: number }>({
      exchange,
      routingKey: 'k',
      queue,
      maxInFlight: 64,
      messageId: (e) => `m-${e.n}`,
    });
    await Promise.all(Array.from({ length: 2000 }, (_, n) => sink.write({ n })));
    await sink.close();
    const ids = new Set((await peekQueue(queue)).map((m) => m.messageId));
    assert.equal(ids.size, 2000);
  });

  it('a message that matches no queue rejects with AmqpUnroutableError, never a silent success', async () => {
    const exchange = uniqueName('sink-noroute');
    exchanges.push(exchange);
    const sink = new AmqpSink<string>({ exchange, routingKey: 'nobody' });
    const error = await rejection(sink.write('lost?'));
    assert.ok(isAmqpUnroutableError(error));
    assert.equal(error.exchange, exchange);
    assert.equal(error.routingKey, 'nobody');
    await sink.close();
  });

  it('a broker that does not answer rejects with AmqpConnectionError', async () => {
    const sink = new AmqpSink<string>({ url: 'amqp://127.0.0.1:1', connectTimeout: 2_000 });
    const error = await rejection(sink.write('x'));
    assert.ok(isAmqpConnectionError(error));
    assert.ok(error.cause !== undefined);
    await sink.close();
  });

  it('reconnects on the next write after its connection died', async () => {
    const queue = uniqueName('sink-reconnect');
    queues.push(queue);
    const models: ChannelModel[] = [];
    const sink = new AmqpSink<number>({
      queue,
      connect: async () => {
        const model = await openCuttable();
        models.push(model);
        return model;
      },
    });
    await sink.write(1);
    cut(models[0]!);
    await sleep(50);
    // The first write after the cut may still race the close; the next one must succeed.
    try {
      await sink.write(2);
    } catch (error) {
      assert.ok(isAmqpConnectionError(error));
      await sink.write(2);
    }
    await sink.write(3);
    await sink.close();
    assert.equal(models.length, 2);
    const contents = (await peekQueue(queue)).map((m) => m.content);
    assert.deepEqual(contents, ['1', '2', '3']);
  });
});
