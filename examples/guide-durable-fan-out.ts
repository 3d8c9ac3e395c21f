// Guide: Webhooks and signing, "Durable, signed fan-out" (docs/guide/webhooks.md).
// Run: node --import tsx examples/guide-durable-fan-out.ts
//
// Two receivers on 127.0.0.1 (a free port) verify every request and process each webhook-id
// once. The audit receiver is down (503) at first: its events wait in its file across a
// restart (a second set of queues on the same files), and arrive after it under the ids they
// were first sent with. The page's queue files are relative paths: the example runs in a fresh
// temp directory, removed at the end.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeadLetter } from 'eventsinks';
import { WebhookSink, verifyWebhook } from 'eventsinks/http';
import { DurableQueue, QueueFile } from 'eventsinks/sqlite';

interface OrderEvent {
  type: string;
  id: string;
  total: number;
}

process.env.WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const secret = process.env.WEBHOOK_SECRET;

// The receivers: every request verified; ids seen per receiver; each id processed once.
const seen = { billing: [] as string[], audit: [] as string[] };
const processed = { billing: new Set<string>(), audit: new Set<string>() };
let auditDown = true;
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const name = req.url === '/audit' ? 'audit' : 'billing';
    const body = Buffer.concat(chunks as unknown as Uint8Array[]);
    verifyWebhook(secret, req.headers, body).then(
      ({ id }) => {
        seen[name].push(id);
        if (name === 'audit' && auditDown) return void res.writeHead(503).end();
        processed[name].add(id); // a duplicate id is answered 2xx and not processed again
        res.writeHead(204).end();
      },
      () => void res.writeHead(401).end(),
    );
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
process.env.BILLING_HOOK_URL = `${origin}/billing`;
process.env.AUDIT_HOOK_URL = `${origin}/audit`;

const home = process.cwd();
const dir = mkdtempSync(join(tmpdir(), 'eventsinks-guide-fan-out-'));
process.chdir(dir);

interface FanOut {
  queues: DurableQueue<OrderEvent>[];
  publish(event: OrderEvent): Promise<void>;
  close(options?: { signal?: AbortSignal }): Promise<void>;
}

function open(): FanOut {
  // One DurableQueue per receiver, each with its own file: a receiver that is down holds back
  // only its own events, and an event leaves a file only once that receiver answered 2xx.
  const receivers = {
    billing: process.env.BILLING_HOOK_URL!,
    audit: process.env.AUDIT_HOOK_URL!,
  };
  const deadLetters: QueueFile<DeadLetter<OrderEvent>>[] = [];
  const queues = Object.entries(receivers).map(([name, url]) => {
    const dead = new QueueFile<DeadLetter<OrderEvent>>({ path: `./${name}.dead.db` });
    deadLetters.push(dead);
    // WebhookSink, not Endpoint: no queue in memory, so its write settles on delivery.
    const sink = new WebhookSink<OrderEvent>(url, {
      signing: { secret: process.env.WEBHOOK_SECRET! },
      deadLetter: dead,
    });
    return new DurableQueue<OrderEvent>(sink, { path: `./${name}.db` });
  });

  // Resolves once the event is on disk for every receiver; rejects if a commit failed.
  async function publish(event: OrderEvent): Promise<void> {
    await Promise.all(queues.map((queue) => queue.write(event)));
  }
  // Delivers (until the signal aborts: the rest stays in the files), then closes the files.
  async function close(options: { signal?: AbortSignal } = {}): Promise<void> {
    await Promise.all(queues.map((queue) => queue.close(options)));
    for (const dead of deadLetters) dead.close();
  }
  return { queues, publish, close };
}

try {
  const first = open();
  const { publish } = first;
  await publish({ type: 'order.created', id: 'o-1', total: 42 });
  await publish({ type: 'order.paid', id: 'o-1', total: 42 });
  // Billing takes both; audit answers 503, and its WebhookSink keeps retrying.
  while (processed.billing.size < 2 || seen.audit.length < 2) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const auditIdsBefore = [...new Set(seen.audit)];
  console.log('audit is down; its first event was sent as', auditIdsBefore[0]);

  // Shutdown (or a crash): audit's undelivered events stay in ./audit.db.
  await first.close({ signal: AbortSignal.timeout(200) });
  console.log('left in the files:', first.queues.map((q) => q.size).join(', '));

  // The restart: the same files, audit is back.
  auditDown = false;
  const second = open();
  await second.close(); // deliver everything, then stop

  console.log('billing processed', processed.billing.size, 'audit processed', processed.audit.size);
  assert.equal(processed.billing.size, 2);
  assert.equal(processed.audit.size, 2);
  // Every attempt at an event, before and after the restart, carried the same webhook-id.
  assert.deepEqual([...processed.audit].slice(0, 1), auditIdsBefore.slice(0, 1));
  assert.equal(new Set(seen.audit).size, 2, `audit saw ids ${[...new Set(seen.audit)].join(', ')}`);
  console.log(
    'audit received',
    seen.audit.length,
    'requests under',
    new Set(seen.audit).size,
    'ids',
  );
} finally {
  process.chdir(home);
  rmSync(dir, { recursive: true, force: true });
  server.close();
}
