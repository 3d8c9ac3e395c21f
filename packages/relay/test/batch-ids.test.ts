// A batch keeps its webhook-id: its members and id are fixed (in the queue file) before its
// first attempt, so after a SIGKILL the same events are re-formed into the same batch under the
// same id. Kill the relay mid-stream again and again: every acknowledged event arrives, no event
// ever arrives under two webhook-ids, and each element carries the event's own relay id.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Receiver, closeAll, post, startRelay, tempDir, waitFor, writeConfig } from './harness.js';

after(closeAll);

const ROUNDS = process.env.EVENTSINKS_LONG === '1' ? 20 : 6;

describe('relay batch ids', () => {
  it(`SIGKILL mid-stream ${ROUNDS} times: no event arrives under two webhook-ids`, async () => {
    const receiver = await new Receiver().start();
    // Slow answers: batches are in flight (sent, not yet acknowledged) when the kill comes.
    receiver.delay = 40;
    const dir = tempDir();
    const file = writeConfig(
      dir,
      `
server: { listen: 127.0.0.1:0 }
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}
    signing: { secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }
    batch: { maxSize: 7, maxDelay: 30ms }
    retry: { maxAttempts: 1000000, backoff: { base: 20ms, factor: 20ms, max: 300ms } }
`,
    );
    const acked = new Set<number>();
    let seq = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const relay = await startRelay(file, { cwd: dir });
      let running = true;
      const producer = (async () => {
        while (running) {
          const batch = Array.from({ length: 1 + Math.floor(Math.random() * 12) }, () => ({
            seq: seq++,
          }));
          try {
            const response = await post(relay.url, JSON.stringify(batch));
            if (response.status === 202) for (const e of batch) acked.add(e.seq);
          } catch {
            return; // killed mid-request: not acknowledged
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 500));
      relay.child.kill('SIGKILL');
      running = false;
      await producer;
      await relay.exited;
    }
    const relay = await startRelay(file, { cwd: dir });
    const delivered = (): Set<number> => new Set(receiver.seqs());
    await waitFor(
      () => {
        const got = delivered();
        return [...acked].every((s) => got.has(s));
      },
      120_000,
      'every acknowledged event',
    );
    relay.child.kill('SIGTERM');
    assert.equal((await relay.exited).code, 0, relay.stderr().slice(-3000));
    assert.ok(acked.size > ROUNDS * 5, `only ${acked.size} events were acknowledged`);

    const idsBySeq = new Map<number, Set<string | undefined>>();
    const relayIdBySeq = new Map<number, Set<unknown>>();
    const membersById = new Map<string | undefined, Set<number>>();
    for (const r of receiver.received) {
      const body = r.body as { seq: number; 'webhook-id'?: unknown };
      idsBySeq.set(body.seq, (idsBySeq.get(body.seq) ?? new Set()).add(r.id));
      relayIdBySeq.set(body.seq, (relayIdBySeq.get(body.seq) ?? new Set()).add(body['webhook-id']));
      membersById.set(r.id, (membersById.get(r.id) ?? new Set()).add(body.seq));
    }
    const split = [...idsBySeq].filter(([, ids]) => ids.size > 1);
    assert.deepEqual(
      split.map(([s, ids]) => `${s}: ${[...ids].join(', ')}`),
      [],
      'events that arrived under two webhook-ids',
    );
    for (const [s, ids] of relayIdBySeq) {
      const [id] = ids;
      assert.equal(ids.size, 1, `event ${s} arrived with ${ids.size} relay ids`);
      assert.match(String(id), /^[0-9a-f-]{36}$/, `event ${s} carries its relay id`);
    }
    for (const id of membersById.keys()) assert.match(String(id), /^batch_/);
  });
});
