// The contract between the shared broker conformance suite (suite.ts) and each adapter's
// fixture (redis.test.ts, nats.test.ts, amqp.test.ts). A fixture adapts one broker adapter to
// the suite: it names the broker, hands out fresh isolated topics, builds the adapter's sink and
// source with the options the suite asks for, reads what landed in the dead letter, publishes raw
// (poison) messages with the broker's own client, and optionally runs a private broker instance
// the suite may stop and restart. Everything the suite needs is here; nothing else is assumed.
import type { CloseOptions, Sink } from '../../src/Sink.js';

/**
 * The one event type the suite sends. `id` is unique per event within a test and is what every
 * assertion counts (duplicates are allowed and reported, losses are not). Fixtures must make the
 * adapter's sink use `event.id` as the message's stable id (Nats-Msg-Id, AMQP messageId, the
 * Redis `id` field) so a retried publish can be recognised as the same message.
 */
export interface ConformanceEvent {
  /** Unique per event: `${topic}#${seq}` or similar. */
  id: string;
  /** Position in the sequence the test published, from 0. */
  seq: number;
  /** A payload with non-ASCII text, compared byte-for-byte on arrival. */
  body: string;
}

/**
 * Where a broker answers. The suite never interprets `url`; it only passes an endpoint obtained
 * from {@link ConformanceFixture.startPrivateBroker} back to the fixture's factories. Factories
 * called without an endpoint use the shared broker on this machine.
 */
export interface BrokerEndpoint {
  /** e.g. `redis://127.0.0.1:6379`, `nats://127.0.0.1:4222`, `amqp://127.0.0.1:5672`. */
  url: string;
}

/** What the suite asks of a sink. */
export interface FixtureSinkOptions {
  /** The topic (Redis stream key, NATS subject in the fixture's stream, AMQP exchange/queue). */
  topic: string;
  /** The adapter's `maxInFlight`; omitted means the adapter default (1, ordered). */
  maxInFlight?: number;
  /**
   * How long a write may wait for the broker's acknowledgement before rejecting. Omitted means
   * the fixture's choice; the broker-down case passes a few seconds.
   */
  timeout?: number;
  /** A private broker from {@link ConformanceFixture.startPrivateBroker}; default the shared one. */
  endpoint?: BrokerEndpoint;
}

/** What the suite asks of a source. Durations are in milliseconds. */
export interface FixtureSourceOptions {
  /** The topic to consume; same string as given to the sink. */
  topic: string;
  /**
   * The consumer group / durable name / queue. Sources with the same group share the work; each
   * distinct group receives every event. The suite makes group names unique per test.
   */
  group: string;
  /** The adapter's `concurrency`; omitted means the adapter default (1, ordered). */
  concurrency?: number;
  /**
   * After this many failed deliveries of one message, it goes to the dead letter instead of the
   * local sink. Omitted means "the fixture's generous default" (the suite's failing-sink cases
   * pass a number larger than the failures they plan).
   */
  maxDeliveries?: number;
  /** How long to wait before redelivering a message whose local write failed. */
  retryDelay?: number;
  /**
   * How soon a message taken by a consumer that went away (crashed, abandoned, or aborted its
   * write) may go to another consumer of the group: Redis `minIdle` for XAUTOCLAIM, JetStream
   * `ack_wait`. Brokers that redeliver on disconnect (RabbitMQ) may ignore it. Omitted means
   * the fixture's default, long enough that a healthy slow write is not redelivered.
   */
  redeliverAfter?: number;
  /** Aborting it closes the source (as `close()` without a deadline would). */
  signal?: AbortSignal;
  /** A private broker from {@link ConformanceFixture.startPrivateBroker}; default the shared one. */
  endpoint?: BrokerEndpoint;
}

/**
 * A running source as the suite sees it. `createSource` resolves only once the source is
 * subscribed (group / durable consumer / queue and bindings exist), so an event the suite
 * publishes afterwards is guaranteed to reach the group.
 */
export interface FixtureSource {
  /**
   * The adapter's graceful close: stop fetching, wait for in-flight writes (until `signal`
   * aborts), acknowledge the ones that resolved, never acknowledge an aborted one.
   */
  close(options?: CloseOptions): Promise<void>;
  /**
   * Simulate a crash: drop the broker connection(s) at once with no acknowledgement, no drain
   * and no goodbye, so the broker must redeliver the unacknowledged messages to a peer. Local
   * writes still pending may later resolve or reject; nothing may throw unhandled because of it.
   */
  crash(): Promise<void>;
}

/** One entry read back from the dead letter of a topic. */
export interface DeadLetterRecord {
  /** The message's stable id when the broker message carried one (poison raw messages may not). */
  id?: string;
  /** Why it was dead-lettered (decoding error text, last write error, "maxDeliveries"...). */
  reason: string;
  /** The raw payload as text, when available. */
  raw?: string;
}

/**
 * A broker instance the suite owns for a test: on a free port, with persistence on (Redis
 * `appendonly yes`, JetStream file storage, durable RabbitMQ queues), so a restart keeps data.
 */
export interface PrivateBroker {
  /** Where it answers; stable across stop/start/restart. */
  readonly endpoint: BrokerEndpoint;
  /** Stop it (gracefully: a broker that acknowledged a message must still have it after start). */
  stop(): Promise<void>;
  /** Start it again on the same port and data; resolves once it answers. */
  start(): Promise<void>;
  /** `stop()` then `start()`. */
  restart(): Promise<void>;
  /** Stop it for good and remove its data. Idempotent. */
  close(): Promise<void>;
}

/**
 * What an adapter provides for {@link runConformance} to run against it. Generic enough for
 * Redis Streams, NATS JetStream (2.9 server) and RabbitMQ.
 *
 * @example
 * ```ts
 * await runConformance({
 *   name: 'redis',
 *   service: 'Redis on 127.0.0.1:6379',
 *   check: async () => { await client.ping(); },
 *   topic: () => `conf-${randomUUID()}`,
 *   createSink: (o) => ...,
 *   createSource: (dst, o) => ...,
 *   readDeadLetters: (topic) => ...,
 *   publishRaw: (topic, payload) => ...,
 *   cleanup: async () => {},
 * });
 * ```
 */
export interface ConformanceFixture {
  /** Short name used in test titles: 'redis', 'nats', 'amqp'. */
  name: string;
  /** The service the fixture needs, named in the skip/fail message: 'Redis on 127.0.0.1:6379'. */
  service: string;
  /**
   * Resolves when the shared broker answers, rejects (with a message naming the service) when it
   * does not. Outside CI the suite then skips loudly; in CI (`CI=true`) it fails.
   */
  check(): Promise<void>;
  /**
   * A fresh, isolated topic name for one test: no other test or earlier run sees it. The fixture
   * creates whatever the broker needs for it (a JetStream stream, an AMQP exchange) lazily in
   * `createSink` / `createSource`, or here if it must.
   */
  topic(): string;
  /** Build the adapter's sink. The suite closes it. */
  createSink(options: FixtureSinkOptions): Promise<Sink<ConformanceEvent>>;
  /**
   * Build and start the adapter's source writing into `dst`; resolves once subscribed. The
   * source must decode JSON and reject (dead-letter) anything that is not a
   * {@link ConformanceEvent} (`id` string, `seq` number, `body` string): the poison cases
   * publish both non-JSON text and JSON of the wrong shape.
   */
  createSource(dst: Sink<ConformanceEvent>, options: FixtureSourceOptions): Promise<FixtureSource>;
  /** Everything in the dead letter of `topic` so far (for `group`, where the broker scopes it). */
  readDeadLetters(
    topic: string,
    group: string,
    endpoint?: BrokerEndpoint,
  ): Promise<DeadLetterRecord[]>;
  /**
   * Publish `payload` to `topic` exactly as given, with the broker's raw client and no encoding:
   * the suite uses it for poison messages (not JSON, or JSON of the wrong shape).
   */
  publishRaw(topic: string, payload: string, endpoint?: BrokerEndpoint): Promise<void>;
  /**
   * Optional: start a private broker instance (free port, persistence on) for the broker-down
   * and broker-restart cases. Without it those cases are skipped with a message.
   */
  startPrivateBroker?(): Promise<PrivateBroker>;
  /** Remove what a test created for `topic` (streams, dead letters, groups). Best effort. */
  cleanup(topic: string, endpoint?: BrokerEndpoint): Promise<void>;
  /** Release the fixture's own clients after the whole suite. */
  close(): Promise<void>;
}
