// Helpers for the NATS adapter's tests; not part of the package (excluded from the build).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, sleep } from '../test-utils.js';

export const SHARED_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
export const SERVICE = `NATS JetStream on ${SHARED_URL}`;
const NATS_SERVER = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

/** True in CI, where a missing service must fail instead of skipping. */
export const IN_CI = ((): boolean => {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
})();

/**
 * Connects to the shared server once per test file. Resolves `undefined` (after a loud message)
 * when it does not answer outside CI; throws in CI.
 */
export async function sharedConnection(): Promise<NatsConnection | undefined> {
  try {
    const nc = await connect({ servers: SHARED_URL, maxReconnectAttempts: -1, timeout: 3_000 });
    await (await jetstreamManager(nc)).getAccountInfo();
    return nc;
  } catch (error) {
    const message = `${SERVICE} does not answer: ${error instanceof Error ? error.message : String(error)}`;
    if (IN_CI) {
      throw new Error(`${message} (CI=true: a missing service is a failure)`, { cause: error });
    }
    const banner = '!'.repeat(100);
    console.error(
      `\n${banner}\n!! SKIPPING the NATS adapter tests: ${message}\n!! Start ${SERVICE} to run them (in CI this fails).\n${banner}\n`,
    );
    return undefined;
  }
}

/** A name no other test or run uses: valid as a stream, durable and subject token. */
export function uniqueName(prefix = 't'): string {
  return `${prefix}-${randomUUID().slice(0, 13)}`;
}

/** Creates a stream capturing `subjects` (default: the name itself); returns its name. */
export async function createStream(
  jsm: JetStreamManager,
  name: string,
  subjects: string[] = [name],
): Promise<string> {
  await jsm.streams.add({ name, subjects });
  return name;
}

export async function deleteStreams(jsm: JetStreamManager, names: string[]): Promise<void> {
  await Promise.all(names.map((n) => jsm.streams.delete(n).catch(() => false)));
}

export { sleep, waitFor } from '../test-utils.js';

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A private `nats-server -js` on a free port with its own store directory. */
export class PrivateNats {
  readonly url: string;
  readonly #port: number;
  readonly #dir: string;
  #child: ChildProcess | undefined;

  private constructor(port: number) {
    this.#port = port;
    this.url = `nats://127.0.0.1:${port}`;
    this.#dir = mkdtempSync(join(tmpdir(), 'eventsinks-nats-test-'));
  }

  static async start(): Promise<PrivateNats> {
    const server = new PrivateNats(await freePort());
    await server.start();
    return server;
  }

  async start(): Promise<void> {
    const child = spawn(
      NATS_SERVER,
      ['-js', '-a', '127.0.0.1', '-p', String(this.#port), '-sd', this.#dir],
      { stdio: 'ignore' },
    );
    this.#child = child;
    let failed: Error | undefined;
    child.once('error', (error) => (failed = error));
    const deadline = Date.now() + 20_000;
    while (!(await answers(this.#port))) {
      if (failed) throw failed;
      if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not answer on ${this.#port}`);
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/**
 * A private server for a restart test; outside CI, when it cannot be started (no binary), the
 * test is skipped with a loud message instead. In CI it fails.
 */
export async function privateNatsOrSkip(t: {
  skip(message?: string): void;
}): Promise<PrivateNats | undefined> {
  try {
    return await PrivateNats.start();
  } catch (error) {
    const message = `cannot start a private nats-server (${NATS_SERVER}): ${error instanceof Error ? error.message : String(error)}`;
    if (IN_CI) throw new Error(message, { cause: error });
    console.error(`!! SKIPPING: ${message}`);
    t.skip(message);
    return undefined;
  }
}
