// The delivery engine end to end (issue 14), the relay as a child process against local
// receivers: concurrency reached and never passed, the rate limit held, a 429's Retry-After
// pausing the whole destination, auto-disable and enable, and the attempt log.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  FAST_RETRY,
  Receiver,
  admin,
  closeAll,
  destinationStatus,
  idsOf,
  logLines,
  post,
  relayIn,
  stop,
  waitFor,
  type MessageDetailJson,
  type MessageListJson,
} from './harness.js';

after(closeAll);

const webhook = (receiver: Receiver, extra = ''): string => `
server: { listen: 127.0.0.1:0 }
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}${FAST_RETRY}${extra}
`;

const events = (count: number, from = 0): string =>
  JSON.stringify(Array.from({ length: count }, (_, i) => ({ seq: from + i })));

describe('delivery engine: pace', () => {
  it('concurrency 8 with a 200 ms receiver: exactly 8 requests in flight at most', async () => {
    const receiver = await new Receiver().start();
    receiver.delay = 200;
    const { relay } = await relayIn(webhook(receiver, '\n    concurrency: 8'));
    idsOf(await post(relay.url, events(40)));
    await waitFor(() => receiver.received.length >= 40, 30_000, '40 deliveries');
    assert.equal(receiver.maxInFlight, 8, `max in flight ${receiver.maxInFlight}`);
    assert.deepEqual(
      [...new Set(receiver.seqs())].sort((a, b) => a - b),
      Array.from({ length: 40 }, (_, i) => i),
    );
    assert.equal(await stop(relay), 0);
  });

  it('rateLimit 20/s: no 1-second window holds more than 22 request starts; 60 take ≥ 2.5 s', async () => {
    const receiver = await new Receiver().start();
    const { relay } = await relayIn(webhook(receiver, '\n    rateLimit: "20/s"'));
    const ids = idsOf(await post(relay.url, events(60)));
    await waitFor(() => receiver.received.length >= 60, 30_000, '60 deliveries');
    // When the relay started each attempt, by its own clock: the receiver's clock runs in this
    // process, whose own stalls would bunch the arrivals it stamps and fail the bound.
    const starts: number[] = [];
    await waitFor(
      async () => {
        starts.length = 0;
        for (const id of ids) {
          const detail = (await (await fetch(`${relay.url}/admin/messages/${id}`)).json()) as {
            deliveries: { attempts: { at: string }[] }[];
          };
          const at = detail.deliveries[0]?.attempts[0]?.at;
          if (at === undefined) return false;
          starts.push(Date.parse(at));
        }
        return true;
      },
      30_000,
      'every attempt recorded',
    );
    starts.sort((a, b) => a - b);
    let most = 0;
    for (let i = 0; i < starts.length; i++) {
      let j = i;
      while (j < starts.length && starts[j]! < starts[i]! + 1000) j++;
      most = Math.max(most, j - i);
    }
    const span = starts[starts.length - 1]! - starts[0]!;
    assert.ok(most <= 22, `${most} request starts in one second`);
    assert.ok(span >= 2500, `60 requests took only ${span} ms`);
    assert.equal(await stop(relay), 0);
  });

  it('a 429 with Retry-After: 2 pauses the whole destination for about 2 s', async () => {
    const receiver = await new Receiver().start();
    receiver.script = ({ n }) =>
      n === 0 ? { status: 429, headers: { 'retry-after': '2' } } : undefined;
    const { relay } = await relayIn(webhook(receiver));
    idsOf(await post(relay.url, events(1)));
    await waitFor(() => receiver.log.some((r) => r.end !== undefined), 10_000, 'the 429');
    const answered = receiver.log[0]!.end!;
    // Events of their own (no key, no retry of theirs): only the destination's pause holds them.
    idsOf(await post(relay.url, events(5, 1)));
    await waitFor(() => receiver.received.length >= 6, 20_000, 'six deliveries');
    const next = Math.min(...receiver.log.slice(1).map((r) => r.at));
    assert.ok(next - answered >= 1800, `a request ${next - answered} ms after the 429`);
    assert.deepEqual(
      [...receiver.seqs()].sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5],
    );
    assert.equal(await stop(relay), 0);
  });
});

describe('delivery engine: disableAfter', () => {
  it('a destination failing for disableAfter is disabled, keeps its events, and resumes when enabled', async () => {
    const receiver = await new Receiver().start();
    receiver.status = 500;
    const { relay } = await relayIn(webhook(receiver, '\n    disableAfter: 1s'));
    const ids = idsOf(await post(relay.url, events(3)));
    await waitFor(
      async () => (await destinationStatus(relay.url, 'hooks')).state === 'disabled',
      15_000,
      'state disabled',
    );
    const disabled = await destinationStatus(relay.url, 'hooks');
    assert.equal(disabled.pending, 3);
    assert.equal(disabled.deadLetters, 0);
    assert.ok(disabled.lastSuccessAt == null, `lastSuccessAt ${disabled.lastSuccessAt}`);
    assert.ok(disabled.lastError, 'lastError is set');
    const line = logLines(relay).find(
      (l) => l.level === 50 && /disabl/i.test(JSON.stringify(l)) && /hooks/.test(JSON.stringify(l)),
    );
    assert.ok(line, `an error line says hooks is disabled:\n${relay.stderr().slice(-3000)}`);
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    const stateLine = metrics
      .split('\n')
      .find(
        (l) =>
          l.startsWith('eventsinks_relay_destination_state{') &&
          l.includes('destination="hooks"') &&
          l.includes('state="disabled"'),
      );
    assert.match(stateLine ?? '', / 1$/, `the state metric says disabled:\n${metrics}`);
    assert.match(metrics, /eventsinks_relay_destination_disabled_total\{destination="hooks"\} 1/);

    // Stays pending (not dead), and nothing more is sent while disabled.
    const dead = (await admin(relay.url, '/admin/messages?destination=hooks&status=dead')).json;
    assert.deepEqual((dead as MessageListJson).items, []);
    const pending = (await admin(relay.url, '/admin/messages?destination=hooks&status=pending'))
      .json as MessageListJson;
    assert.deepEqual(pending.items.map((m) => m.id).sort(), [...ids].sort());
    await new Promise((r) => setTimeout(r, 300));
    const sent = receiver.requests;
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(receiver.requests, sent, 'no request while disabled');

    receiver.status = 200;
    const enabled = await admin(relay.url, '/admin/destinations/hooks/enable', 'POST');
    assert.ok(enabled.status >= 200 && enabled.status < 300, `enable answered ${enabled.status}`);
    await waitFor(() => receiver.received.length >= 3, 15_000, 'delivery after enable');
    await waitFor(
      async () => (await destinationStatus(relay.url, 'hooks')).state === 'healthy',
      10_000,
      'state healthy',
    );
    const healthy = await destinationStatus(relay.url, 'hooks');
    assert.equal(healthy.pending, 0);
    assert.ok(healthy.lastSuccessAt !== null && !Number.isNaN(Date.parse(healthy.lastSuccessAt)));
    assert.equal(await stop(relay), 0);
  });

  it('POST disable stops delivery; POST enable resumes it', async () => {
    const receiver = await new Receiver().start();
    const { relay } = await relayIn(webhook(receiver));
    const disabled = await admin(relay.url, '/admin/destinations/hooks/disable', 'POST');
    assert.ok(
      disabled.status >= 200 && disabled.status < 300,
      `disable answered ${disabled.status}`,
    );
    assert.equal((await destinationStatus(relay.url, 'hooks')).state, 'disabled');
    idsOf(await post(relay.url, events(2)));
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(receiver.requests, 0);
    assert.equal((await destinationStatus(relay.url, 'hooks')).pending, 2);
    await admin(relay.url, '/admin/destinations/hooks/enable', 'POST');
    await waitFor(() => receiver.received.length >= 2, 10_000, 'delivery after enable');
    const unknown = await admin(relay.url, '/admin/destinations/nope/enable', 'POST');
    assert.equal(unknown.status, 404);
    assert.equal(await stop(relay), 0);
  });
});

describe('delivery engine: the attempt log', () => {
  it('two failures then a success: 3 attempts with status, durationMs, nextAt on the failed, 1 KiB of response', async () => {
    const receiver = await new Receiver().start();
    const long = 'r'.repeat(3000);
    receiver.script = ({ n }) =>
      n < 2 ? { status: 500, body: `nope ${n}` } : { status: 200, body: long };
    const { relay } = await relayIn(webhook(receiver));
    const [id] = idsOf(await post(relay.url, events(1)));
    await waitFor(() => receiver.received.length >= 1, 10_000, 'the delivery');
    let detail: MessageDetailJson | undefined;
    await waitFor(
      async () => {
        const { status, json } = await admin(relay.url, `/admin/messages/${id}`);
        if (status !== 200) return false;
        detail = json as MessageDetailJson;
        return detail.deliveries[0]?.status === 'delivered';
      },
      5_000,
      'the delivery recorded',
    );
    assert.ok(detail);
    assert.equal(detail.id, id);
    assert.equal(detail.source, 'http');
    assert.deepEqual(detail.event, { seq: 0 });
    assert.ok(!Number.isNaN(Date.parse(detail.receivedAt)), `receivedAt ${detail.receivedAt}`);
    assert.equal(detail.deliveries.length, 1);
    const [delivery] = detail.deliveries;
    assert.equal(delivery!.destination, 'hooks');
    const attempts = delivery!.attempts;
    assert.equal(attempts.length, 3, JSON.stringify(attempts));
    assert.deepEqual(
      attempts.map((a) => a.status),
      [500, 500, 200],
    );
    for (const a of attempts) {
      assert.ok(!Number.isNaN(Date.parse(a.at)), `at ${a.at}`);
      assert.equal(typeof a.durationMs, 'number');
      assert.ok(a.durationMs >= 0);
    }
    assert.ok(Date.parse(attempts[0]!.at) <= Date.parse(attempts[1]!.at));
    assert.ok(Date.parse(attempts[1]!.at) <= Date.parse(attempts[2]!.at));
    for (const [i, failed] of attempts.slice(0, 2).entries()) {
      assert.ok(failed.nextAt !== undefined && !Number.isNaN(Date.parse(failed.nextAt)));
      assert.ok(Date.parse(failed.nextAt) >= Date.parse(failed.at));
      assert.equal(failed.response, `nope ${i}`);
    }
    assert.equal(attempts[2]!.nextAt, undefined);
    assert.equal(attempts[2]!.error, undefined);
    assert.equal(attempts[2]!.response, long.slice(0, 1024));

    const list = (await admin(relay.url, '/admin/messages?destination=hooks'))
      .json as MessageListJson;
    assert.deepEqual(list.items[0]?.deliveries, [
      { destination: 'hooks', status: 'delivered', attempts: 3 },
    ]);
    assert.equal(await stop(relay), 0);
  });

  it('GET /admin/messages/{id} of an unknown id is 404', async () => {
    const receiver = await new Receiver().start();
    const { relay } = await relayIn(webhook(receiver));
    assert.equal((await admin(relay.url, '/admin/messages/no-such-id')).status, 404);
    assert.equal(await stop(relay), 0);
  });
});
