// Broker destinations and sources of the relay, on the library's own adapters. The clients are
// optional peers, so they are imported only when a configuration names a broker.
import type { Logger } from 'pino';
import { errorText } from './logger.js';
import type { Sink } from '../index.js';
import type { Envelope } from './envelope.js';
import type { DestinationConfig, SourceConfig } from './schema.js';

type Payload = Envelope | Envelope[];
type BrokerDestination = Extract<DestinationConfig, { type: 'redis' | 'nats' | 'amqp' }>;
type BrokerSource = Extract<SourceConfig, { type: 'redis' | 'nats' | 'amqp' }>;
type Closable = { close(options?: { signal?: AbortSignal }): void | Promise<void> };

const encode = (envelope: Envelope): string => JSON.stringify(envelope.event);
const messageId = (envelope: Envelope): string => envelope.id;

async function openSink(config: BrokerDestination): Promise<Sink<Envelope> & Closable> {
  switch (config.type) {
    case 'redis': {
      const { createClient } = await import('redis');
      const { RedisStreamSink } = await import('../redis/RedisStreamSink.js');
      const client = createClient({ url: config.url });
      client.on('error', () => {
        // Connection failures surface as rejected writes, which the RetryingSink retries.
      });
      await client.connect();
      const sink = new RedisStreamSink<Envelope>(client, {
        stream: config.stream,
        idOf: messageId,
        encode,
        ...(config.maxLen !== undefined ? { maxLen: config.maxLen } : {}),
      });
      return {
        write: (envelope) => sink.write(envelope),
        async close() {
          try {
            await sink.close();
          } finally {
            client.destroy();
          }
        },
      };
    }
    case 'nats': {
      const { JetStreamSink } = await import('../nats/JetStreamSink.js');
      return new JetStreamSink<Envelope>({
        servers: config.servers,
        subject: config.subject,
        msgId: messageId,
        encode,
      });
    }
    case 'amqp': {
      const { AmqpSink } = await import('../amqp/AmqpSink.js');
      return new AmqpSink<Envelope>({ url: config.url, queue: config.queue, messageId, encode });
    }
  }
}

/**
 * A destination sink for a broker. It connects on first use and, after a failed connection,
 * tries again on the next write, so a broker that is down at start-up is retried like any
 * other failing destination instead of stopping the relay.
 */
export function brokerSink(config: DestinationConfig): Sink<Payload> {
  if (config.type !== 'redis' && config.type !== 'nats' && config.type !== 'amqp') {
    throw new TypeError(`not a broker destination: ${config.type}`);
  }
  let opening: Promise<Sink<Envelope> & Closable> | undefined;
  const sink = (): Promise<Sink<Envelope> & Closable> => {
    opening ??= openSink(config).catch((error: unknown) => {
      opening = undefined;
      throw error;
    });
    return opening;
  };
  return {
    async write(payload) {
      const target = await sink();
      for (const envelope of Array.isArray(payload) ? payload : [payload]) {
        await target.write(envelope);
      }
    },
    async close() {
      const target = await opening?.catch(() => undefined);
      await target?.close();
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
      const { RedisStreamSource } = await import('../redis/RedisStreamSource.js');
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
      const { JetStreamSource } = await import('../nats/JetStreamSource.js');
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
      const { AmqpSource } = await import('../amqp/AmqpSource.js');
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
