// Issue 16's "done when": a destination's whole life over the admin API, with the relay running
// and a receiver that verifies every request with the official `standardwebhooks` package:
// create → deliver → update the URL → rotate the secret → delete. The receiver holds the old
// secret, then both, then only the new one, and not one verification may fail. The file form
// (`signing.secrets` with `expiresAt`, rotated by editing the file and reloading). Then the same
// with two relays on one PostgreSQL schema: created on A, B's deliveries verify too, and a
// rotation on A reaches B.
//
// The PostgreSQL part needs the local server (postgres://postgres@127.0.0.1:5432/test, or
// EVENTSINKS_PG_URL).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import {
  closeAll,
  idsOf,
  post,
  relayIn,
  startRelay,
  stop,
  tempDir,
  waitFor,
  writeConfig,
  type RelayProcess,
} from './harness.js';
import { PG_URL } from './pg.js';

after(closeAll);

const secret = (): string => `whsec_${randomBytes(32).toString('base64')}`;

/** One request as the verifying receiver saw it. */
interface Seen {
  path: string;
  id: string | undefined;
  seq: number | undefined;
  /** How many `v1,` signatures `webhook-signature` carried. */
  signatures: number;
  /** Which of the secrets known to the test verified it (standardwebhooks). */
  verifiedBy: string[];
  /** Whether one of the secrets the receiver held at the time verified it (else 401). */
  accepted: boolean;
}

/**
 * A webhook receiver that holds a set of secrets (changed by the test as a real receiver's
 * operator would) and answers 401 to a request none of them verifies, 204 otherwise. It also
 * checks every request against every secret the test knows, to show which ones sign.
 */
class VerifyingReceiver {
  holds: string[] = [];
  readonly known: string[] = [];
  readonly seen: Seen[] = [];
  #server: Server;
  port = 0;

  constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    req.setEncoding('utf8');
    for await (const chunk of req) body += chunk as string;
    const headers = req.headers as Record<string, string>;
    const verifies = (key: string): boolean => {
      try {
        new Webhook(key).verify(body, headers);
        return true;
      } catch {
        return false;
      }
    };
    let seq: number | undefined;
    try {
      seq = (JSON.parse(body) as { seq?: number }).seq;
    } catch {
      seq = undefined;
    }
    const accepted = this.holds.some(verifies);
    this.seen.push({
      path: req.url ?? '',
      id: headers['webhook-id'],
      seq,
      signatures: (headers['webhook-signature'] ?? '').split(' ').filter(Boolean).length,
      verifiedBy: this.known.filter(verifies),
      accepted,
    });
    res.writeHead(accepted ? 204 : 401).end();
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** The requests for these `seq`s that were accepted, once each seq has one. */
  async delivered(seqs: readonly number[], what: string): Promise<Seen[]> {
    await waitFor(
      () => seqs.every((seq) => this.seen.some((s) => s.seq === seq && s.accepted)),
      60_000,
      what,
    );
    return this.seen.filter((s) => s.seq !== undefined && seqs.includes(s.seq) && s.accepted);
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** One admin API call with a JSON body; the answer's status, JSON and headers. */
async function api(
  url: string,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown; headers: Headers }> {
  const response = await fetch(`${url}${path}`, {
    method,
    ...(body !== undefined
      ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
      : {}),
  });
  const text = await response.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, json, headers: response.headers };
}

let nextSeq = 0;
/** Ingests `count` events `{seq}` into `relay`; their seqs. */
async function ingest(relay: RelayProcess, count: number): Promise<number[]> {
  const seqs = Array.from({ length: count }, () => nextSeq++);
  const answer = await post(relay.url, JSON.stringify(seqs.map((seq) => ({ seq }))));
  assert.equal(idsOf(answer).length, count);
  return seqs;
}

const FAST = {
  retry: { maxAttempts: 1000, backoff: { base: '20ms', factor: '20ms', max: '300ms' } },
};

describe('a destination managed over the admin API, with a verifying receiver', () => {
  it('create → deliver → update the URL → rotate the secret → delete, without a failed verification', async () => {
    const receiver = await new VerifyingReceiver().start();
    try {
      const oldSecret = secret();
      receiver.known.push(oldSecret);
      receiver.holds = [oldSecret];
      const { relay } = await relayIn(`
server: { listen: 127.0.0.1:0 }
sources: [{ type: http }]
destinations:
  - { name: out, type: stdout }
`);
      // Create.
      const created = await api(relay.url, 'POST', '/admin/destinations', {
        name: 'hook',
        type: 'webhook',
        url: receiver.url('/v1'),
        signing: { secret: oldSecret },
        ...FAST,
      });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      assert.equal(created.headers.get('location'), '/admin/destinations/hook');
      const detail = created.json as { origin: string; config: { signing: { secret: string } } };
      assert.equal(detail.origin, 'api');
      // Never the secret itself in an answer after it was given.
      assert.ok(!JSON.stringify(created.json).includes(oldSecret.slice(6)));
      assert.equal(detail.config.signing.secret, `whsec_…${oldSecret.slice(-4)}`);

      // Deliver.
      const first = await receiver.delivered(await ingest(relay, 5), 'the first events');
      assert.ok(first.every((s) => s.path === '/v1' && s.signatures === 1));

      // Update the URL: the stored signing stays (PATCH without `signing`).
      const patched = await api(relay.url, 'PATCH', '/admin/destinations/hook', {
        url: receiver.url('/v2'),
      });
      assert.equal(patched.status, 200, JSON.stringify(patched.json));
      const moved = await receiver.delivered(await ingest(relay, 5), 'events at the new URL');
      assert.deepEqual(
        moved.map((s) => s.path),
        Array(5).fill('/v2'),
      );
      assert.ok(moved.every((s) => s.verifiedBy.join() === oldSecret));

      // Rotate: the receiver still holds only the old secret.
      const rotated = await api(relay.url, 'POST', '/admin/destinations/hook/rotate-secret', {
        grace: '24h',
      });
      assert.equal(rotated.status, 200, JSON.stringify(rotated.json));
      const { secret: newSecret, previous } = rotated.json as {
        secret: string;
        previous: { expiresAt: string }[];
      };
      assert.match(newSecret, /^whsec_[A-Za-z0-9+/]{43}=$/);
      receiver.known.push(newSecret);
      assert.equal(previous.length, 1);
      const expiresIn = Date.parse(previous[0]!.expiresAt) - Date.now();
      assert.ok(expiresIn > 23 * 3_600_000 && expiresIn <= 24 * 3_600_000, `${expiresIn}`);
      // The spec holds both, redacted.
      const shown = await api(relay.url, 'GET', '/admin/destinations/hook');
      assert.equal(shown.status, 200);
      assert.ok(!JSON.stringify(shown.json).includes(newSecret.slice(6)));
      assert.ok(!JSON.stringify(shown.json).includes(oldSecret.slice(6)));

      const during = await receiver.delivered(await ingest(relay, 5), 'events after the rotation');
      for (const s of during) {
        assert.equal(s.signatures, 2);
        assert.deepEqual(s.verifiedBy.sort(), [oldSecret, newSecret].sort());
      }
      // The receiver's operator adds the new secret, then drops the old one.
      receiver.holds = [oldSecret, newSecret];
      await receiver.delivered(await ingest(relay, 5), 'events while the receiver holds both');
      receiver.holds = [newSecret];
      const onlyNew = await receiver.delivered(
        await ingest(relay, 5),
        'events with only the new secret at the receiver',
      );
      assert.ok(onlyNew.every((s) => s.verifiedBy.includes(newSecret)));

      // A rotation with no grace: the old secret (now the second) stops at once.
      const third = secret();
      receiver.known.push(third);
      const again = await api(relay.url, 'POST', '/admin/destinations/hook/rotate-secret', {
        secret: third,
        grace: '0s',
      });
      assert.equal(again.status, 200, JSON.stringify(again.json));
      assert.deepEqual(again.json, { secret: third, previous: [] });
      receiver.holds = [newSecret, third];
      const noGrace = await receiver.delivered(
        await ingest(relay, 3),
        'events after a 0s rotation',
      );
      assert.ok(noGrace.every((s) => s.signatures === 1 && s.verifiedBy.join() === third));

      // Bad requests name what is wrong; a file destination is rotated in the file.
      const bad = await api(relay.url, 'POST', '/admin/destinations/hook/rotate-secret', {
        secret: 'whsec_%%%',
        grace: 5,
      });
      assert.equal(bad.status, 400);
      const problems = (bad.json as { problems: { path: string }[] }).problems.map((p) => p.path);
      assert.deepEqual(problems.sort(), ['grace', 'secret']);
      assert.ok(!JSON.stringify(bad.json).includes('%%%'));
      const fileOne = await api(relay.url, 'POST', '/admin/destinations/out/rotate-secret');
      assert.equal(fileOne.status, 409, JSON.stringify(fileOne.json));
      const unknown = await api(relay.url, 'POST', '/admin/destinations/nope/rotate-secret');
      assert.equal(unknown.status, 404);

      // Delete.
      await waitFor(
        async () => {
          const status = await api(relay.url, 'GET', '/admin/destinations/hook');
          return (status.json as { pending?: number }).pending === 0;
        },
        30_000,
        'nothing pending',
      );
      const deleted = await api(relay.url, 'DELETE', '/admin/destinations/hook');
      assert.equal(deleted.status, 204, JSON.stringify(deleted.json));
      assert.equal((await api(relay.url, 'GET', '/admin/destinations/hook')).status, 404);

      // Not one request failed verification, and each event was delivered once.
      assert.deepEqual(
        receiver.seen.filter((s) => !s.accepted),
        [],
      );
      const delivered = receiver.seen.map((s) => s.seq);
      assert.equal(new Set(delivered).size, delivered.length, 'no event delivered twice');
      assert.equal(delivered.length, 28);
      assert.equal(await stop(relay), 0);
    } finally {
      await receiver.close();
    }
  });

  it('the file form: signing.secrets with expiresAt, rotated by editing the file and reloading', async () => {
    const receiver = await new VerifyingReceiver().start();
    try {
      const oldSecret = secret();
      const newSecret = secret();
      receiver.known.push(oldSecret, newSecret);
      receiver.holds = [oldSecret];
      const file = (secrets: string) => `
server: { listen: 127.0.0.1:0 }
sources: [{ type: http }]
destinations:
  - name: hook
    type: webhook
    url: ${receiver.url('/file')}
    signing:
      secrets:
${secrets}
    retry: { maxAttempts: 1000, backoff: { base: 20ms, factor: 20ms, max: 300ms } }
`;
      const dir = tempDir();
      const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
      const path = writeConfig(
        dir,
        file(
          `        - { secret: '${newSecret}' }\n        - { secret: '${oldSecret}', expiresAt: '${expiresAt}' }`,
        ),
      );
      const relay = await startRelay(path, { cwd: dir });
      const during = await receiver.delivered(await ingest(relay, 4), 'the grace period');
      for (const s of during) {
        assert.equal(s.signatures, 2);
        assert.deepEqual(s.verifiedBy.sort(), [oldSecret, newSecret].sort());
      }
      // The API refuses to rotate a file destination and says where to do it.
      const refused = await api(relay.url, 'POST', '/admin/destinations/hook/rotate-secret');
      assert.equal(refused.status, 409);
      assert.match((refused.json as { error: string }).error, /config file.*signing\.secrets/);
      // The receiver switches, the file drops the old secret, the relay reloads.
      receiver.holds = [oldSecret, newSecret];
      writeConfig(dir, file(`        - { secret: '${newSecret}' }`));
      const reloaded = await api(relay.url, 'POST', '/admin/reload');
      assert.equal(reloaded.status, 200, JSON.stringify(reloaded.json));
      assert.deepEqual((reloaded.json as { changed: string[] }).changed, ['hook']);
      receiver.holds = [newSecret];
      const afterReload = await receiver.delivered(await ingest(relay, 4), 'after the reload');
      assert.ok(afterReload.every((s) => s.signatures === 1 && s.verifiedBy.join() === newSecret));
      assert.deepEqual(
        receiver.seen.filter((s) => !s.accepted),
        [],
      );
      assert.equal(await stop(relay), 0);
    } finally {
      await receiver.close();
    }
  });

  it('two relays on one PostgreSQL schema: created on A, B delivers verifiably, a rotation on A reaches B', async () => {
    const schema = `h4_lifecycle_${randomBytes(4).toString('hex')}`;
    const receiver = await new VerifyingReceiver().start();
    const yaml = `
server: { listen: 127.0.0.1:0 }
store: { type: postgres, url: '${PG_URL}', schema: ${schema}, leaseTimeout: 5s }
sources: [{ type: http }]
destinations:
  - { name: out, type: stdout }
`;
    try {
      const oldSecret = secret();
      receiver.known.push(oldSecret);
      receiver.holds = [oldSecret];
      const dirA = tempDir();
      const dirB = tempDir();
      let a = await startRelay(writeConfig(dirA, yaml), { cwd: dirA });
      const b = await startRelay(writeConfig(dirB, yaml), { cwd: dirB });
      const created = await api(a.url, 'POST', '/admin/destinations', {
        name: 'shared',
        type: 'webhook',
        url: receiver.url('/shared'),
        signing: { secret: oldSecret },
        ...FAST,
      });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      // B sees it within seconds.
      await waitFor(
        async () => (await api(b.url, 'GET', '/admin/destinations/shared')).status === 200,
        20_000,
        'B to see the destination created on A',
      );
      // Only B runs: what it delivers verifies.
      assert.equal(await stop(a), 0);
      const byB = await receiver.delivered(await ingest(b, 5), 'B delivering');
      assert.ok(byB.every((s) => s.verifiedBy.join() === oldSecret));

      // A again: rotate there; B signs with both once it has the new spec.
      a = await startRelay(writeConfig(dirA, yaml), { cwd: dirA });
      const was = (await api(b.url, 'GET', '/admin/destinations/shared')).json as {
        version: number;
      };
      const rotated = await api(a.url, 'POST', '/admin/destinations/shared/rotate-secret');
      assert.equal(rotated.status, 200, JSON.stringify(rotated.json));
      const newSecret = (rotated.json as { secret: string }).secret;
      receiver.known.push(newSecret);
      await waitFor(
        async () => {
          const seen = (await api(b.url, 'GET', '/admin/destinations/shared')).json as {
            version: number;
          };
          return seen.version > was.version;
        },
        20_000,
        'B to see the rotation made on A',
      );
      assert.equal(await stop(a), 0);
      // The receiver takes both while B may still be switching: what is checked is that B's
      // requests carry both signatures, each verifying.
      receiver.holds = [oldSecret, newSecret];
      const rotatedByB = await receiver.delivered(await ingest(b, 5), 'B after the rotation');
      for (const s of rotatedByB) {
        assert.equal(s.signatures, 2);
        assert.deepEqual(s.verifiedBy.sort(), [oldSecret, newSecret].sort());
      }
      assert.deepEqual(
        receiver.seen.filter((s) => !s.accepted),
        [],
      );
      assert.equal(await stop(b), 0);
    } finally {
      await receiver.close();
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      await client.query(`drop schema if exists ${schema} cascade`).catch(() => undefined);
      await client.end();
    }
  });
});
