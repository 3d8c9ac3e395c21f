// Issue 13, item 4: one vocabulary across the adapters. Every publish error has `reason`,
// `messageId` and `retryable` (the PublishError shape); the id option is `idOf` everywhere (the
// old names are deprecated aliases); a zero `timeout` is refused everywhere; the default message
// id is one mechanism, stable per event object, shared by the Redis, NATS and AMQP sinks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPublishError, type PublishError } from '../src/index.js';
import {
  AmqpConnectionError,
  AmqpNackError,
  AmqpPublishError,
  AmqpSink,
  AmqpTimeoutError,
  AmqpUnroutableError,
  isAmqpConnectionError,
  isAmqpNackError,
  isAmqpPublishError,
  isAmqpTimeoutError,
  isAmqpUnroutableError,
} from '../src/amqp/index.js';
import {
  HttpEncodeError,
  HttpSink,
  HttpStatusError,
  HttpTransportError,
} from '../src/http/index.js';
import { JetStreamPublishError, JetStreamSink } from '../src/nats/index.js';
import type { RedisStreamClient } from '../src/redis/client.js';
import {
  RedisStreamPublishError,
  RedisStreamSink,
  RedisStreamSource,
  type RedisStreamSourceOptions,
} from '../src/redis/index.js';
import { messageOf, reasonOf } from '../src/internal/errorText.js';
import { stableId } from '../src/internal/messageId.js';
import { isValid } from '../src/internal/validator.js';

const fakeRedis = {
  isReady: true,
  isOpen: true,
  sendCommand: () => Promise.resolve('1-0'),
  duplicate: () => fakeRedis,
  connect: () => Promise.resolve(),
  destroy() {},
  on: () => fakeRedis,
  off: () => fakeRedis,
} as unknown as RedisStreamClient;

function shape(error: PublishError): [string, string | undefined, boolean] {
  assert.ok(isPublishError(error), `${error.name} has the PublishError shape`);
  return [error.reason, error.messageId, error.retryable];
}

describe('one vocabulary across adapters', () => {
  it('Redis and NATS publish errors: reason, messageId, retryable', () => {
    assert.deepEqual(shape(new RedisStreamPublishError('timeout', 's', 'm1')), [
      'timeout',
      'm1',
      true,
    ]);
    assert.deepEqual(shape(new RedisStreamPublishError('disconnected', 's', 'm1')).at(2), true);
    assert.deepEqual(shape(new RedisStreamPublishError('closed', 's', 'm1')).at(2), false);
    assert.deepEqual(shape(new RedisStreamPublishError('rejected', 's', 'm1')).at(2), false);
    const nats = new JetStreamPublishError('no-stream', 'subj', 'n1');
    assert.deepEqual(shape(nats), ['no-stream', 'n1', true]);
    assert.equal(nats.msgId, 'n1', 'the deprecated msgId still reads the id');
    assert.equal(shape(new JetStreamPublishError('rejected', 'subj', 'n1')).at(2), false);
  });

  it("AMQP's four publish errors are one class with a reason; their codes and guards stay", () => {
    const cases: [AmqpPublishError, string, string, (e: unknown) => boolean][] = [
      [new AmqpConnectionError('down'), 'connection', 'ERR_AMQP_CONNECTION', isAmqpConnectionError],
      [new AmqpNackError('a1'), 'nack', 'ERR_AMQP_NACK', isAmqpNackError],
      [new AmqpTimeoutError('a1', 30), 'timeout', 'ERR_AMQP_TIMEOUT', isAmqpTimeoutError],
      [
        new AmqpUnroutableError('a1', 'x', 'k'),
        'unroutable',
        'ERR_AMQP_UNROUTABLE',
        isAmqpUnroutableError,
      ],
    ];
    for (const [error, reason, code, guard] of cases) {
      assert.ok(error instanceof AmqpPublishError);
      assert.ok(isAmqpPublishError(error));
      assert.ok(guard(error));
      assert.equal(error.reason, reason);
      assert.equal(error.code, code);
      assert.equal(error.retryable, reason !== 'unroutable');
      assert.ok(isPublishError(error));
    }
    assert.equal(new AmqpConnectionError('down').messageId, undefined);
    assert.equal(new AmqpConnectionError('down', { messageId: 'a2' }).messageId, 'a2');
    assert.equal('cause' in new AmqpConnectionError('down', { messageId: 'a2' }), false);
    assert.equal(new AmqpTimeoutError('a1', 30).timeout, 30, 'timeout is the ms waited');
    assert.equal(isAmqpPublishError(new Error('x')), false);
  });

  it('HTTP errors have the shape too; a transport error tells a timeout by its reason', () => {
    const status = new HttpStatusError({
      method: 'POST',
      url: 'http://h/',
      status: 503,
      statusText: 'Service Unavailable',
      retryAfter: undefined,
      body: '',
      messageId: 'msg_1',
    });
    assert.deepEqual(shape(status), ['status', 'msg_1', true]);
    const slow = new HttpTransportError('POST', 'http://h/', 100, { cause: new Error('abort') });
    assert.deepEqual(shape(slow), ['timeout', undefined, true]);
    assert.equal(slow.timeout, true, 'the deprecated boolean stays');
    const reset = new HttpTransportError('POST', 'http://h/', undefined, { messageId: 'msg_2' });
    assert.deepEqual(shape(reset), ['network', 'msg_2', true]);
    assert.equal('cause' in reset, false);
    assert.deepEqual(shape(new HttpEncodeError()), ['encode', undefined, false]);
    assert.equal(isPublishError(new Error('x')), false);
    assert.equal(isPublishError({ reason: 'x', retryable: true }), false, 'needs the brand');
  });

  it('the id option is idOf everywhere; msgId and messageId stay as deprecated aliases', () => {
    assert.doesNotThrow(
      () => new JetStreamSink<{ id: string }>({ subject: 'a', idOf: (e) => e.id }),
    );
    assert.doesNotThrow(
      () => new JetStreamSink<{ id: string }>({ subject: 'a', msgId: (e) => e.id }),
    );
    assert.throws(
      () => new JetStreamSink<string>({ subject: 'a', idOf: String, msgId: String }),
      /one of `idOf` and `msgId`/,
    );
    assert.throws(
      () => new JetStreamSink<number>({ subject: 'a', idOf: () => '' }).write(1),
      /`idOf`/,
    );
    assert.doesNotThrow(() => new AmqpSink<string>({ idOf: String }));
    assert.doesNotThrow(() => new AmqpSink<string>({ messageId: String }));
    assert.throws(
      () => new AmqpSink<string>({ idOf: String, messageId: String }),
      /one of `idOf` and `messageId`/,
    );
    assert.throws(() => new AmqpSink({ idOf: 'x' as never }), /`idOf`/);
  });

  it('a zero timeout is refused by every sink; Infinity is no timeout where waiting is allowed', () => {
    assert.throws(() => new RedisStreamSink(fakeRedis, { stream: 's', timeout: 0 }), RangeError);
    assert.throws(() => new AmqpSink({ confirmTimeout: 0 }), RangeError);
    assert.throws(() => new AmqpSink({ timeout: 0 }), /`timeout`/);
    assert.throws(() => new AmqpSink({ timeout: 1, confirmTimeout: 1 }), /one of `timeout`/);
    assert.doesNotThrow(() => new AmqpSink({ timeout: Infinity }));
    assert.throws(() => new JetStreamSink({ subject: 'a', timeout: 0 }), RangeError);
    assert.throws(() => new HttpSink('http://127.0.0.1/', { timeout: 0 }), RangeError);
    assert.doesNotThrow(() => new RedisStreamSink(fakeRedis, { stream: 's', timeout: Infinity }));
    assert.doesNotThrow(() => new AmqpSink({ confirmTimeout: Infinity }));
    assert.throws(() => new JetStreamSink({ subject: 'a', timeout: Infinity }), RangeError);
  });

  it('the default id is one per event object, the same in every sink; primitives get a new one', () => {
    const event = { n: 1 };
    const id = stableId(event);
    assert.equal(stableId(event), id);
    assert.notEqual(stableId({ n: 1 }), id);
    assert.notEqual(stableId(1), stableId(1));
    assert.match(id, /^[0-9a-f-]{36}$/);
  });
});

describe('size, inFlight and pending mean one thing each', () => {
  it('a sink holding writes: size = held, inFlight = being written, pending = both', async () => {
    const replies: (() => void)[] = [];
    const client = {
      ...fakeRedis,
      sendCommand: () => new Promise<void>((resolve) => replies.push(resolve)),
    } as unknown as RedisStreamClient;
    const sink = new RedisStreamSink<number>(client, { stream: 's', maxInFlight: 2 });
    const writes = [1, 2, 3, 4, 5].map((n) => sink.write(n));
    assert.deepEqual(
      [sink.size, sink.inFlight, sink.pending],
      [3, 2, 3],
      'pending: deprecated, = size',
    );
    while (replies.length > 0) replies.shift()!();
    await Promise.all(writes.slice(0, 2));
    while (replies.length > 0 || sink.inFlight > 0) {
      replies.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(writes);
    assert.deepEqual([sink.size, sink.inFlight], [0, 0]);
    await sink.close();
  });

  it('JetStreamSink and AmqpSink expose all three, zero when idle', () => {
    const nats = new JetStreamSink({ subject: 'a' });
    assert.deepEqual([nats.size, nats.inFlight, nats.pending], [0, 0, 0]);
    const amqp = new AmqpSink({});
    assert.deepEqual([amqp.size, amqp.inFlight, amqp.pending], [0, 0, 0]);
  });
});

describe('source constructors: (dst, options) everywhere', () => {
  it('RedisStreamSource takes (dst, { client, … }) and still the old (client, dst, options)', () => {
    const dst = { write() {}, close() {} };
    const base = { stream: 's', group: 'g' };
    assert.throws(() => new RedisStreamSource(dst, { ...base } as never), /`client`/);
    assert.throws(
      () => new RedisStreamSource(fakeRedis, dst, { ...base, client: fakeRedis }),
      /got both/,
    );
    assert.throws(
      () => new RedisStreamSource(dst, { ...base, client: fakeRedis, group: '' }),
      /`group`/,
    );
    assert.throws(() => new RedisStreamSource(fakeRedis, dst, { ...base, group: '' }), /`group`/);
    assert.throws(
      () => new RedisStreamSource({} as never, { ...base, client: fakeRedis }),
      /`dst`/,
    );
  });
});

describe('core helpers shared by the adapters', () => {
  it('validate may be a type guard: isValid narrows without a cast; a boolean check still works', () => {
    const guard = (value: unknown): value is { n: number } =>
      typeof value === 'object' &&
      value !== null &&
      typeof (value as { n?: unknown }).n === 'number';
    const value: unknown = { n: 1 };
    if (isValid(guard, value)) assert.equal(value.n, 1);
    else assert.fail('a valid value');
    assert.equal(
      isValid<{ n: number }>((v) => v !== null, null),
      false,
    );
    const options: RedisStreamSourceOptions<{ n: number }> = {
      stream: 's',
      group: 'g',
      validate: guard,
    };
    assert.equal(typeof options.validate, 'function');
  });

  it('error text: messageOf for reasons, reasonOf one line and bounded', () => {
    assert.equal(messageOf(new Error('boom')), 'boom');
    assert.equal(messageOf('plain'), 'plain');
    assert.equal(reasonOf(new TypeError('a\nb')), 'TypeError: a b');
    assert.equal(reasonOf(42), 'thrown `42` (number)');
    assert.equal(reasonOf(new Error('x'.repeat(20)), 10), 'Error: xxx…');
    assert.equal(reasonOf(new Error('x'.repeat(20)), 10, ''), 'Error: xxx');
  });
});
