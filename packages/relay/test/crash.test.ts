// SIGKILL the relay mid-stream, again and again, on the same data directory: every event that
// was answered 202 must be delivered in the end (lost = 0). Duplicates are allowed
// (at-least-once: an event in flight at a kill is delivered again) and reported.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  Receiver,
  closeAll,
  post,
  runCli,
  startRelay,
  tempDir,
  waitFor,
  writeConfig,
} from './harness.js';

after(closeAll);

const ROUNDS = process.env.EVENTSINKS_LONG === '1' ? 30 : 10;

describe('relay crash safety', () => {
  it(`SIGKILL mid-stream ${ROUNDS} times: every event that got a 202 is delivered`, async (t) => {
    const receiver = await new Receiver().start();
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
    # Never give up here: on a loaded machine a slow answer must not turn into a dead letter.
    retry: { maxAttempts: 1000000, backoff: { base: 20ms, factor: 20ms, max: 500ms } }
`,
    );
    const acked = new Set<number>();
    let seq = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const relay = await startRelay(file, { cwd: dir });
      let running = true;
      const producer = (async () => {
        while (running) {
          const batch = Array.from({ length: 1 + Math.floor(Math.random() * 30) }, () => ({
            seq: seq++,
          }));
          try {
            const response = await post(relay.url, JSON.stringify(batch));
            if (response.status === 202) for (const e of batch) acked.add(e.seq);
          } catch {
            return; // the relay is gone mid-request: this batch was not acknowledged
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 150 + Math.random() * 600));
      relay.child.kill('SIGKILL');
      running = false;
      await producer;
      await relay.exited;
    }
    // A last run with no kill delivers whatever the kills left on disk.
    const relay = await startRelay(file, { cwd: dir });
    const delivered = (): Set<number> => new Set(receiver.seqs());
    try {
      await waitFor(
        () => {
          const got = delivered();
          return [...acked].every((s) => got.has(s));
        },
        180_000,
        'every acknowledged event',
      );
    } catch (error) {
      const got = delivered();
      const missing = [...acked].filter((s) => !got.has(s));
      const dead = await runCli(['dlq', 'list', 'hooks', '--json', '--config', file], { cwd: dir });
      throw new Error(
        `${missing.length} acknowledged events not delivered (first: ${missing.slice(0, 10).join(', ')}); ` +
          `dead letters: ${dead.stdout.trim().split('\n').filter(Boolean).length}; relay log:\n${relay.stderr().slice(-3000)}`,
        { cause: error },
      );
    }
    relay.child.kill('SIGTERM');
    assert.equal((await relay.exited).code, 0);
    const unique = delivered();
    const lost = [...acked].filter((s) => !unique.has(s));
    const duplicates = receiver.received.length - unique.size;
    t.diagnostic(
      `relay crash test: ${ROUNDS} kills, ${acked.size} acknowledged, ${unique.size} delivered, ` +
        `lost ${lost.length}, duplicates ${duplicates}`,
    );
    console.log(
      `relay crash test: ${ROUNDS} kills, sent ${seq}, acknowledged ${acked.size}, delivered ${unique.size}, lost ${lost.length}, duplicates ${duplicates}`,
    );
    assert.deepEqual(lost, []);
    assert.ok(acked.size > ROUNDS * 10, `only ${acked.size} events were acknowledged`);
    // A duplicate carries the webhook-id of its first delivery: receivers can drop it.
    const idsBySeq = new Map<number, Set<string | undefined>>();
    for (const r of receiver.received) {
      const s = (r.body as { seq: number }).seq;
      idsBySeq.set(s, (idsBySeq.get(s) ?? new Set()).add(r.id));
    }
    for (const [s, ids] of idsBySeq)
      assert.equal(ids.size, 1, `event ${s} arrived under ${ids.size} ids`);
    await receiver.close();
  });
});
