// Guide: Webhooks and signing (docs/guide/webhooks.md).
// Run: node --import tsx examples/guide-webhooks.ts
//
// The page's receiver runs on 127.0.0.1 (a free port); the page's Endpoint and HttpSink send
// to it, signed with a fresh secret. The page's code reads the receiver's URL, the secret and
// a bearer token from the environment, so that is where this example puts them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Breaker, RetryingSink, type DeadLetter, type Sink } from 'eventsinks';
import {
  Endpoint,
  HttpSink,
  httpRetryStrategy,
  isHttpStatusError,
  isWebhookVerificationError,
  signWebhook,
  verifyWebhook,
} from 'eventsinks/http';

interface RegistryEvent {
  id: string;
  action: 'push' | 'pull' | 'delete';
  repository: string;
  tag?: string;
}

const newSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`;
Object.assign(process.env, { WEBHOOK_SECRET: newSecret(), HOOK_TOKEN: 'token-for-the-example' });

/** What the receiver processed (each webhook-id once), and what every request carried. */
const handled: unknown[] = [];
const authorizations: (string | undefined)[] = [];
function handle(event: unknown): void {
  handled.push(event);
}

// 1. The receiver, as on the page: verify the signature on the raw body, refuse stale
// timestamps, process each webhook-id once, answer 2xx to duplicates too.
const secret = process.env.WEBHOOK_SECRET!;
const processed = new Set<string>(); // use a store with a TTL in production

async function receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of req) chunks.push(chunk as Uint8Array);
  const body = Buffer.concat(chunks); // the raw bytes: do not re-serialise parsed JSON

  let id: string;
  try {
    ({ id } = await verifyWebhook(secret, req.headers, body, { tolerance: 5 * 60_000 }));
  } catch (error) {
    if (!isWebhookVerificationError(error)) throw error;
    res.writeHead(error.reason === 'missing-header' ? 400 : 401).end(error.reason);
    return;
  }
  if (!processed.has(id)) {
    processed.add(id);
    handle(JSON.parse(body.toString()));
  }
  res.writeHead(204).end(); // answer 2xx for a duplicate too, or the sender retries it again
}

const server = createServer((req, res) => {
  authorizations.push(req.headers.authorization);
  // A request the sender gave up on mid-body (its timeout) rejects: do not let that crash.
  receive(req, res).catch((error: unknown) => {
    console.error('receiver:', error);
    res.destroy();
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/registry`;
Object.assign(process.env, { HOOK_URL: url });

// 2. Sending with an Endpoint (the page's block): signed, filtered, queued, retried.
{
  // Events the endpoint gave up on: one record per event, with the last error.
  const deadLetters: Sink<DeadLetter<RegistryEvent>> = {
    write: ({ event, error, attempts }) =>
      console.error('undeliverable', event.id, attempts, error),
    close() {},
  };

  // HOOK_URL: the receiver, e.g. https://hooks.example.com/registry
  const endpoint = new Endpoint<RegistryEvent>(process.env.HOOK_URL!, {
    headers: { authorization: `Bearer ${process.env.HOOK_TOKEN}` },
    signing: { secret: process.env.WEBHOOK_SECRET! }, // "whsec_" + base64 key, shared with the receiver
    ignore: (event) => event.action === 'pull', // not sent, not counted
    capacity: 10_000, // bounded queue; a full queue makes write() wait (overflow: 'block')
    deadLetter: deadLetters,
  });

  await endpoint.write({ id: 'e1', action: 'push', repository: 'library/alpine', tag: '3.20' });
  await endpoint.write({ id: 'e2', action: 'pull', repository: 'library/alpine' }); // ignored

  console.log(endpoint.metrics());
  // { pending: 1, events: 1, successes: 0, failures: 0, errors: 0, dropped: 0, statuses: {} }
  // … and later: statuses: { '204 No Content': 1 }

  // On shutdown: deliver what is queued, give up after 10 s.
  await endpoint.close({ signal: AbortSignal.timeout(10_000) });

  // The push was processed once, signed (the receiver verified it) and with the bearer token;
  // the pull was ignored: never sent, never counted. (On a loaded machine the first attempt
  // can outlast the Endpoint's 1 s timeout: it is then retried with the same webhook-id, and
  // the receiver processes it once all the same.)
  assert.deepEqual(handled, [
    { id: 'e1', action: 'push', repository: 'library/alpine', tag: '3.20' },
  ]);
  assert.ok(authorizations.length >= 1);
  assert.ok(authorizations.every((value) => value === 'Bearer token-for-the-example'));
  const { errors, ...metrics } = endpoint.metrics();
  assert.deepEqual(metrics, {
    pending: 0,
    events: 1,
    successes: 1,
    failures: 0,
    dropped: 0,
    statuses: { '204 No Content': 1 },
  });
  console.log(
    `endpoint: 1 push delivered (${errors} attempt(s) timed out), signed and verified;`,
    '1 pull ignored;',
    { statuses: metrics.statuses },
  );
}

// 3. One request per write with an HttpSink (the page's block), and typed failures.
{
  const event: RegistryEvent = { id: 'e3', action: 'push', repository: 'library/nginx' };
  handled.length = 0;

  const sink = new HttpSink<RegistryEvent>(process.env.HOOK_URL!, {
    timeout: 5000, // the default for a bare HttpSink
    signing: { secret: process.env.WEBHOOK_SECRET! },
    encode: (event) => ({ body: JSON.stringify({ data: event }), contentType: 'application/json' }),
  });

  try {
    await sink.write(event);
  } catch (error) {
    if (isHttpStatusError(error)) console.log(error.status, error.retryable, error.retryAfter);
  }

  // The Endpoint's retry policy, by hand: refusals dropped at once, Retry-After honoured.
  const retrying = new RetryingSink(sink, httpRetryStrategy(new Breaker(10, 1000)));

  await retrying.write({ id: 'e4', action: 'delete', repository: 'library/nginx' });
  await retrying.close(); // closes `sink` too
  assert.deepEqual(handled, [
    { data: event },
    { data: { id: 'e4', action: 'delete', repository: 'library/nginx' } },
  ]);
  console.log('http sink: 2 writes resolved on 2xx, encoded as { data: event }');

  // A sender with the wrong secret is refused (401): an HttpStatusError that retrying cannot
  // fix, so httpRetryStrategy dead-letters it after one attempt, without waiting.
  const forged = new HttpSink<RegistryEvent>(process.env.HOOK_URL!, {
    signing: { secret: newSecret() },
  });
  await assert.rejects(
    forged.write(event),
    (error) => isHttpStatusError(error) && error.status === 401 && !error.retryable,
  );
  const letters: DeadLetter<RegistryEvent>[] = [];
  const refused = new RetryingSink(forged, httpRetryStrategy(new Breaker(10, 1000)), {
    deadLetter: { write: (letter) => void letters.push(letter), close() {} },
  });
  const started = Date.now();
  await refused.write(event); // resolves once dead-lettered
  await refused.close();
  assert.equal(letters.length, 1);
  assert.equal(letters[0]!.attempts, 1);
  assert.ok(isHttpStatusError(letters[0]!.error) && letters[0]!.error.status === 401);
  assert.equal(handled.length, 2);
  console.log(
    `wrong secret: 401, not retryable, dead-lettered after 1 attempt in ${Date.now() - started} ms`,
  );
}

// 4. What the receiver refuses, and a duplicate: signWebhook signs a request by hand.
{
  handled.length = 0;
  const post = async (headers: Record<string, string>, body: string) => {
    const response = await fetch(url, { method: 'POST', headers, body });
    return `${response.status} ${await response.text()}`.trim();
  };
  const body = JSON.stringify({ id: 'e5', action: 'push', repository: 'library/redis' });
  const now = Math.floor(Date.now() / 1000);
  const signed = async (id: string, timestamp: number, payload = body) => ({
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': await signWebhook(secret, id, timestamp, payload),
  });

  const headers = await signed('msg_example', now);
  assert.equal(await post(headers, body), '204');
  assert.equal(await post(headers, body), '204'); // a retry: answered 2xx, processed once
  assert.equal(handled.length, 1);
  assert.equal(await post(headers, body.replace('e5', 'e6')), '401 invalid-signature');
  assert.equal(await post({}, body), '400 missing-header');
  const stale = await signed('msg_old', now - 10 * 60);
  assert.equal(await post(stale, body), '401 stale-timestamp');
  console.log(
    'receiver: duplicate processed once; tampered body 401, no headers 400, 10-minute-old 401',
  );
}

server.closeAllConnections();
await new Promise((resolve) => server.close(resolve));
