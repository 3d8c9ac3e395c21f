// Idempotent ingest (issue 14), the relay as a child process: an event carrying `idField` keeps
// that value as its relay id end to end, and an id (or an `Idempotency-Key`) seen within
// retention is acknowledged again without being stored twice, across a SIGKILL and restart.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  FAST_RETRY,
  Receiver,
  admin,
  closeAll,
  idsOf,
  kill,
  post,
  relayIn,
  stop,
  waitFor,
  type MessageDetailJson,
  type MessageListJson,
} from './harness.js';

after(closeAll);

const config = (receiver: Receiver): string => `
server: { listen: 127.0.0.1:0 }
idField: meta.eventId
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}${FAST_RETRY}
`;

describe('idempotent ingest', () => {
  it('idField and Idempotency-Key dedupe across a SIGKILL and restart', async () => {
    const receiver = await new Receiver().start();
    const { relay, dir } = await relayIn(config(receiver));
    const withIds = JSON.stringify([
      { seq: 0, meta: { eventId: 'evt-0' } },
      { seq: 1, meta: { eventId: 'evt-1' } },
    ]);
    const keyed = JSON.stringify([{ seq: 2 }, { seq: 3 }]);
    const key = { 'idempotency-key': 'order-42' };

    const first = await post(relay.url, withIds);
    assert.deepEqual(idsOf(first), ['evt-0', 'evt-1']);
    const firstKeyed = await post(relay.url, keyed, key);
    const keyedIds = idsOf(firstKeyed);
    assert.equal(keyedIds.length, 2);
    // Within the same run: acknowledged again, the same answer.
    assert.deepEqual(idsOf(await post(relay.url, withIds)), ['evt-0', 'evt-1']);
    const again = await post(relay.url, keyed, key);
    assert.equal(again.status, 202);
    assert.deepEqual(again.json, firstKeyed.json);

    await waitFor(() => receiver.received.length >= 4, 10_000, 'four deliveries');
    // Delivered under the event's own id.
    const byId = new Map(receiver.received.map((r) => [(r.body as { seq: number }).seq, r.id]));
    assert.equal(byId.get(0), 'evt-0');
    assert.equal(byId.get(1), 'evt-1');
    assert.equal(byId.get(2), keyedIds[0]);
    const detail = await admin(relay.url, '/admin/messages/evt-0');
    assert.equal(detail.status, 200);
    assert.equal((detail.json as MessageDetailJson).id, 'evt-0');
    // Every delivery recorded before the kill, so nothing is legitimately sent again after it.
    await waitFor(
      async () =>
        ((await admin(relay.url, '/admin/messages?status=pending')).json as MessageListJson).items
          .length === 0,
      5_000,
      'nothing pending',
    );

    await kill(relay);
    const { relay: restarted } = await relayIn(config(receiver), dir);
    assert.deepEqual(idsOf(await post(restarted.url, withIds)), ['evt-0', 'evt-1']);
    const afterRestart = await post(restarted.url, keyed, key);
    assert.equal(afterRestart.status, 202);
    assert.deepEqual(afterRestart.json, firstKeyed.json);
    // Mixed: one known id, one new one: the new one alone is stored and delivered.
    assert.deepEqual(
      idsOf(
        await post(
          restarted.url,
          JSON.stringify([
            { seq: 0, meta: { eventId: 'evt-0' } },
            { seq: 4, meta: { eventId: 'evt-4' } },
          ]),
        ),
      ),
      ['evt-0', 'evt-4'],
    );
    await waitFor(() => receiver.received.length >= 5, 10_000, 'the new event');
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(
      receiver.seqs().sort((a, b) => a - b),
      [0, 1, 2, 3, 4],
      'each event delivered once',
    );
    const list = (await admin(restarted.url, '/admin/messages?limit=100')).json as MessageListJson;
    assert.equal(list.items.length, 5, 'five messages stored');
    assert.equal(await stop(restarted), 0);
  });

  it('an event without the idField gets a generated id, sent as its webhook-id', async () => {
    const receiver = await new Receiver().start();
    const { relay } = await relayIn(config(receiver));
    const [generated] = idsOf(await post(relay.url, JSON.stringify({ seq: 0 })));
    assert.ok(generated && generated.length > 0);
    await waitFor(() => receiver.received.length >= 1, 10_000, 'the delivery');
    assert.equal(receiver.received[0]!.id, generated);
    assert.equal(await stop(relay), 0);
  });
});
