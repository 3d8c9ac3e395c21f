import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { SinkClosedError } from '../errors/SinkClosedError.js';
import type { Sink } from '../Sink.js';
import { isJetStreamDecodeError } from './errors.js';
import {
  DEAD_LETTER_HEADERS,
  JetStreamSource,
  type JetStreamDeadLetter,
} from './JetStreamSource.js';
import {
  deleteStreams,
  privateNatsOrSkip,
  SERVICE,
  sharedConnection,
  sleep,
  uniqueName,
  waitFor,
} from './test-utils.js';

const nc = await sharedConnection();
const skip = nc === undefined ? `${SERVICE} does not answer` : false;

/** A sink whose writes wait until released. */
class GatedSink<E> implements Sink<E> {
  readonly events: E[] = [];
  readonly gates: (() => void)[] = [];
  write(event: E): Promise<void> {
    return new Promise((resolve) => {
      this.gates.push(() => {
        this.events.push(event);
        resolve();
      });
    });
  }
  release(): void {
    for (const gate of this.gates.splice(0)) gate();
  }
  close(): void {}
}

class Recording<E> implements Sink<E> {
  readonly events: E[] = [];
  constructor(private readonly fail: (event: E) => boolean = () => false) {}
  write(event: E): void {
    if (this.fail(event)) throw new Error(`refused ${JSON.stringify(event)}`);
    this.events.push(event);
  }
  close(): void {}
}

describe('JetStreamSource options', () => {
  const sink = new Recording<unknown>();
  const base = { stream: 'S', durable: 'd' };
  it('rejects bad options with an error naming the option and the value', () => {
    assert.throws(() => new JetStreamSource({} as Sink<unknown>, base), /`dst`/);
    assert.throws(() => new JetStreamSource(sink, { ...base, stream: 'a.b' }), /`stream`/);
    assert.throws(() => new JetStreamSource(sink, { ...base, durable: '' }), /`durable`/);
    assert.throws(
      () => new JetStreamSource(sink, { ...base, concurrency: 0 }),
      (e) => e instanceof RangeError && /`concurrency`.*`0` \(number\)/.test(e.message),
    );
    assert.throws(() => new JetStreamSource(sink, { ...base, maxDeliveries: 0 }), RangeError);
    assert.throws(() => new JetStreamSource(sink, { ...base, ackWait: 10 }), /`ackWait`/);
    assert.throws(
      () => new JetStreamSource(sink, { ...base, fetchExpires: 500 }),
      /`fetchExpires`/,
    );
    assert.throws(() => new JetStreamSource(sink, { ...base, retryDelay: -1 }), /`retryDelay`/);
    assert.throws(
      () => new JetStreamSource(sink, { ...base, deadLetterSubject: 'dlq.*' }),
      /`deadLetterSubject`/,
    );
    assert.throws(
      () => new JetStreamSource(sink, { ...base, deliverPolicy: 'last' as never }),
      /`deliverPolicy`/,
    );
  });
});

describe('JetStreamSource', { skip }, () => {
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  const streams: string[] = [];
  before(async () => {
    jsm = await jetstreamManager(nc!);
    js = jetstream(nc!);
  });
  after(async () => {
    await deleteStreams(jsm, streams);
    await nc?.close();
  });
  /** A stream `<name>` on subject `<name>` plus its dead-letter stream on `<name>.dlq`. */
  const setup = async (): Promise<string> => {
    const name = uniqueName('src');
    streams.push(name, `${name}_DLQ`);
    await jsm.streams.add({ name, subjects: [name] });
    await jsm.streams.add({ name: `${name}_DLQ`, subjects: [`${name}.dlq`] });
    return name;
  };
  const publish = async (subject: string, values: unknown[]): Promise<void> => {
    for (const value of values) await js.publish(subject, JSON.stringify(value));
  };
  const consumerState = async (
    stream: string,
    durable: string,
  ): Promise<{ ackPending: number; pending: number; redelivered: number; ackFloor: number }> => {
    const info = await jsm.consumers.info(stream, durable);
    return {
      ackPending: info.num_ack_pending,
      pending: info.num_pending,
      redelivered: info.num_redelivered,
      ackFloor: info.ack_floor.stream_seq,
    };
  };

  it('acknowledges a message only after its write resolved', async () => {
    const name = await setup();
    const sink = new GatedSink<number>();
    const source = new JetStreamSource(sink, { connection: nc!, stream: name, durable: 'd' });
    await source.start();
    await publish(name, [1, 2]);
    await waitFor(() => sink.gates.length === 1, 10_000, 'the first write');
    await sleep(100);
    assert.equal(sink.gates.length, 1, 'concurrency 1: the second waits for the first');
    assert.equal((await consumerState(name, 'd')).ackPending, 2, 'nothing acked yet');
    sink.release();
    await waitFor(() => sink.gates.length === 1, 10_000, 'the second write');
    await waitFor(async () => (await consumerState(name, 'd')).ackPending === 1, 10_000, 'ack 1');
    sink.release();
    await waitFor(async () => (await consumerState(name, 'd')).ackPending === 0, 10_000, 'ack 2');
    assert.deepEqual(sink.events, [1, 2]);
    assert.deepEqual(source.stats, { received: 2, acked: 2, nakked: 0, deadLettered: 0 });
    await source.close();
  });

  it('sends working() while a slow write is pending, so the message is not redelivered', async () => {
    const name = await setup();
    const sink = new GatedSink<number>();
    const source = new JetStreamSource(sink, {
      connection: nc!,
      stream: name,
      durable: 'd',
      // working() goes every third of it: a stall of this process or the server below about
      // 1.3 s cannot let it lapse.
      ackWait: 2_000,
    });
    await source.start();
    await publish(name, [1]);
    await waitFor(() => sink.gates.length === 1, 10_000, 'the write');
    await sleep(6_500); // more than three ack waits
    const state = await consumerState(name, 'd');
    assert.equal(state.redelivered, 0, 'redelivered although the write was in progress');
    sink.release();
    await source.close();
    assert.deepEqual(sink.events, [1]);
  });

  it('a failed write is handed back with a delay and retried; after maxDeliveries it is dead-lettered with headers and terminated', async () => {
    const name = await setup();
    const errors: unknown[] = [];
    const letters: JetStreamDeadLetter[] = [];
    const sink = new Recording<{ id: string }>((e) => e.id === 'bad');
    const source = new JetStreamSource(sink, {
      connection: nc!,
      stream: name,
      durable: 'd',
      maxDeliveries: 3,
      retryDelay: (deliveries) => deliveries * 20,
      deadLetterSubject: `${name}.dlq`,
      onError: (error) => errors.push(error),
      onDeadLetter: (letter) => letters.push(letter),
    });
    await source.start();
    await js.publish(name, JSON.stringify({ id: 'bad' }), { msgID: 'bad-1' });
    await publish(name, [{ id: 'good' }]);
    await waitFor(() => source.stats.deadLettered === 1, 20_000, 'the dead letter');
    assert.deepEqual(sink.events, [{ id: 'good' }]);
    assert.equal(errors.length, 3, 'one error per failed delivery');
    assert.equal(letters.length, 1);
    assert.equal(letters[0]!.reason, 'max-deliveries');
    assert.equal(letters[0]!.deliveries, 3);
    assert.equal(letters[0]!.msgId, 'bad-1');
    assert.equal(letters[0]!.messageId, 'bad-1', 'messageId, as in every adapter');
    const stored = await jsm.streams.getMessage(`${name}_DLQ`, { seq: 1 });
    assert.ok(stored);
    assert.deepEqual(stored.json(), { id: 'bad' });
    assert.equal(stored.header.get(DEAD_LETTER_HEADERS.reason), 'max-deliveries');
    assert.equal(stored.header.get(DEAD_LETTER_HEADERS.msgId), 'bad-1');
    assert.equal(stored.header.get(DEAD_LETTER_HEADERS.deliveries), '3');
    assert.equal(stored.header.get(DEAD_LETTER_HEADERS.sequence), '1');
    assert.match(stored.header.get(DEAD_LETTER_HEADERS.error), /refused/);
    await waitFor(async () => (await consumerState(name, 'd')).ackPending === 0, 10_000, 'term');
    await source.close();
  });

  it('messages that are not JSON or fail validate are dead-lettered at once and do not block', async () => {
    const name = await setup();
    const letters: JetStreamDeadLetter[] = [];
    const sink = new Recording<{ id: string }>();
    const source = new JetStreamSource(sink, {
      connection: nc!,
      stream: name,
      durable: 'd',
      validate: (v): v is { id: string } =>
        typeof v === 'object' && v !== null && typeof (v as { id?: unknown }).id === 'string',
      onDeadLetter: (letter) => letters.push(letter),
    });
    await source.start();
    await js.publish(name, 'not json {');
    await js.publish(name, new Uint8Array([0xff, 0xfe, 0x22]));
    await js.publish(name, '{"wrong":"shape"}');
    await publish(name, [{ id: 'ok' }]);
    await waitFor(() => letters.length === 3 && sink.events.length === 1, 10_000, 'all four');
    assert.ok(letters.every((l) => l.reason === 'decode' && isJetStreamDecodeError(l.error)));
    assert.match(String((letters[0]!.error as Error).message), /not valid JSON/);
    assert.match(String((letters[2]!.error as Error).message), /validate\(\) refused/);
    assert.ok(
      letters.every((l) => l.deliveries === 1),
      'no retries for a decoding failure',
    );
    await source.close();
  });

  it('a dead letter that cannot be published is not lost: the message stays and is retried', async () => {
    const name = await setup();
    const errors: unknown[] = [];
    const source = new JetStreamSource(new Recording(), {
      connection: nc!,
      stream: name,
      durable: 'd',
      retryDelay: 50,
      deadLetterSubject: `${name}.nowhere`, // no stream captures it
      onError: (error) => errors.push(error),
      onDeadLetter: () => {},
    });
    await source.start();
    await js.publish(name, 'not json');
    await waitFor(() => errors.length >= 2, 20_000, 'two failed dead-letter publishes');
    assert.equal(source.stats.deadLettered, 0);
    await source.close();
    const state = await consumerState(name, 'd');
    // Never acknowledged: the ack floor is still before it. (Right after a nak the server may
    // count the one message both as pending and as awaiting an ack, so the sum can be 2.)
    assert.equal(state.ackFloor, 0, 'the message was not acknowledged');
    assert.ok(state.pending + state.ackPending >= 1, 'the message is still there');
  });

  it('close() hands back fetched messages (once the stopped pull request expired, long before ackWait) and never acknowledges an abandoned write', async () => {
    const name = await setup();
    const gated = new GatedSink<number>();
    const first = new JetStreamSource(gated, {
      connection: nc!,
      stream: name,
      durable: 'd',
      ackWait: 60_000, // only a nak can bring these back within the test
      fetchExpires: 1_000,
    });
    await first.start();
    await publish(name, [0, 1, 2, 3, 4]);
    await waitFor(() => gated.gates.length === 1, 10_000, 'the first write');
    await first.close({ signal: AbortSignal.timeout(200) });
    gated.release(); // resolves after the deadline: must not be acked
    const peer = new Recording<number>();
    const second = new JetStreamSource(peer, { connection: nc!, stream: name, durable: 'd' });
    await second.start();
    await waitFor(() => peer.events.length === 5, 20_000, 'all five at the peer');
    assert.deepEqual([...peer.events].sort(), [0, 1, 2, 3, 4]);
    assert.equal(first.stats.acked, 0);
    await second.close();
  });

  it('sources sharing a durable share the work; a destination that reports SinkClosedError stops its source', async () => {
    const name = await setup();
    const a = new Recording<number>();
    const b: Sink<number> = {
      write(): void {
        throw new SinkClosedError('gone');
      },
      close() {},
    };
    const errors: unknown[] = [];
    const sa = new JetStreamSource(a, { connection: nc!, stream: name, durable: 'shared' });
    const sb = new JetStreamSource(b, {
      connection: nc!,
      stream: name,
      durable: 'shared',
      prefetch: 0,
      fetchExpires: 1_000, // its hand-back waits for its pull request to expire
      onError: (e) => errors.push(e),
    });
    await Promise.all([sa.start(), sb.start()]);
    await publish(
      name,
      Array.from({ length: 100 }, (_, i) => i),
    );
    await waitFor(() => sb.closed, 20_000, 'the source with a closed destination to stop');
    await waitFor(() => a.events.length === 100, 30_000, 'all of them at the other source');
    assert.ok(errors.some((e) => e instanceof SinkClosedError));
    await Promise.all([sa.close(), sb.close()]);
  });

  it('start() rejects for a missing stream and for a durable that filters another subject', async () => {
    const missing = new JetStreamSource(new Recording(), {
      connection: nc!,
      stream: uniqueName('missing'),
      durable: 'd',
    });
    await assert.rejects(missing.start(), /stream not found/);
    const name = await setup();
    await jsm.consumers.add(name, {
      durable_name: 'd',
      ack_policy: 'explicit',
      filter_subject: name,
    });
    const other = new JetStreamSource(new Recording(), {
      connection: nc!,
      stream: name,
      durable: 'd',
    });
    await assert.rejects(other.start(), /filters 'src-.*', not no subject/);
  });

  it('keeps consuming across a broker restart; nothing is lost', async (t) => {
    const server = await privateNatsOrSkip(t);
    if (server === undefined) return;
    const admin = await connect({
      servers: server.url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
    });
    const seen = new Set<number>();
    const source = new JetStreamSource<number>(
      {
        async write(n) {
          await sleep(1);
          seen.add(n);
        },
        close() {},
      },
      {
        servers: server.url,
        connectOptions: { reconnectTimeWait: 100 },
        stream: 'R',
        durable: 'd',
        concurrency: 2,
        ackWait: 2_000,
        fetchExpires: 1_000,
        ensureStream: { name: 'R', subjects: ['r'] },
        onError: () => {},
      },
    );
    try {
      await source.start();
      const js = jetstream(admin);
      const send = async (from: number, to: number): Promise<void> => {
        for (let n = from; n < to; n++) {
          for (;;) {
            try {
              await js.publish('r', JSON.stringify(n), { msgID: `n${n}`, timeout: 1_000 });
              break;
            } catch {
              await sleep(100);
            }
          }
        }
      };
      await send(0, 200);
      await waitFor(() => seen.size >= 50, 20_000, '50 consumed');
      await server.stop();
      await server.start();
      await send(200, 400);
      await waitFor(() => seen.size === 400, 60_000, `all 400 (have ${seen.size})`);
    } finally {
      await source.close({ signal: AbortSignal.timeout(5_000) });
      await admin.close().catch(() => {});
      await server.close();
    }
  });

  it('aborting `signal` closes the source', async () => {
    const name = await setup();
    const controller = new AbortController();
    const source = new JetStreamSource(new Recording(), {
      connection: nc!,
      stream: name,
      durable: 'd',
      signal: controller.signal,
    });
    await source.start();
    controller.abort();
    assert.equal(source.closed, true);
    await source.close();
  });

  it('nothing keeps the process alive after close', async () => {
    const program = `
      import { connect } from '@nats-io/transport-node';
      import { jetstreamManager } from '@nats-io/jetstream';
      import { JetStreamSink, JetStreamSource } from './src/nats/index.ts';
      const name = 'exit-' + Math.random().toString(36).slice(2);
      const nc = await connect({ servers: '127.0.0.1:4222' });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name, subjects: [name] });
      const sink = new JetStreamSink({ servers: '127.0.0.1:4222', subject: name, maxInFlight: 8 });
      const got = [];
      const source = new JetStreamSource({ write: (e) => void got.push(e), close() {} },
        { servers: '127.0.0.1:4222', stream: name, durable: 'd', ackWait: 500 });
      await source.start();
      await Promise.all([1, 2, 3].map((n) => sink.write(n)));
      while (got.length < 3) await new Promise((r) => setTimeout(r, 10));
      await Promise.all([sink.close(), source.close()]);
      await jsm.streams.delete(name);
      await nc.close();
      console.log('closed with', got.length);
    `;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', program],
      {
        cwd: new URL('../..', import.meta.url),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('exit', (c) => {
        clearTimeout(killer);
        resolve(c);
      });
    });
    assert.equal(code, 0, output);
    assert.match(output, /closed with 3/);
  });
});
