// 10,000 events through one signed Endpoint while the receiver answers 503 to 30% of requests at
// random and, now and then, processes a request but answers only after the client's timeout.
// Every event must arrive, in order; the only duplicates allowed are retries of a request that
// timed out after the receiver had processed it, recognisable by their webhook-id.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Endpoint } from './Endpoint.js';
import { verifyWebhook } from './signing.js';
import { reply, startServer } from './test-utils.js';

interface Ev {
  seq: number;
}

const EVENTS = 10_000;
const TIMEOUT = 250;

describe('Endpoint under faults', () => {
  it('10,000 events, 30% 503s and late answers: all delivered in order, duplicates explained, metrics add up', async (t) => {
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    const processed: { id: string; seq: number }[] = [];
    let answered503 = 0;
    let lateAnswers = 0;
    let badSignatures = 0;
    const server = await startServer(async (received, res) => {
      try {
        await verifyWebhook(secret, received.headers, received.body);
      } catch {
        badSignatures++;
        reply(res, 401);
        return;
      }
      if (Math.random() < 0.3) {
        answered503++;
        reply(res, 503);
        return;
      }
      const { seq } = JSON.parse(received.body.toString()) as Ev;
      processed.push({ id: String(received.headers['webhook-id']), seq });
      if (Math.random() < 0.002) {
        // Processed, but the answer comes after the client gave up: it will send it again.
        lateAnswers++;
        setTimeout(() => reply(res, 200), TIMEOUT * 2);
      } else {
        reply(res, 200);
      }
    });

    // Every attempt as the client saw it, through an injected fetch.
    const failedAttempts = new Map<string, number>();
    let attempts = 0;
    const recordingFetch = (async (input: string, init?: RequestInit) => {
      attempts++;
      const id = new Headers(init?.headers).get('webhook-id') ?? '';
      try {
        return await fetch(input, init);
      } catch (error) {
        failedAttempts.set(id, (failedAttempts.get(id) ?? 0) + 1);
        throw error;
      }
    }) as typeof fetch;

    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
      timeout: TIMEOUT,
      threshold: 10,
      backoff: 5,
      signing: { secret },
      fetch: recordingFetch,
    });
    const started = performance.now();
    try {
      for (let seq = 0; seq < EVENTS; seq++) assert.equal(endpoint.write({ seq }), undefined);
      await endpoint.close();
    } finally {
      await server.close();
    }
    const elapsed = performance.now() - started;

    assert.equal(badSignatures, 0);
    // Deduplicated by webhook-id, as a receiver following Standard Webhooks would: every event
    // once, in order.
    const seqOf = new Map<string, number>();
    const unique: number[] = [];
    const copies = new Map<string, number>();
    for (const { id, seq } of processed) {
      copies.set(id, (copies.get(id) ?? 0) + 1);
      const known = seqOf.get(id);
      if (known === undefined) {
        seqOf.set(id, seq);
        unique.push(seq);
      } else {
        assert.equal(known, seq, `webhook-id ${id} carried two different events`);
      }
    }
    assert.equal(unique.length, EVENTS);
    for (let i = 0; i < EVENTS; i++) if (unique[i] !== i) assert.fail(`event ${i} out of order`);
    // A duplicate only ever follows an attempt the client saw fail without a response.
    let duplicates = 0;
    for (const [id, n] of copies) {
      if (n === 1) continue;
      duplicates += n - 1;
      const failed = failedAttempts.get(id) ?? 0;
      assert.ok(n - 1 <= failed, `${id} processed ${n} times after ${failed} failed attempts`);
    }
    assert.ok(lateAnswers === 0 || duplicates > 0, 'late answers must have caused retries');

    const m = endpoint.metrics();
    let timedOut = 0;
    for (const n of failedAttempts.values()) timedOut += n;
    t.diagnostic(
      `${EVENTS} events in ${(elapsed / 1000).toFixed(1)} s: ${attempts} requests, ` +
        `${answered503} answered 503, ${lateAnswers} answered late, ${timedOut} failed without a response, ` +
        `${processed.length} processed, ${duplicates} duplicates (all explained)`,
    );
    t.diagnostic(`metrics ${JSON.stringify(m)}`);
    assert.equal(m.events, EVENTS);
    assert.equal(m.successes, EVENTS);
    assert.equal(m.pending, 0);
    assert.equal(m.dropped, 0);
    assert.equal(m.statuses['200 OK'], EVENTS);
    assert.equal(m.failures, m.statuses['503 Service Unavailable'] ?? 0);
    assert.equal(Object.keys(m.statuses).length, m.failures > 0 ? 2 : 1);
    // Every attempt is exactly one of: success, failure (a status), error (no response).
    assert.equal(m.successes + m.failures + m.errors, attempts);
    assert.equal(m.errors, timedOut);
    // The receiver answered 503 to every counted failure (some 503s may have come too late).
    assert.ok(m.failures <= answered503);
    assert.equal(processed.length, EVENTS + duplicates);
  });
  it('the same 10,000 events batched by 100: delivered in order, duplicates explained, metrics add up', async (t) => {
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    const processed: { id: string; seqs: number[] }[] = [];
    let answered503 = 0;
    let lateAnswers = 0;
    const server = await startServer(async (received, res) => {
      await verifyWebhook(secret, received.headers, received.body);
      if (Math.random() < 0.3) {
        answered503++;
        reply(res, 503);
        return;
      }
      const batch = JSON.parse(received.body.toString()) as Ev[];
      processed.push({ id: String(received.headers['webhook-id']), seqs: batch.map((e) => e.seq) });
      if (Math.random() < 0.05) {
        lateAnswers++;
        setTimeout(() => reply(res, 200), TIMEOUT * 2);
      } else {
        reply(res, 200);
      }
    });
    const endpoint = new Endpoint<Ev>(`${server.origin}/hook`, {
      timeout: TIMEOUT,
      threshold: 10,
      backoff: 5,
      signing: { secret },
      batch: { maxSize: 100, maxDelay: 20 },
    });
    try {
      for (let seq = 0; seq < EVENTS; seq++) assert.equal(endpoint.write({ seq }), undefined);
      await endpoint.close();
    } finally {
      await server.close();
    }
    const seen = new Map<string, string>();
    const unique: number[] = [];
    let duplicates = 0;
    for (const { id, seqs } of processed) {
      const key = seqs.join(',');
      const known = seen.get(id);
      if (known === undefined) {
        seen.set(id, key);
        unique.push(...seqs);
      } else {
        assert.equal(known, key, `webhook-id ${id} carried two different batches`);
        duplicates += seqs.length;
      }
    }
    assert.equal(unique.length, EVENTS);
    for (let i = 0; i < EVENTS; i++) if (unique[i] !== i) assert.fail(`event ${i} out of order`);
    const m = endpoint.metrics();
    t.diagnostic(
      `${processed.length} batches processed, ${duplicates} events duplicated, ` +
        `${answered503} answered 503, ${lateAnswers} answered late; metrics ${JSON.stringify(m)}`,
    );
    // Each duplicate follows an attempt at its batch that got no answer, which counted the
    // batch's events in `errors`.
    assert.ok(duplicates <= m.errors, `${duplicates} duplicated events, ${m.errors} errors`);
    assert.equal(m.events, EVENTS);
    assert.equal(m.successes, EVENTS);
    assert.equal(m.pending, 0);
    assert.equal(m.dropped, 0);
    assert.equal(m.statuses['200 OK'], EVENTS);
    assert.equal(m.failures, m.statuses['503 Service Unavailable'] ?? 0);
  });
});
