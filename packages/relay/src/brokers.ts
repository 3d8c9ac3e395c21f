// Broker destinations and sources of the relay, on the library's own adapters. The clients are
// optional dependencies of eventsinks-relay, so they are imported only when a configuration
// names a broker (an install with --omit=optional runs every other configuration).
import type { Logger } from 'pino';
import { errorText } from './logger.js';
import { SinkClosedError, type CloseOptions, type Sink } from 'eventsinks';
import type { Envelope } from './envelope.js';
import type { DestinationConfig, SourceConfig } from './schema.js';

/**
 * What a broker destination publishes in one attempt: its events, and the attempt's W3C
 * `traceparent`, sent as a `traceparent` header of each message (AMQP headers, NATS headers, a
 * field of the Redis entry) so that a trace runs on to the consumer.
 */
export interface BrokerPublish {
  envelopes: readonly Envelope[];
  traceparent?: string | undefined;
}

/** One message: an event and the trace context of the attempt that publishes it. */
interface Outgoing {
  envelope: Envelope;
  traceparent: string | undefined;
}
type BrokerDestination = Extract<DestinationConfig, { type: 'redis' | 'nats' | 'amqp' }>;
type BrokerSource = Extract<SourceConfig, { type: 'redis' | 'nats' | 'amqp' }>;

const encode = (message: Outgoing): string => JSON.stringify(message.envelope.event);
const messageId = (message: Outgoing): string => message.envelope.id;
const headersOf = (message: Outgoing): { traceparent: string } | undefined =>
  message.traceparent === undefined ? undefined : { traceparent: message.traceparent };

// How long a broker client waits for a connection to be established before an attempt fails.
const CONNECT_TIMEOUT = 5_000;

async function openSink(config: BrokerDestination, closing: AbortSignal): Promise<Sink<Outgoing>> {
  switch (config.type) {
    case 'redis': {
      const { createClient } = await import('redis');
      const { RedisStreamSink } = await import('eventsinks/redis');
      let ready = false;
      const client = createClient({
        url: config.url,
        socket: {
          connectTimeout: CONNECT_TIMEOUT,
          // Until the first connection, a refused or timed-out connect fails this attempt (the
          // RetryingSink retries it: a failure metric, a log line) instead of node-redis
          // retrying forever behind a connect() that never settles. Once connected, it
          // reconnects in the background; writes fail fast meanwhile (RedisStreamSink).
          reconnectStrategy: (retries: number, cause: Error) =>
            ready ? Math.min(50 * 2 ** Math.min(retries, 6), 2_000) : cause,
        },
      });
      client.on('error', () => {
        // Connection failures surface as rejected writes, which the RetryingSink retries.
      });
      client.on('ready', () => (ready = true));
      // A close while still connecting (the relay draining) must not wait for the connect, and
      // a server that accepts the connection but never answers the handshake fails the
      // attempt after CONNECT_TIMEOUT (node-redis itself would wait forever).
      let timedOut = false;
      const onClose = (): void => client.destroy();
      closing.addEventListener('abort', onClose, { once: true });
      const timer = setTimeout(() => {
        timedOut = true;
        client.destroy();
      }, CONNECT_TIMEOUT);
      try {
        await client.connect();
      } catch (error) {
        if (client.isOpen) client.destroy();
        if (timedOut) {
          throw new Error(`redis did not answer within ${CONNECT_TIMEOUT} ms`, { cause: error });
        }
        throw error;
      } finally {
        clearTimeout(timer);
        closing.removeEventListener('abort', onClose);
      }
      const sink = new RedisStreamSink<Outgoing>(client, {
        stream: config.stream,
        idOf: messageId,
        encode,
        headersOf,
        ...(config.maxLen !== undefined ? { maxLen: config.maxLen } : {}),
      });
      return {
        write: (message) => sink.write(message),
        async close(options?: CloseOptions) {
          try {
            await sink.close(options);
          } finally {
            client.destroy();
          }
        },
      };
    }
    case 'nats': {
      const { JetStreamSink } = await import('eventsinks/nats');
      return new JetStreamSink<Outgoing>({
        servers: config.servers,
        subject: config.subject,
        idOf: messageId,
        encode,
        headersOf,
        // A server that accepts and never speaks fails the attempt after this, not nats.js's 20 s.
        connectOptions: { timeout: CONNECT_TIMEOUT },
      });
    }
    case 'amqp': {
      const { AmqpSink } = await import('eventsinks/amqp');
      return new AmqpSink<Outgoing>({
        url: config.url,
        queue: config.queue,
        idOf: messageId,
        encode,
        headersOf,
      });
    }
  }
}

/**
 * A destination sink for a broker. It connects on first use and, after a failed connection,
 * tries again on the next write, so a broker that is down at start-up is retried like any
 * other failing destination instead of stopping the relay. `close({ signal })` hands the
 * deadline to the broker sink (which then stops waiting for acknowledgements) and gives up a
 * connection still being opened.
 */
export function brokerSink(config: DestinationConfig): Sink<BrokerPublish> {
  if (config.type !== 'redis' && config.type !== 'nats' && config.type !== 'amqp') {
    throw new TypeError(`not a broker destination: ${config.type}`);
  }
  const closing = new AbortController();
  let opening: Promise<Sink<Outgoing>> | undefined;
  const sink = (): Promise<Sink<Outgoing>> => {
    opening ??= openSink(config, closing.signal).catch((error: unknown) => {
      opening = undefined;
      throw error;
    });
    return opening;
  };
  return {
    async write({ envelopes, traceparent }) {
      if (closing.signal.aborted) throw new SinkClosedError('the broker destination is closed');
      const target = await sink();
      for (const envelope of envelopes) await target.write({ envelope, traceparent });
    },
    async close(options?: CloseOptions) {
      const pending = opening;
      closing.abort();
      const target = await pending?.catch(() => undefined);
      await target?.close(options?.signal ? { signal: options.signal } : undefined);
    },
  };
}

/** A broker source started by the relay. */
export interface RunningSource {
  close(signal?: AbortSignal): Promise<void>;
}

/**
 * Starts consuming a broker into `dst` (which stores each event durably before it resolves,
 * so the broker is acknowledged only after the event is on disk).
 */
export async function startBrokerSource(
  config: BrokerSource,
  dst: Sink<unknown>,
  logger: Logger,
): Promise<RunningSource> {
  const log = logger.child({ source: config.type });
  const onError = (error: unknown): void => log.warn({ err: error }, 'source error');
  // A poison message (undecodable, or refused by every attempt) leaves the source for its
  // broker's dead letter; the operator hears of each one.
  const onPoison = (facts: Record<string, unknown>, error: unknown): void =>
    log.warn(
      { ...facts, err: error },
      `poison message moved to the dead letter: ${errorText(error)}`,
    );
  switch (config.type) {
    case 'redis': {
      const { createClient } = await import('redis');
      const { RedisStreamSource } = await import('eventsinks/redis');
      const client = createClient({ url: config.url });
      client.on('error', onError);
      await client.connect();
      const source = new RedisStreamSource<unknown>(client, dst, {
        stream: config.stream,
        group: config.group,
        onError,
        onDeadLetter: ({ entryId, id, deliveries, deadLetterStream, error }) =>
          onPoison({ entryId, id, deliveries, deadLetterStream }, error),
      });
      return {
        async close(signal) {
          try {
            await source.close(signal ? { signal } : {});
          } finally {
            client.destroy();
          }
        },
      };
    }
    case 'nats': {
      const { JetStreamSource } = await import('eventsinks/nats');
      const source = new JetStreamSource<unknown>(dst, {
        servers: config.servers,
        stream: config.stream,
        durable: config.durable,
        ...(config.subject !== undefined ? { filterSubject: config.subject } : {}),
        onDeadLetter: ({ reason, stream, streamSequence, subject, error }) =>
          onPoison({ reason, stream, streamSequence, subject }, error),
      });
      await source.start();
      return { close: (signal) => source.close(signal ? { signal } : {}) };
    }
    case 'amqp': {
      const { AmqpSource } = await import('eventsinks/amqp');
      const source = new AmqpSource<unknown>(dst, {
        url: config.url,
        queue: config.queue,
        onError: (error) => {
          // AmqpSource reports a dead letter's cause here: a decoding failure is a poison message.
          if ((error as { name?: unknown } | null)?.name === 'AmqpDecodeError') {
            onPoison({ queue: config.queue }, error);
          } else onError(error);
        },
      });
      return { close: (signal) => source.close(signal ? { signal } : {}) };
    }
  }
}
