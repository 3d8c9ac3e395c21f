import {
  connect,
  type NatsConnection,
  type NodeConnectionOptions,
  type Status,
} from '@nats-io/transport-node';
import { describe } from '../internal/validate.js';

/**
 * Where {@link JetStreamSink} and {@link JetStreamSource} get their NATS connection: one you
 * pass (`connection`, shared and never closed by the adapter; the usual NATS idiom is one
 * connection per process), or one the adapter opens from `servers`/`connectOptions` and closes
 * on `close()`.
 *
 * @example
 * ```ts
 * const shared: NatsConnectionOptions = { connection: await connect({ servers: 'nats:4222' }) };
 * const owned: NatsConnectionOptions = { servers: ['nats-1:4222', 'nats-2:4222'] };
 * ```
 */
export interface NatsConnectionOptions {
  /** A connection you own. The adapter never closes it. Exclusive of `servers`. */
  connection?: NatsConnection;
  /**
   * Servers for a connection the adapter opens itself (and closes on `close()`); default
   * `'127.0.0.1:4222'` when `connection` is not given.
   */
  servers?: string | string[];
  /**
   * Further options for a connection the adapter opens. Defaults differ from nats.js in one
   * way: `maxReconnectAttempts` is `-1` (reconnect forever), because a sink or source outlives
   * broker restarts; the nats.js default gives up after about 20 s.
   */
  connectOptions?: Omit<NodeConnectionOptions, 'servers'>;
}

/** @internal A connection and whether the adapter must close it. */
export interface ResolvedConnection {
  connection: NatsConnection;
  owned: boolean;
}

/** @internal Validates the connection options without connecting. */
export function validateConnectionOptions(options: NatsConnectionOptions): void {
  const { connection, servers } = options;
  if (connection !== undefined) {
    if (
      typeof connection !== 'object' ||
      connection === null ||
      typeof (connection as { publish?: unknown }).publish !== 'function' ||
      typeof (connection as { status?: unknown }).status !== 'function'
    ) {
      throw new TypeError(
        `Expected \`connection\` to be a NatsConnection, got ${describe(connection)}`,
      );
    }
    if (servers !== undefined) {
      throw new TypeError('Expected either `connection` or `servers`, got both');
    }
  }
  if (
    servers !== undefined &&
    typeof servers !== 'string' &&
    !(Array.isArray(servers) && servers.every((s) => typeof s === 'string'))
  ) {
    throw new TypeError(
      `Expected \`servers\` to be a string or an array of strings, got ${describe(servers)}`,
    );
  }
}

/** @internal Returns the given connection, or opens one the caller owns. */
export async function resolveConnection(
  options: NatsConnectionOptions,
): Promise<ResolvedConnection> {
  if (options.connection !== undefined) return { connection: options.connection, owned: false };
  const connection = await connect({
    name: 'eventsinks',
    maxReconnectAttempts: -1,
    ...options.connectOptions,
    servers: options.servers ?? '127.0.0.1:4222',
  });
  return { connection, owned: true };
}

/**
 * Follows a connection's status so that a write can fail fast while it is disconnected, and
 * callers can be told the moment it drops. One status iterator per adapter; `stop()` releases
 * it (nats.js keeps a listener per iterator until it is stopped).
 * @internal
 */
export class ConnectionWatch {
  #connected = true;
  readonly #iterator: AsyncIterable<Status> & { stop?: () => void };
  readonly #onDisconnect: () => void;

  constructor(connection: NatsConnection, onDisconnect: () => void) {
    this.#onDisconnect = onDisconnect;
    this.#iterator = connection.status();
    void this.#follow();
  }

  /** False between a `disconnect` and the following `reconnect`. */
  get connected(): boolean {
    return this.#connected;
  }

  stop(): void {
    this.#iterator.stop?.();
  }

  async #follow(): Promise<void> {
    try {
      for await (const status of this.#iterator) {
        if (status.type === 'disconnect' || status.type === 'close') {
          this.#connected = false;
          this.#onDisconnect();
        } else if (status.type === 'reconnect') {
          this.#connected = true;
        }
      }
    } catch {
      // The iterator only ends with an error when the connection closes: handled by the caller.
    }
  }
}
