// Property tests for the HTTP adapter, with fast-check:
// - signing: whatever the id, timestamp and body, verifyWebhook and the official library accept
//   what we sign, and any change to the body is refused;
// - httpRetryStrategy: refusals drop at once without touching the wrapped strategy, Retry-After
//   is a floor on the wait;
// - Endpoint: under a random script of answers (2xx, refusals, retryable statuses, network
//   failures), with and without batching, every event is delivered once in order or
//   dead-lettered once, and the metrics add up. Uses an injected fetch, so no network.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import type { DeadLetter } from '../RetryingSink.js';
import type { RetryStrategy } from '../retry/RetryStrategy.js';
import { Endpoint } from './Endpoint.js';
import { HttpStatusError, isWebhookVerificationError } from './errors.js';
import { httpRetryStrategy } from './httpRetryStrategy.js';
import { signWebhook, verifyWebhook } from './signing.js';

const LONG = process.env.EVENTSINKS_LONG === '1';
const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

describe('http properties', () => {
  it('sign → verify round-trips for any id, body and timestamp in tolerance; tampering fails', async () => {
    const now = Date.now();
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !/[\s\r\n]/.test(s)),
        fc.string({ unit: 'grapheme', maxLength: 200 }),
        fc.integer({ min: -240, max: 240 }),
        fc.nat({ max: 199 }),
        async (id, body, skew, position) => {
          const timestamp = Math.floor(now / 1000) + skew;
          const signature = await signWebhook(secret, id, timestamp, body);
          const headers = {
            'webhook-id': id,
            'webhook-timestamp': String(timestamp),
            'webhook-signature': signature,
          };
          const verified = await verifyWebhook(secret, headers, body, { now: () => now });
          assert.deepEqual(verified, { id, timestamp });
          // The official library agrees (its clock is the real one: 240 s leaves a margin under its 5 minutes).
          new Webhook(secret).verify(body, headers, { jsonParse: false });
          // Any change to the body breaks the signature.
          const i = body.length === 0 ? 0 : position % body.length;
          const tampered = body.slice(0, i) + (body[i] === 'x' ? 'y' : 'x') + body.slice(i + 1);
          try {
            await verifyWebhook(secret, headers, tampered, { now: () => now });
            assert.fail('a tampered body was accepted');
          } catch (error) {
            assert.ok(isWebhookVerificationError(error) && error.reason === 'invalid-signature');
          }
        },
      ),
      { numRuns: LONG ? 2000 : 200 },
    );
  });

  it('httpRetryStrategy: refusals drop without telling the wrapped strategy; Retry-After is a floor', () => {
    const status = fc.constantFrom(302, 400, 404, 408, 409, 422, 425, 429, 500, 502, 503, 504);
    const step = fc.record({
      status,
      retryAfter: fc.option(fc.nat({ max: 100_000 }), { nil: undefined }),
      elapsed: fc.nat({ max: 5000 }),
      innerWait: fc.nat({ max: 3000 }),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), (steps) => {
        let clock = 1_000_000;
        let innerWait = 0;
        let innerFailures = 0;
        const inner: RetryStrategy<unknown> = {
          proceed: () => innerWait,
          failure: () => (innerFailures++, false),
          success: () => {},
        };
        const s = httpRetryStrategy(inner, { maxRetryAfter: 30_000, now: () => clock });
        let floorUntil = 0;
        let told = 0;
        for (const { status, retryAfter, elapsed, innerWait: w } of steps) {
          const error = new HttpStatusError({
            method: 'POST',
            url: 'http://x/',
            status,
            statusText: '',
            retryAfter,
            body: '',
          });
          const dropped = s.failure(undefined, error);
          assert.equal(dropped, !error.retryable);
          if (error.retryable) {
            told++;
            floorUntil = retryAfter ? clock + Math.min(retryAfter, 30_000) : 0;
          }
          assert.equal(innerFailures, told);
          clock += elapsed;
          innerWait = w;
          const wait = s.proceed(undefined);
          assert.ok(wait >= innerWait);
          if (floorUntil > 0) assert.ok(wait >= floorUntil - clock);
          assert.ok(wait <= Math.max(innerWait, 30_000));
        }
      }),
      { numRuns: LONG ? 10_000 : 1000 },
    );
  });

  it('Endpoint: every event delivered once in order or dead-lettered once; metrics add up', async () => {
    type Outcome = 200 | 204 | 302 | 400 | 404 | 408 | 429 | 500 | 503 | 'reset';
    const outcome = fc.constantFrom<Outcome>(
      200,
      200,
      200,
      204,
      302,
      400,
      404,
      408,
      429,
      500,
      503,
      503,
      'reset',
    );
    await fc.assert(
      fc.asyncProperty(
        // Every cycle of the script settles something (a 2xx or a refusal), or a retry would
        // go on forever, as it should.
        fc
          .array(outcome, { minLength: 1, maxLength: 60 })
          .filter((s) =>
            s.some((o) => o === 200 || o === 204 || o === 302 || o === 400 || o === 404),
          ),
        fc.integer({ min: 1, max: 40 }),
        fc.option(fc.integer({ min: 1, max: 7 }), { nil: undefined }),
        async (script, total, batchSize) => {
          let attempt = 0;
          let transport = 0;
          const delivered: number[] = [];
          const fetchScript = (async (_url: string, init?: RequestInit) => {
            const next = script[attempt++ % script.length]!;
            if (next === 'reset') {
              transport++;
              throw new TypeError('fetch failed', { cause: new Error('other side closed') });
            }
            if (next === 200 || next === 204) {
              const payload = JSON.parse(init?.body as string) as number | number[];
              delivered.push(...(Array.isArray(payload) ? payload : [payload]));
            }
            const headers: Record<string, string> = next === 429 ? { 'retry-after': '0' } : {};
            return new Response(next === 204 ? null : 'answer', { status: next, headers });
          }) as typeof fetch;
          const letters: DeadLetter<number>[] = [];
          const endpoint = new Endpoint<number>('http://receiver.test/hook', {
            fetch: fetchScript,
            threshold: 3,
            backoff: 0,
            deadLetter: { write: (l) => void letters.push(l), close() {} },
            ...(batchSize !== undefined && { batch: { maxSize: batchSize, maxDelay: 0 } }),
          });
          for (let i = 0; i < total; i++) void endpoint.write(i);
          await endpoint.close();

          const lettered = letters.map((l) => l.event);
          // Each event exactly once, in one of the two places; delivered ones in order.
          assert.deepEqual(
            [...delivered, ...lettered].sort((a, b) => a - b),
            Array.from({ length: total }, (_, i) => i),
          );
          assert.deepEqual(
            delivered,
            [...delivered].sort((a, b) => a - b),
          );
          for (const letter of letters) {
            assert.ok(letter.error instanceof HttpStatusError && !letter.error.retryable);
            assert.ok(letter.attempts >= 1);
          }
          const m = endpoint.metrics();
          assert.equal(m.events, total);
          assert.equal(m.pending, 0);
          assert.equal(m.successes, delivered.length);
          assert.equal(m.dropped, lettered.length);
          const statusSum = Object.values(m.statuses).reduce((a, b) => a + b, 0);
          assert.equal(statusSum, m.successes + m.failures);
          if (batchSize === undefined) {
            assert.equal(m.errors, transport);
            assert.equal(m.successes + m.failures + m.errors, attempt);
          }
        },
      ),
      { numRuns: LONG ? 1000 : 100 },
    );
  });
});
