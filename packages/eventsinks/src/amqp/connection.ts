import { connect, type Channel, type ChannelModel, type Options } from 'amqplib';
import { noop } from '../internal/close.js';
import { describe } from '../internal/validate.js';
import { AmqpConnectionError } from './errors.js';

/**
 * Where and how to connect: shared by {@link AmqpSink} and {@link AmqpSource}.
 *
 * @example
 * ```ts
 * const options: AmqpConnectionOptions = {
 *   url: 'amqp://guest:guest@127.0.0.1:5672/?heartbeat=10',
 *   connectTimeout: 5_000,
 * };
 * ```
 */
export interface AmqpConnectionOptions {
  /** An AMQP URL or amqplib's connect object; default `'amqp://127.0.0.1'` (guest/guest). */
  url?: string | Options.Connect;
  /** Socket options passed to amqplib's `connect` (TLS, `clientProperties`, …). */
  socketOptions?: Record<string, unknown>;
  /** How long one connection attempt may take, in ms; default 10 000. */
  connectTimeout?: number;
  /**
   * Opens the connection instead of `url`/`socketOptions`, for a custom setup. It is called
   * again on every reconnection, and the adapter closes what it returns.
   */
  connect?: () => Promise<ChannelModel>;
}

/** @internal */
export const DEFAULT_URL = 'amqp://127.0.0.1';

/** @internal Renders a URL for messages without its password. */
export function redact(url: string | Options.Connect): string {
  if (typeof url !== 'string') {
    return `amqp://${url.hostname ?? '127.0.0.1'}:${url.port ?? 5672}${url.vhost ? `/${url.vhost}` : ''}`;
  }
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** @internal Validates a URL option. */
export function expectUrl(value: unknown): asserts value is string | Options.Connect {
  if (typeof value !== 'string' && (typeof value !== 'object' || value === null)) {
    throw new TypeError(
      `Expected \`url\` to be an AMQP URL or a connect object, got ${describe(value)}`,
    );
  }
}

/**
 * Opens one connection (no automatic recovery: each adapter reconnects on its own terms) and
 * swallows the `error` event, which amqplib always follows with `close`, where we act.
 * @internal
 */
export async function openConnection(
  url: string | Options.Connect,
  socketOptions: Record<string, unknown> | undefined,
  timeout: number,
  factory: (() => Promise<ChannelModel>) | undefined,
): Promise<ChannelModel> {
  try {
    const model = factory ? await factory() : await connect(url, { timeout, ...socketOptions });
    model.on('error', noop);
    return model;
  } catch (error) {
    throw new AmqpConnectionError(`cannot connect to ${redact(url)}`, { cause: error });
  }
}

/**
 * Closes a connection or channel, ignoring that it may already be gone. It resolves on the close
 * handshake, or as soon as the connection reports itself closed (a socket that died mid-close
 * never answers), or after `timeout` ms, when it destroys the socket, so closing never hangs.
 * @internal
 */
export async function closeQuietly(model: Closable | undefined, timeout = 5_000): Promise<void> {
  if (model === undefined) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onClose: (() => void) | undefined;
  try {
    await Promise.race([
      model.close(),
      new Promise<void>((resolve) => {
        onClose = resolve;
        model.once('close', onClose);
      }),
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          const stream = (model.connection as { stream?: { destroy(error?: Error): void } })
            ?.stream;
          stream?.destroy(new Error('the broker did not answer the close handshake'));
          resolve();
        }, timeout);
        // Waiting to cut a dead socket is no reason to keep the process alive.
        timer.unref?.();
      }),
    ]);
  } catch {
    // Already closed, or the socket died: either way it is released.
  } finally {
    clearTimeout(timer);
    if (onClose) model.removeListener('close', onClose);
  }
}

/** @internal What {@link closeQuietly} closes: an amqplib connection or channel. */
export interface Closable {
  close(): Promise<void>;
  once(event: 'close', listener: () => void): unknown;
  removeListener(event: 'close', listener: () => void): unknown;
  connection?: unknown;
}

/**
 * Runs `fn` on a throwaway channel: a declaration the broker refuses closes that channel, never
 * one that publishes or consumes.
 * @internal
 */
export async function withChannel<T>(
  model: ChannelModel,
  fn: (channel: Channel) => Promise<T>,
): Promise<T> {
  const channel = await model.createChannel();
  channel.on('error', noop);
  try {
    return await fn(channel);
  } finally {
    await closeQuietly(channel);
  }
}

/**
 * Declares a queue; when it already exists with other arguments (406 PRECONDITION_FAILED: a
 * source added `x-queue-type`, another client declared it its own way), it is used as it is.
 * @internal
 */
export async function declareQueue(
  model: ChannelModel,
  queue: string,
  options: Options.AssertQueue,
): Promise<void> {
  try {
    await withChannel(model, (channel) => channel.assertQueue(queue, options));
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code !== 406) throw error;
    try {
      await withChannel(model, (channel) => channel.checkQueue(queue));
    } catch {
      throw error;
    }
  }
}

/** @internal */
