// Helpers shared by the AMQP tests and the AMQP conformance fixture; not part of the package
// (src/**/test-utils.ts is excluded from the build).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ChannelModel } from 'amqplib';
import { freePort, sleep } from '../test-utils.js';

/** The shared broker every AMQP test uses. */
export const AMQP_URL = process.env.EVENTSINKS_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
/** The service named in skip and failure messages. */
export const AMQP_SERVICE = 'RabbitMQ on 127.0.0.1:5672';

/** True in CI, where a missing service fails instead of skipping. */
export const IN_CI = ((): boolean => {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
})();

/** Resolves when an AMQP connection to `url` opens; rejects with the reason otherwise. */
export async function checkBroker(url = AMQP_URL): Promise<void> {
  const model = await connect(url, { timeout: 5_000 });
  model.on('error', () => {});
  await model.close();
}

/**
 * Why the AMQP tests cannot run (`undefined` when they can). Outside CI it prints a loud banner
 * naming the missing service; in CI the caller must fail rather than skip.
 */
export async function brokerUnavailable(): Promise<string | undefined> {
  try {
    await checkBroker();
    return undefined;
  } catch (error) {
    const reason = `${AMQP_SERVICE} does not answer: ${error instanceof Error ? error.message : String(error)}`;
    if (!IN_CI) {
      const banner = '!'.repeat(100);
      console.error(
        `\n${banner}\n!! SKIPPING the AMQP tests: ${reason}\n!! Start RabbitMQ to run them (in CI this fails).\n${banner}\n`,
      );
    }
    return reason;
  }
}

/** A unique, recognisable name for a test's queues and exchanges. */
export function uniqueName(label: string): string {
  return `es-test-${label}-${randomBytes(4).toString('hex')}`;
}

/** Opens a connection with a live handle on its socket, so a test can cut it like a crash. */
export async function openCuttable(url = AMQP_URL): Promise<ChannelModel> {
  const model = await connect(url, { timeout: 5_000 });
  model.on('error', () => {});
  return model;
}

/** Destroys a connection's socket at once: no AMQP goodbye, as if the process had died. */
export function cut(model: ChannelModel): void {
  const stream = (model.connection as unknown as { stream?: Socket }).stream;
  // With an error: amqplib listens for the socket's 'error' and 'end', not for 'close'.
  stream?.destroy(new Error('connection cut by the test (simulated crash)'));
}

/** Deletes queues and exchanges, ignoring the ones that do not exist. */
export async function deleteTopology(
  queues: readonly string[],
  exchanges: readonly string[],
  url = AMQP_URL,
): Promise<void> {
  let model: ChannelModel;
  try {
    model = await connect(url, { timeout: 5_000 });
  } catch {
    return;
  }
  model.on('error', () => {});
  try {
    for (const queue of queues) {
      const channel = await model.createChannel();
      channel.on('error', () => {});
      await channel.deleteQueue(queue).catch(() => {});
      await channel.close().catch(() => {});
    }
    for (const exchange of exchanges) {
      const channel = await model.createChannel();
      channel.on('error', () => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await channel.close().catch(() => {});
    }
  } finally {
    await model.close().catch(() => {});
  }
}

/** What {@link peekQueue} returns for each message. */
export interface PeekedMessage {
  content: string;
  messageId: unknown;
  headers: Record<string, unknown>;
  deliveryMode: unknown;
  contentType: unknown;
  redelivered: boolean;
}

/** Every message in `queue`, read without removing them (they are requeued when we close). */
export async function peekQueue(queue: string, url = AMQP_URL): Promise<PeekedMessage[]> {
  const model = await connect(url, { timeout: 5_000 });
  model.on('error', () => {});
  try {
    const channel = await model.createChannel();
    channel.on('error', () => {});
    try {
      await channel.checkQueue(queue);
    } catch {
      return [];
    }
    const out: PeekedMessage[] = [];
    for (;;) {
      const message = await channel.get(queue, { noAck: false });
      if (message === false) break;
      out.push({
        content: message.content.toString('utf8'),
        messageId: message.properties.messageId as unknown,
        headers: message.properties.headers ?? {},
        deliveryMode: message.properties.deliveryMode as unknown,
        contentType: message.properties.contentType as unknown,
        redelivered: message.fields.redelivered,
      });
    }
    return out;
  } finally {
    // Closing without acknowledging puts every message back.
    await model.close().catch(() => {});
  }
}

const RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';

// Nodes still running when the test process exits are killed, so a failed test leaves none.
const running = new Set<PrivateRabbit>();
process.on('exit', () => {
  for (const node of running) node.kill();
});

/**
 * A private RabbitMQ node for the broker-down and restart tests: its own node name, a free AMQP
 * port, a free distribution port and a data directory under the OS temp dir, so stopping it
 * disturbs nothing else on the machine (the shared broker keeps serving other tests, which may
 * run in parallel). Durable queues and persistent messages survive its restart. `stop()` sends
 * SIGTERM, which RabbitMQ handles as a graceful shutdown.
 */
export class PrivateRabbit {
  readonly url: string;
  readonly #port: number;
  readonly #distPort: number;
  readonly #dir: string;
  readonly #name: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(port: number, distPort: number, dir: string, name: string) {
    this.#port = port;
    this.#distPort = distPort;
    this.#dir = dir;
    this.#name = name;
    this.url = `amqp://guest:guest@127.0.0.1:${port}`;
  }

  /** True when this machine has the RabbitMQ server scripts a private node needs. */
  static available(): boolean {
    return existsSync(RABBITMQ_SERVER);
  }

  /** Starts a node; resolves once it accepts AMQP connections. */
  static async start(): Promise<PrivateRabbit> {
    if (!PrivateRabbit.available()) throw new Error(`${RABBITMQ_SERVER} is not installed`);
    const port = await freePort();
    let distPort = await freePort();
    while (distPort === port) distPort = await freePort();
    const id = `${process.pid}-${randomBytes(3).toString('hex')}`;
    const dir = join(tmpdir(), `eventsinks-rabbit-${id}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'rabbitmq.conf'),
      `listeners.tcp.local = 127.0.0.1:${port}\nlog.console = false\nlog.file.level = warning\n`,
    );
    writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
    const node = new PrivateRabbit(port, distPort, dir, `eventsinks-${id}@localhost`);
    running.add(node);
    try {
      await node.start();
    } catch (error) {
      await node.close();
      throw error;
    }
    return node;
  }

  /** Starts the node again on the same port and data; resolves once it answers. */
  async start(): Promise<void> {
    if (this.#closed) throw new Error('private RabbitMQ node was closed');
    if (this.#child === undefined) {
      const dir = this.#dir;
      const child = spawn(RABBITMQ_SERVER, [], {
        env: {
          ...process.env,
          RABBITMQ_NODENAME: this.#name,
          RABBITMQ_NODE_PORT: String(this.#port),
          RABBITMQ_DIST_PORT: String(this.#distPort),
          RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
          RABBITMQ_LOG_BASE: join(dir, 'log'),
          RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
          RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
          RABBITMQ_PID_FILE: join(dir, 'pid'),
        },
        // No pipes: the node's helper processes could hold them open after it exits and keep
        // the test process alive. Its logs are in the data directory.
        stdio: 'ignore',
        detached: true,
      });
      this.#child = child;
      this.#exited = new Promise<void>((resolve) => {
        child.on('exit', () => {
          if (this.#child === child) this.#child = undefined;
          resolve();
        });
      });
      const deadline = Date.now() + 60_000;
      for (;;) {
        try {
          await checkBroker(this.url);
          return;
        } catch (error) {
          if (this.#child !== child) {
            throw new Error(`private RabbitMQ node exited while starting (logs in ${dir})`, {
              cause: error,
            });
          }
          if (Date.now() > deadline) {
            throw new Error('private RabbitMQ node did not start in 60 s', { cause: error });
          }
          await sleep(200);
        }
      }
    }
  }

  /** Stops the node gracefully (SIGTERM); resolves once its process exited. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    const pid = this.#beamPid() ?? child.pid;
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
    const killer = setTimeout(() => this.kill(), 30_000);
    await this.#exited;
    clearTimeout(killer);
  }

  /** `stop()` then `start()`. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Stops the node for good and removes its data. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const group = this.#child?.pid;
    await this.stop();
    this.#closed = true;
    running.delete(this);
    if (group !== undefined) {
      try {
        // Whatever helper process of the node is left in its process group goes too.
        process.kill(-group, 'SIGKILL');
      } catch {
        // None left.
      }
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }

  /** @internal SIGKILLs the node's process group at once (process exit, stuck stop). */
  kill(): void {
    const child = this.#child;
    if (child?.pid === undefined) return;
    try {
      // The child was spawned detached, so its pid is its process group: the shell and beam.
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }

  #beamPid(): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.#dir, 'pid'), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }
}

/** Whether `rabbitmqctl` can be run (used only for diagnostics). */
export function rabbitmqctlVersion(): string | undefined {
  const result = spawnSync('rabbitmqctl', ['version'], { encoding: 'utf8', timeout: 10_000 });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/**
 * The fallback when no private node can run (no server scripts here): stop and start the
 * RabbitMQ application of the shared broker with `rabbitmqctl stop_app` / `start_app`. Durable
 * queues and persistent messages survive it. Other tests using the shared broker at the same time
 * would see it go down, so the private node is preferred; `close()` (and, as a last resort, the
 * process's exit) always brings the application back.
 */
export class SharedRabbitRestart {
  readonly url = AMQP_URL;
  #stopped = false;

  /** True when `rabbitmqctl` answers for the shared node. */
  static available(): boolean {
    return rabbitmqctlVersion() !== undefined;
  }

  /** `rabbitmqctl stop_app`. */
  async stop(): Promise<void> {
    this.#stopped = true;
    sharedStopped = true;
    await rabbitmqctl('stop_app');
  }

  /** `rabbitmqctl start_app`, then waits until the broker accepts connections. */
  async start(): Promise<void> {
    await rabbitmqctl('start_app');
    this.#stopped = false;
    sharedStopped = false;
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await checkBroker(this.url);
        return;
      } catch (error) {
        if (Date.now() > deadline) {
          throw new Error('the shared RabbitMQ did not come back in 60 s', { cause: error });
        }
        await sleep(200);
      }
    }
  }

  /** `stop()` then `start()`, the start in any case. */
  async restart(): Promise<void> {
    try {
      await this.stop();
    } finally {
      await this.start();
    }
  }

  /** Brings the application back if this object stopped it. Idempotent. */
  async close(): Promise<void> {
    if (this.#stopped) await this.start();
  }
}

let sharedStopped = false;
process.on('exit', () => {
  // Last resort: never leave the shared broker stopped behind a crashed test.
  if (sharedStopped) spawnSync('rabbitmqctl', ['start_app'], { timeout: 60_000 });
});

function rabbitmqctl(command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('rabbitmqctl', [command], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`rabbitmqctl ${command} failed (${code}): ${stderr}`)),
    );
  });
}
