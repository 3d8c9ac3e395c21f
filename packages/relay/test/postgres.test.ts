// Three relay processes on one PostgreSQL schema (issue 15): a producer spreads keyed events
// over them, one relay is SIGKILLed mid-stream and restarted later, leases are short. Every
// event answered 202 must be delivered at least once, the first deliveries of each key in the
// order it was produced, and the admin API of any relay must see every message. Duplicates
// (a delivery in flight at the kill, sent again after its lease expired) are allowed, counted
// and printed.
//
// Needs the local PostgreSQL (postgres://postgres@127.0.0.1:5432/test, or EVENTSINKS_PG_URL):
// skipped loudly without it, a failure when CI is set.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import {
  FAST_RETRY,
  Receiver,
  admin,
  closeAll,
  kill,
  post,
  startRelay,
  stop,
  tempDir,
  waitFor,
  writeConfig,
  type RelayProcess,
} from './harness.js';
import { PG_URL, needPostgres, pgQuery } from './pg.js';

after(closeAll);

const URL = PG_URL;
const KEYS = 8;

interface Keyed {
  seq: number;
  k: string;
}

describe('relays on PostgreSQL', () => {
  it('three relays, one SIGKILLed and restarted: every 202 delivered, per-key order, admin sees all', async (t) => {
    if (!(await needPostgres(t, 'relays on PostgreSQL', URL))) return;
    const schema = `e2e_${randomBytes(6).toString('hex')}`;
    const receiver = await new Receiver().start();
    const relays: (RelayProcess | undefined)[] = [];
    try {
      const yaml = `
server: { listen: 127.0.0.1:0 }
log: { level: warn }
store: { type: postgres, url: "${URL}", schema: ${schema}, leaseTimeout: 2s }
destinations:
  - name: hooks
    type: webhook
    url: ${receiver.url}
    orderingKey: k
    concurrency: 4${FAST_RETRY}
`;
      const files = [0, 1, 2].map(() => writeConfig(tempDir(), yaml));
      // Started one after the other here; concurrent starts are the store's own test.
      for (const file of files) relays.push(await startRelay(file));

      const acked: Keyed[] = [];
      let seq = 0;
      let running = true;
      let turn = 0;
      // One producer, each request after the previous answer: a key's events are produced in
      // seq order, so its first deliveries must come in that order whichever relay took them.
      const producer = (async () => {
        while (running) {
          const i = turn++ % 3;
          const relay = relays[i];
          if (relay === undefined) continue;
          const batch: Keyed[] = Array.from({ length: 1 + Math.floor(Math.random() * 8) }, () => {
            const s = seq++;
            return { seq: s, k: `k${s % KEYS}` };
          });
          try {
            const response = await post(relay.url, JSON.stringify(batch));
            if (response.status === 202) acked.push(...batch);
          } catch {
            // The relay was killed mid-request: not acknowledged, so not owed.
          }
        }
      })();

      await new Promise((r) => setTimeout(r, 1500));
      const victim = relays[1]!;
      relays[1] = undefined;
      await kill(victim);
      const killedAt = Date.now();
      await new Promise((r) => setTimeout(r, 2500));
      relays[1] = await startRelay(files[1]!);
      await new Promise((r) => setTimeout(r, 1000));
      running = false;
      await producer;

      const firstAt = new Map<number, number>();
      const deliveredSeqs = (): Set<number> => new Set(receiver.seqs());
      try {
        await waitFor(
          () => {
            const got = deliveredSeqs();
            return acked.every((e) => got.has(e.seq));
          },
          25_000,
          'every acknowledged event delivered',
        );
      } catch (error) {
        const got = deliveredSeqs();
        const missing = acked.filter((e) => !got.has(e.seq)).map((e) => e.seq);
        throw new Error(
          `${missing.length} of ${acked.length} acknowledged events not delivered (first: ${missing.slice(0, 10).join(', ')}); logs:\n` +
            relays.map((r) => r?.stderr().slice(-1500) ?? '').join('\n---\n'),
          { cause: error },
        );
      }

      // Per key, the first delivery of each event in the order produced.
      const received = receiver.received.map((r) => r.body as Keyed);
      for (const [i, e] of received.entries()) if (!firstAt.has(e.seq)) firstAt.set(e.seq, i);
      const byKey = new Map<string, number[]>();
      for (const e of received) {
        if (firstAt.get(e.seq) !== received.indexOf(e)) continue;
        byKey.set(e.k, [...(byKey.get(e.k) ?? []), e.seq]);
      }
      for (const [k, seqs] of byKey) {
        assert.deepEqual(
          seqs,
          [...seqs].sort((a, b) => a - b),
          `key ${k}: first deliveries out of order`,
        );
      }
      const duplicates = received.length - firstAt.size;
      const lastDelivery = Math.max(...receiver.log.map((r) => r.at));
      console.log(
        `relays on postgres: 3 relays, 1 SIGKILL; sent ${seq}, acknowledged ${acked.length}, ` +
          `delivered ${firstAt.size}, lost 0, duplicates ${duplicates}; last delivery ` +
          `${((lastDelivery - killedAt) / 1000).toFixed(1)}s after the kill`,
      );
      t.diagnostic(`acknowledged ${acked.length}, duplicates ${duplicates}`);
      assert.ok(acked.length > 50, `only ${acked.length} events were acknowledged`);

      // Any relay's admin API sees every message, whichever relay ingested it.
      for (const relay of relays) {
        const ids = new Set<string>();
        let cursor: string | null = null;
        do {
          const page: { status: number; json: unknown } = await admin(
            relay!.url,
            `/admin/messages?limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`,
          );
          assert.equal(page.status, 200);
          const json = page.json as { items: { id: string }[]; next: string | null };
          for (const item of json.items) ids.add(item.id);
          cursor = json.next;
        } while (cursor !== null);
        assert.ok(
          ids.size >= acked.length,
          `${relay!.url} lists ${ids.size} messages, ${acked.length} were acknowledged`,
        );
      }
      for (const relay of relays) assert.equal(await stop(relay!), 0);
    } finally {
      await closeAll();
      await pgQuery(URL, `drop schema if exists ${schema} cascade`);
    }
  });
});
