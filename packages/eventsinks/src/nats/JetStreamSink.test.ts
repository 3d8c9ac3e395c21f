import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { isSinkClosedError } from '../errors/SinkClosedError.js';
import { RetryingSink } from '../RetryingSink.js';
import { maxAttempts } from '../retry/maxAttempts.js';
import { Breaker } from '../retry/Breaker.js';
import { isJetStreamPublishError } from './errors.js';
import { JetStreamSink } from './JetStreamSink.js';
import {
  createStream,
  deleteStreams,
  privateNatsOrSkip,
  SERVICE,
  sharedConnection,
  uniqueName,
} from './test-utils.js';

const nc = await sharedConnection();
const skip = nc === undefined ? `${SERVICE} does not answer` : false;

describe('JetStreamSink options', () => {
  const connection = {} as NatsConnection;
  it('rejects bad options with an error naming the option and the value', () => {
    assert.throws(() => new JetStreamSink({ subject: '' }), /`subject`.*""/);
    assert.throws(() => new JetStreamSink({ subject: 'a.*' }), /`subject`/);
    assert.throws(
      () => new JetStreamSink({ subject: 'a', maxInFlight: 0 }),
      (e) => e instanceof RangeError && /`maxInFlight`.*`0` \(number\)/.test(e.message),
    );
    assert.throws(() => new JetStreamSink({ subject: 'a', timeout: 0 }), RangeError);
    assert.throws(() => new JetStreamSink({ subject: 'a', connection }), /`connection`/);
    assert.throws(
      () => new JetStreamSink({ subject: 'a', msgId: 'x' as never }),
      (e) => e instanceof TypeError && /`msgId`/.test(e.message),
    );
    assert.throws(
      () => new JetStreamSink({ subject: 'a', ensureStream: { name: 'a.b', subjects: ['a'] } }),
      /stream `name`/,
    );
  });

  it('a msgId that is not a string fails that write synchronously', () => {
    const sink = new JetStreamSink<number>({ subject: 'a', msgId: () => '' });
    assert.throws(() => sink.write(1), /`msgId` to return a non-empty string/);
  });

  it('a headersOf result that is not an object of strings, or names Nats-Msg-Id, fails that write synchronously', () => {
    assert.throws(
      () => new JetStreamSink({ subject: 'a', headersOf: 'x' as never }),
      /`headersOf`/,
    );
    const sink = new JetStreamSink<Record<string, unknown>>({
      subject: 'a',
      headersOf: (e) => e as Record<string, string>,
    });
    assert.throws(() => sink.write({ tenant: 7 }), /`headersOf`.*"tenant".*7/);
    assert.throws(() => sink.write({ 'Nats-Msg-Id': 'x' }), /`headersOf`.*"Nats-Msg-Id"/);
    assert.throws(
      () => sink.write({ 'bad name': 'x' }),
      (e) => e instanceof TypeError && /`headersOf`.*"bad name"/.test(e.message),
    );
    assert.equal(sink.pending, 0, 'nothing was queued');
  });
});

describe('JetStreamSink', { skip }, () => {
  let jsm: JetStreamManager;
  const streams: string[] = [];
  before(async () => {
    jsm = await jetstreamManager(nc!);
  });
  after(async () => {
    await deleteStreams(jsm, streams);
    await nc?.close();
  });
  const stream = async (): Promise<string> => {
    const name = uniqueName('sink');
    streams.push(name);
    return createStream(jsm, name);
  };

  it('write resolves on PubAck; the message carries Nats-Msg-Id and the JSON payload', async () => {
    const name = await stream();
    const sink = new JetStreamSink<{ id: string; n: number }>({
      connection: nc!,
      subject: name,
      msgId: (e) => e.id,
    });
    await sink.write({ id: 'order-1', n: 1 });
    const info = await jsm.streams.info(name);
    assert.equal(info.state.messages, 1);
    const stored = await jsm.streams.getMessage(name, { seq: 1 });
    assert.equal(stored?.header.get('Nats-Msg-Id'), 'order-1');
    assert.deepEqual(stored?.json(), { id: 'order-1', n: 1 });
    await sink.close();
    assert.equal(nc!.isClosed(), false, 'a connection passed in is never closed');
  });

  it('headersOf adds its headers to the message, beside Nats-Msg-Id', async () => {
    const name = await stream();
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const sink = new JetStreamSink<{ id: string; traced: boolean }>({
      connection: nc!,
      subject: name,
      idOf: (e) => e.id,
      headersOf: (e) => (e.traced ? { traceparent } : undefined),
    });
    await sink.write({ id: 'order-1', traced: true });
    await sink.write({ id: 'order-2', traced: false });
    await sink.close();
    const first = await jsm.streams.getMessage(name, { seq: 1 });
    assert.equal(first?.header.get('traceparent'), traceparent);
    assert.equal(first?.header.get('Nats-Msg-Id'), 'order-1');
    const second = await jsm.streams.getMessage(name, { seq: 2 });
    assert.equal(second?.header.has('traceparent'), false);
    assert.equal(second?.header.get('Nats-Msg-Id'), 'order-2');
  });

  it('writing the same event again is deduplicated and counts as success', async () => {
    const name = await stream();
    const sink = new JetStreamSink<{ n: number }>({ connection: nc!, subject: name });
    const event = { n: 1 };
    await sink.write(event);
    await sink.write(event); // same object: same generated id, as a RetryingSink would retry
    await sink.write({ n: 1 }); // an equal but distinct object is a new event
    assert.deepEqual(sink.stats, { acked: 3, duplicates: 1 });
    assert.equal((await jsm.streams.info(name)).state.messages, 2);
    await sink.close();
  });

  it('metrics is the library shape (SinkMetrics); stats is a view of it', async () => {
    const name = await stream();
    const sink = new JetStreamSink<{ n: number }>({ connection: nc!, subject: name });
    const event = { n: 1 };
    await sink.write(event);
    await sink.write(event);
    const m = sink.metrics;
    assert.equal(m.events, 2);
    assert.equal(m.pending, 0);
    assert.equal(m.successes, 2);
    assert.equal(m.failures, 0);
    assert.equal(typeof m.lastSuccessAt, 'number');
    assert.equal(sink.duplicates, 1);
    assert.deepEqual(sink.stats, { acked: m.successes, duplicates: sink.duplicates });
    await sink.close();

    const lost = new JetStreamSink<number>({
      connection: nc!,
      subject: uniqueName('nostream'),
      timeout: 2_000,
    });
    await assert.rejects(lost.write(1), isJetStreamPublishError);
    assert.equal(lost.metrics.failures, 1);
    assert.equal(lost.metrics.pending, 0);
    assert.ok(isJetStreamPublishError(lost.metrics.lastError));
    await lost.close();
  });

  it('maxInFlight 1 keeps write order; maxInFlight 64 pipelines; close waits for every ack', async () => {
    for (const maxInFlight of [1, 64]) {
      const name = await stream();
      const sink = new JetStreamSink<number>({
        connection: nc!,
        subject: name,
        maxInFlight,
        msgId: (n) => `m${n}`,
      });
      const writes = Array.from({ length: 500 }, (_, i) => sink.write(i));
      let peak = 0;
      const watcher = setInterval(() => (peak = Math.max(peak, sink.size)), 1);
      await sink.close(); // resolves only after every PubAck
      clearInterval(watcher);
      await Promise.all(writes);
      assert.equal(sink.size, 0);
      assert.equal((await jsm.streams.info(name)).state.messages, 500);
      for (const seq of [1, 250, 500]) {
        const stored = await jsm.streams.getMessage(name, { seq });
        assert.equal(stored?.json(), seq - 1, `maxInFlight ${maxInFlight}: order kept`);
      }
    }
  });

  it('a server that does not answer rejects the write with reason disconnected', async () => {
    const sink = new JetStreamSink<number>({ servers: '127.0.0.1:1', subject: 'x' });
    await assert.rejects(
      sink.write(1),
      (e) => isJetStreamPublishError(e) && e.reason === 'disconnected' && e.cause !== undefined,
    );
    await sink.close();
  });

  it('no PubAck in time rejects with reason timeout; close({ signal }) rejects what is still unacknowledged', async () => {
    // A plain subscriber that never answers: the publish request waits for a PubAck forever.
    const subject = uniqueName('silent');
    const silent = nc!.subscribe(subject, { callback: () => {} });
    try {
      const sink = new JetStreamSink<number>({ connection: nc!, subject, timeout: 300 });
      await assert.rejects(
        sink.write(1),
        (e) => isJetStreamPublishError(e) && e.reason === 'timeout' && e.msgId !== '',
      );
      await sink.close();
      const slow = new JetStreamSink<number>({
        connection: nc!,
        subject,
        timeout: 60_000,
        maxInFlight: 2,
      });
      const writes = [slow.write(1), slow.write(2), slow.write(3)].map((w) =>
        w.then(
          () => 'resolved',
          (e: unknown) => (isSinkClosedError(e) ? 'closed' : String(e)),
        ),
      );
      await slow.close({ signal: AbortSignal.timeout(200) });
      assert.deepEqual(await Promise.all(writes), ['closed', 'closed', 'closed']);
    } finally {
      silent.unsubscribe();
    }
  });

  it('a subject no stream captures rejects with reason no-stream', async () => {
    const sink = new JetStreamSink<number>({
      connection: nc!,
      subject: uniqueName('nostream'),
      timeout: 2_000,
    });
    await assert.rejects(
      sink.write(1),
      (e) =>
        isJetStreamPublishError(e) && e.reason === 'no-stream' && e.code === 'ERR_NATS_PUBLISH',
    );
    await sink.close();
  });

  it('ensureStream creates the stream on first use; later writes after close fail with SinkClosedError', async () => {
    const name = uniqueName('ensure');
    streams.push(name);
    const sink = new JetStreamSink<string>({
      servers: '127.0.0.1:4222',
      subject: `${name}.created`,
      ensureStream: { name, subjects: [`${name}.>`] },
    });
    await sink.write('hello');
    assert.equal((await jsm.streams.info(name)).state.messages, 1);
    await sink.close();
    await sink.close();
    assert.throws(() => sink.write('late'), isSinkClosedError);
  });

  it('wrapped in a RetryingSink, a write that fails while NATS is down succeeds once it is back, stored once', async (t) => {
    const server = await privateNatsOrSkip(t);
    if (server === undefined) return;
    const admin = await connect({ servers: server.url, maxReconnectAttempts: -1 });
    try {
      const name = uniqueName('down');
      await createStream(await jetstreamManager(admin), name);
      const sink = new JetStreamSink<{ n: number }>({
        servers: server.url,
        connectOptions: { reconnectTimeWait: 100 },
        subject: name,
        timeout: 1_000,
      });
      await sink.write({ n: 0 });
      await server.stop();
      // Down: a write rejects (at once while disconnected, at worst after `timeout`).
      await assert.rejects(
        sink.write({ n: 1 }),
        (e) => isJetStreamPublishError(e) && ['disconnected', 'timeout'].includes(e.reason),
      );
      const retrying = new RetryingSink(sink, maxAttempts(new Breaker(1, 100), 300));
      const pending = retrying.write({ n: 2 });
      setTimeout(() => void server.start(), 500);
      await pending;
      await retrying.close();
      const check = await connect({ servers: server.url });
      const jsm2 = await jetstreamManager(check);
      const last = (await jsm2.streams.info(name)).state.last_seq;
      const stored: unknown[] = [];
      for (let seq = 1; seq <= last; seq++) {
        stored.push((await jsm2.streams.getMessage(name, { seq }))?.json());
      }
      // {n: 1} may or may not have been stored (the client might have sent it before it saw the
      // disconnect); {n: 2} was retried until acknowledged and is stored exactly once.
      assert.equal(stored.filter((e) => (e as { n: number }).n === 2).length, 1);
      assert.deepEqual(stored[0], { n: 0 });
      await check.close();
    } finally {
      await admin.close().catch(() => {});
      await server.close();
    }
  });
});
