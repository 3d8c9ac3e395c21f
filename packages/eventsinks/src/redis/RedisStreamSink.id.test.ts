// Issue 12, item 8: RedisStreamSink's default id is stable per event, like the NATS and AMQP
// sinks', so a retried write carries the id of its first attempt and consumers can deduplicate.
// A scripted client stands in for node-redis: the behaviour under test is the sink's alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Breaker } from '../retry/Breaker.js';
import { RetryingSink } from '../RetryingSink.js';
import type { RedisStreamClient } from './client.js';
import { RedisStreamSink } from './RedisStreamSink.js';

function scriptedClient(fail: number): { client: RedisStreamClient; ids: string[] } {
  const ids: string[] = [];
  let calls = 0;
  const client = {
    isReady: true,
    isOpen: true,
    sendCommand(args: readonly string[]): Promise<unknown> {
      const at = args.indexOf('id');
      ids.push(args[at + 1]!);
      // The first `fail` XADDs get an error reply; then Redis answers with an entry id.
      return ++calls <= fail
        ? Promise.reject(new Error('LOADING Redis is loading the dataset in memory'))
        : Promise.resolve(`${calls}-0`);
    },
    duplicate: () => client,
    connect: () => Promise.resolve(),
    destroy() {},
    on: () => client,
    off: () => client,
  } as unknown as RedisStreamClient;
  return { client, ids };
}

describe('RedisStreamSink ids', () => {
  it('a retried write keeps the id of its first attempt; another event gets another', async () => {
    const { client, ids } = scriptedClient(2);
    const sink = new RedisStreamSink<{ n: number }>(client, { stream: 'orders' });
    const retrying = new RetryingSink(sink, new Breaker(1, 1), { onDrop: () => {} });
    await retrying.write({ n: 1 });
    await retrying.write({ n: 2 });
    await retrying.close();
    assert.equal(ids.length, 4, `two failed attempts, then one XADD per event: ${ids.join(', ')}`);
    assert.equal(new Set(ids.slice(0, 3)).size, 1, `one id for every attempt: ${ids.join(', ')}`);
    assert.notEqual(ids[3], ids[0]);
    assert.match(ids[0]!, /^[0-9a-f-]{36}$/);
  });

  it('idOf still wins', async () => {
    const { client, ids } = scriptedClient(0);
    const sink = new RedisStreamSink<{ n: number }>(client, {
      stream: 'orders',
      idOf: (e) => `order-${e.n}`,
    });
    await sink.write({ n: 7 });
    await sink.close();
    assert.deepEqual(ids, ['order-7']);
  });
});
