// Retention of the message log (issue 14), the relay as a child process: delivered messages are
// purged in the background once older than `retention`, `0s` deletes them on delivery, and dead
// letters are kept whatever their age.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  Receiver,
  admin,
  closeAll,
  idsOf,
  post,
  relayIn,
  stop,
  waitFor,
  type MessageDetailJson,
} from './harness.js';

after(closeAll);

const config = (receiver: Receiver, retention: string): string => `
server: { listen: 127.0.0.1:0 }
retention: ${retention}
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}
    retry: { maxAttempts: 1, backoff: { base: 20ms, factor: 20ms, max: 100ms } }
`;

describe('retention', () => {
  it('retention 1s: a delivered message is purged (404) a few seconds later; a dead one stays', async () => {
    const receiver = await new Receiver().start();
    receiver.script = ({ body }) =>
      (body as { seq: number }).seq === 1 ? { status: 400 } : undefined;
    const { relay } = await relayIn(config(receiver, '1s'));
    const [delivered, dead] = idsOf(
      await post(relay.url, JSON.stringify([{ seq: 0 }, { seq: 1 }])),
    );
    await waitFor(() => receiver.requests >= 2, 10_000, 'both attempts');
    await waitFor(
      async () => (await admin(relay.url, `/admin/messages/${delivered}`)).status === 404,
      20_000,
      'the delivered message purged',
    );
    const kept = await admin(relay.url, `/admin/messages/${dead}`);
    assert.equal(kept.status, 200, 'a dead letter is kept');
    assert.equal((kept.json as MessageDetailJson).deliveries[0]!.status, 'dead');
    assert.equal(await stop(relay), 0);
  });

  it('retention 0s: a message is gone once delivered', async () => {
    const receiver = await new Receiver().start();
    const { relay } = await relayIn(config(receiver, '0s'));
    const [id] = idsOf(await post(relay.url, JSON.stringify({ seq: 0 })));
    await waitFor(() => receiver.received.length >= 1, 10_000, 'the delivery');
    await waitFor(
      async () => (await admin(relay.url, `/admin/messages/${id}`)).status === 404,
      3_000,
      'the message deleted on delivery',
    );
    assert.equal(await stop(relay), 0);
  });
});
