// The shared broker conformance suite, run against the AMQP adapter and the real RabbitMQ on
// this machine (127.0.0.1:5672). Mapping: a topic is a durable topic exchange; a group is a
// durable queue `<topic>.<group>` bound to it with '#', so sources on one group compete for its
// messages and every group gets every event; the dead letter of a group is the queue
// `<topic>.<group>.dlq` behind the exchange `<topic>.<group>.dlx`. The broker-down and restart
// cases run a private RabbitMQ node (own port and data directory) that they stop and start, so
// the shared broker is never disturbed; where RabbitMQ's server scripts are missing (or with
// EVENTSINKS_AMQP_SHARED_RESTART=1) they restart the shared broker's app with rabbitmqctl
// instead, and always bring it back.
import { randomBytes } from 'node:crypto';
import { connect, type ChannelModel } from 'amqplib';
import { AmqpSink, AmqpSource, REASON_HEADER } from '../../src/amqp/index.js';
import {
  AMQP_SERVICE,
  AMQP_URL,
  PrivateRabbit,
  SharedRabbitRestart,
  checkBroker,
  cut,
  deleteTopology,
  peekQueue,
} from '../../src/amqp/test-utils.js';
import { runConformance } from './suite.js';
import type {
  BrokerEndpoint,
  ConformanceEvent,
  ConformanceFixture,
  DeadLetterRecord,
  FixtureSource,
  PrivateBroker,
} from './types.js';

const ROUTING_KEY = 'events';

function isConformanceEvent(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const event = value as Partial<ConformanceEvent>;
  return (
    typeof event.id === 'string' &&
    typeof event.seq === 'number' &&
    typeof event.body === 'string' &&
    Object.keys(value).length === 3
  );
}

const queueOf = (topic: string, group: string): string => `${topic}.${group}`;

// topic → the groups (queues) created for it, for cleanup.
const groups = new Map<string, Set<string>>();
// The fixture's own connections (raw publishes), one per broker URL, reopened when lost.
const raw = new Map<string, Promise<ChannelModel>>();

function rawConnection(url: string): Promise<ChannelModel> {
  let model = raw.get(url);
  if (model === undefined) {
    model = connect(url, { timeout: 5_000 }).then((m) => {
      m.on('error', () => {});
      m.on('close', () => raw.delete(url));
      return m;
    });
    model.catch(() => raw.delete(url));
    raw.set(url, model);
  }
  return model;
}

const fixture: ConformanceFixture = {
  name: 'amqp',
  service: AMQP_SERVICE,
  check: () => checkBroker(AMQP_URL),
  topic: () => `es-conf-${randomBytes(5).toString('hex')}`,

  async createSink({ topic, maxInFlight, timeout, endpoint }) {
    // A RabbitMQ exchange stores nothing: a message that matches no queue is gone (our sink
    // rejects it as unroutable, thanks to `mandatory`). The suite's broker-down case publishes
    // to a topic nobody consumes, which Redis and JetStream keep; so a sink created before any
    // group of its topic declares a holding queue `<topic>.unrouted`, as a producer that must
    // not lose events before its consumers exist would.
    const holding = groups.has(topic) ? {} : { queue: `${topic}.unrouted` };
    return new AmqpSink<ConformanceEvent>({
      ...holding,
      url: endpoint?.url ?? AMQP_URL,
      exchange: topic,
      routingKey: ROUTING_KEY,
      idOf: (event) => event.id,
      confirmTimeout: timeout ?? 15_000,
      ...(maxInFlight === undefined ? {} : { maxInFlight }),
    });
  },

  async createSource(dst, options) {
    const { topic, group, concurrency, maxDeliveries, retryDelay, signal, endpoint } = options;
    // `redeliverAfter` is ignored: RabbitMQ redelivers a consumer's unacknowledged messages as
    // soon as its channel or connection closes, whatever the cause.
    const queue = queueOf(topic, group);
    let set = groups.get(topic);
    if (set === undefined) groups.set(topic, (set = new Set()));
    set.add(queue);
    const url = endpoint?.url ?? AMQP_URL;
    const connections: ChannelModel[] = [];
    let crashed = false;
    const source = new AmqpSource<ConformanceEvent>(dst, {
      queue,
      exchange: topic,
      bindingKey: '#',
      // The suite's failing-sink cases pass their own; this default only has to be generous.
      maxDeliveries: maxDeliveries ?? 20,
      retryDelay: retryDelay ?? 200,
      validate: isConformanceEvent,
      maxReconnectDelay: 1_000,
      // Failed writes, dead letters and reconnections are what the suite provokes on purpose.
      onError: () => {},
      async connect() {
        if (crashed) throw new Error('this source crashed');
        const model = await connect(url, { timeout: 5_000 });
        connections.push(model);
        return model;
      },
      ...(concurrency === undefined ? {} : { concurrency }),
      ...(signal === undefined ? {} : { signal }),
    });
    await source.ready;
    const handle: FixtureSource = {
      close: (closeOptions) => source.close(closeOptions),

      async crash() {
        // A crash: the socket dies with no AMQP goodbye and the process never reconnects.
        crashed = true;
        for (const model of connections) cut(model);
        void source.close({ signal: AbortSignal.abort() });
      },
    };
    return handle;
  },

  async readDeadLetters(topic, group, endpoint) {
    const messages = await peekQueue(`${queueOf(topic, group)}.dlq`, endpoint?.url ?? AMQP_URL);
    return messages.map((message): DeadLetterRecord => {
      const reason = message.headers[REASON_HEADER];
      const record: DeadLetterRecord = {
        reason: typeof reason === 'string' ? reason : String(reason),
        raw: message.content,
      };
      if (typeof message.messageId === 'string') record.id = message.messageId;
      return record;
    });
  },

  async publishRaw(topic, payload, endpoint) {
    const model = await rawConnection(endpoint?.url ?? AMQP_URL);
    const channel = await model.createConfirmChannel();
    try {
      channel.publish(topic, ROUTING_KEY, Buffer.from(payload), { persistent: true });
      await channel.waitForConfirms();
    } finally {
      await channel.close().catch(() => {});
    }
  },

  async startPrivateBroker(): Promise<PrivateBroker> {
    // A private node (own port and data) disturbs nothing else; without RabbitMQ's server
    // scripts on this machine, fall back to stopping and starting the shared broker's app.
    const node =
      process.env.EVENTSINKS_AMQP_SHARED_RESTART === '1' || !PrivateRabbit.available()
        ? new SharedRabbitRestart()
        : await PrivateRabbit.start();
    const endpoint: BrokerEndpoint = { url: node.url };
    return {
      endpoint,
      stop: () => node.stop(),
      start: () => node.start(),
      restart: () => node.restart(),
      close: () => node.close(),
    };
  },

  async cleanup(topic, endpoint) {
    const queues = [...(groups.get(topic) ?? [])];
    groups.delete(topic);
    await deleteTopology(
      [`${topic}.unrouted`, ...queues.flatMap((q) => [q, `${q}.retry`, `${q}.dlq`])],
      [topic, ...queues.map((q) => `${q}.dlx`)],
      endpoint?.url ?? AMQP_URL,
    );
  },

  async close() {
    const models = await Promise.allSettled([...raw.values()]);
    raw.clear();
    for (const result of models) {
      if (result.status === 'fulfilled') await result.value.close().catch(() => {});
    }
  },
};

await runConformance(fixture);
